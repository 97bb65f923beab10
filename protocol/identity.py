"""Long-term Ed25519 identities for the malicious-server mode, and what they sign.

Every client has one identity key for the life of the federation, registered out of band: the
server and every client hold the same public `IdentityManifest` (client id -> Ed25519 public
key). A client signs two statements per round, each bound to the round's session context:
its fresh public keys (advertise_keys), and the survivor set (consistency_check). A server that
substitutes keys, invents clients or shows different survivor sets to different clients is
caught by these signatures (SPEC.md §10).

A transport whose node ids are not manifest ids (Flower's are random 64-bit numbers) learns
which node holds which identity once, from a signed answer to a fresh challenge
(`prove_identity` / `check_identity_proof`): a third statement under a domain of its own, so a
node never signs a round's keys or survivors when asked who it is.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated

import numpy as np
from cryptography.exceptions import InvalidSignature as _CryptographyInvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from protocol.config import SecAggConfig
from protocol.crypto import DOMAIN
from protocol.errors import InvalidSignature, MalformedMessage

IdentityPublicKey = Annotated[bytes, Field(min_length=32, max_length=32)]


def generate_identity() -> Ed25519PrivateKey:
    """A fresh long-term identity key from the OS generator."""
    return Ed25519PrivateKey.generate()


def identity_public_key(identity: Ed25519PrivateKey) -> bytes:
    """The 32 raw bytes of an identity's public key, as the manifest lists it."""
    return identity.public_key().public_bytes_raw()


class IdentityManifest(BaseModel):
    """The public registry every party holds: which identity key speaks for which client."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        use_attribute_docstrings=True,
        ser_json_bytes="base64",
        val_json_bytes="base64",
    )

    federation: str = Field(min_length=1, max_length=256)
    """Names the federation; signed into every statement, so a signature made for one
    federation never counts in another that reuses the same keys."""
    keys: dict[Annotated[int, Field(ge=1, lt=2**32)], IdentityPublicKey]
    """Client id -> Ed25519 public key (32 raw bytes)."""

    _loaded: dict[int, Ed25519PublicKey] = PrivateAttr(default_factory=dict)

    def verify(self, client_id: int, statement: bytes, signature: bytes) -> None:
        """Raise `InvalidSignature` unless `signature` is `client_id`'s over `statement`."""
        raw = self.keys.get(client_id)
        if raw is None:
            raise InvalidSignature(f"client {client_id} is not in the identity manifest")
        key = self._loaded.get(client_id)
        if key is None:
            try:
                key = self._loaded[client_id] = Ed25519PublicKey.from_public_bytes(raw)
            except ValueError as error:
                raise InvalidSignature(f"client {client_id}'s identity key: {error}") from error
        try:
            key.verify(signature, statement)
        except _CryptographyInvalidSignature as error:
            raise InvalidSignature(f"client {client_id}'s signature does not verify") from error

    def client_id_of(self, public_key: bytes) -> int | None:
        """The client id the manifest lists `public_key` under (None when it does not)."""
        return next((c for c, key in sorted(self.keys.items()) if key == public_key), None)

    def digest(self) -> bytes:
        """SHA-256 over the federation and every (id, key), in id order: equal for two copies of
        the same manifest whatever their JSON layout."""
        entries = [struct.pack("<I", c) + key for c, key in sorted(self.keys.items())]
        return hashlib.sha256(
            _length_prefixed([DOMAIN + b"/manifest", self.federation.encode(), *entries])
        ).digest()

    @classmethod
    def of(cls, federation: str, identities: Mapping[int, Ed25519PrivateKey]) -> IdentityManifest:
        """The manifest of these identities (a test or a registration tool builds it)."""
        keys = {c: identity_public_key(key) for c, key in sorted(identities.items())}
        return cls(federation=federation, keys=keys)


Identities = tuple[dict[int, Ed25519PrivateKey], IdentityManifest]
"""Each client's long-term identity key, and the manifest of them."""


def fresh_identities(client_ids: Iterable[int], federation: str = "simulation") -> Identities:
    """A fresh identity per client and their manifest: for simulations and tests only (a real
    firm makes its own key and registers the public half out of band)."""
    keys = {client_id: generate_identity() for client_id in sorted(set(client_ids))}
    return keys, IdentityManifest.of(federation, keys)


def _length_prefixed(parts: Iterable[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(part)) + part for part in parts)


def _ids(client_ids: Sequence[int]) -> bytes:
    return np.asarray(client_ids, dtype="<u4").tobytes()


def session_context(
    manifest: IdentityManifest, config: SecAggConfig, dimension: int, round_number: int
) -> bytes:
    """SHA-256 over the federation, round, parameters and dimension: what every signature in a
    round is bound to (both ends compute it from what they agreed on)."""
    return hashlib.sha256(
        _length_prefixed(
            [
                DOMAIN + b"/session",
                manifest.federation.encode(),
                struct.pack("<Q", round_number),
                config.model_dump_json().encode(),
                struct.pack("<Q", dimension),
            ]
        )
    ).digest()


def advertise_statement(
    context: bytes, client_id: int, encryption_key: bytes, masking_key: bytes
) -> bytes:
    """What a client signs at advertise_keys: its id and its two fresh public keys, in this
    session."""
    return _length_prefixed(
        [
            DOMAIN + b"/advertise-keys",
            context,
            struct.pack("<I", client_id),
            encryption_key,
            masking_key,
        ]
    )


def survivors_statement(
    context: bytes, participants: Sequence[int], survivors: Sequence[int]
) -> bytes:
    """What a survivor signs at consistency_check: the participant list it was shown (U1) and
    the survivor set (U3), in this session. Two clients shown different sets sign different
    statements, so their signatures never add up."""
    return _length_prefixed([DOMAIN + b"/survivors", context, _ids(participants), _ids(survivors)])


def sign(identity: Ed25519PrivateKey, statement: bytes) -> bytes:
    """An Ed25519 signature over `statement` (64 bytes)."""
    return identity.sign(statement)


def count_valid_signers(
    manifest: IdentityManifest,
    statement: bytes,
    signatures: Iterable[tuple[int, bytes]],
    eligible: Iterable[int],
    enough: int | None = None,
) -> set[int]:
    """The distinct eligible clients whose signature over `statement` verifies; invalid,
    repeated or ineligible entries simply do not count. With `enough`, stop once that many
    verified: a client checking a quorum need not verify the signatures beyond it (at n = 100
    that spares a third of its Ed25519 checks)."""
    allowed = set(eligible)
    valid: set[int] = set()
    for signer, signature in signatures:
        if enough is not None and len(valid) >= enough:
            break
        if signer in valid or signer not in allowed:
            continue
        try:
            manifest.verify(signer, statement, signature)
        except InvalidSignature:
            continue
        valid.add(signer)
    return valid


# -- which node is which client (for a transport with its own node ids) -----------------------

CHALLENGE_BYTES = 32
"""Length of the server's fresh challenge in an identity proof."""
_PROOF = struct.Struct("<I64s")


def identify_statement(manifest: IdentityManifest, node: int, challenge: bytes) -> bytes:
    """What a node signs to show it holds the identity of one manifest entry: the manifest it
    trusts (by digest), its transport node id and the server's fresh challenge."""
    return _length_prefixed(
        [DOMAIN + b"/identify", manifest.digest(), struct.pack("<Q", node), challenge]
    )


def prove_identity(
    identity: Ed25519PrivateKey, manifest: IdentityManifest, node: int, challenge: bytes
) -> bytes:
    """The node's answer to a challenge: its client id (u32) and its signature (68 bytes)."""
    if len(challenge) != CHALLENGE_BYTES:
        raise MalformedMessage(
            f"an identity challenge is {CHALLENGE_BYTES} bytes, got {len(challenge)}"
        )
    client_id = manifest.client_id_of(identity_public_key(identity))
    if client_id is None:
        raise InvalidSignature("this node's identity key is not in its identity manifest")
    return _PROOF.pack(client_id, sign(identity, identify_statement(manifest, node, challenge)))


def check_identity_proof(
    manifest: IdentityManifest, node: int, challenge: bytes, proof: bytes
) -> int:
    """The client id `node` proved it holds the identity of; raises `MalformedMessage` or
    `InvalidSignature` (a wrong key, another manifest, another node's or challenge's proof)."""
    if len(proof) != _PROOF.size:
        raise MalformedMessage(f"an identity proof is {_PROOF.size} bytes, got {len(proof)}")
    client_id, signature = _PROOF.unpack(proof)
    manifest.verify(client_id, identify_statement(manifest, node, challenge), signature)
    return int(client_id)
