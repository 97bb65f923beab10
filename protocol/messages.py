"""One versioned pydantic model per protocol message; together they are the wire format.

Each model names its stage and direction, and every field has a docstring that becomes its JSON
schema description. `to_bytes()` is a 4-byte little-endian header length, a JSON header, then an
optional raw tail: the masked vector travels as raw little-endian uint32 words (100,000 words
cost 400 kB), never as a JSON list or base64. Other bytes fields are base64 inside the JSON.
The server is party 0; clients are 1, 2, ... (their Shamir x-coordinates).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal, Self

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, TypeAdapter, ValidationError

from protocol.config import SecAggConfig
from protocol.crypto import DOMAIN, ROUND_LIMIT
from protocol.errors import MalformedMessage
from protocol.stages import Stage

SERVER_ID = 0
"""Party id of the server in `sender`/`receiver` fields."""
MESSAGE_VERSION: Literal[1] = 1

ClientId = Annotated[int, Field(ge=1, lt=2**32)]
RoundNumber = Annotated[int, Field(ge=0, lt=ROUND_LIMIT)]
PublicKeyBytes = Annotated[bytes, Field(min_length=32, max_length=32)]
Digest = Annotated[bytes, Field(min_length=32, max_length=32)]
ShareValue = Annotated[bytes, Field(min_length=33, max_length=33)]
SignatureBytes = Annotated[bytes, Field(min_length=64, max_length=64)]
"""An Ed25519 signature (RFC 8032) by a client's long-term identity key (malicious mode)."""

_HEADER_LENGTH = struct.Struct("<I")


class _Model(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        use_attribute_docstrings=True,
        ser_json_bytes="base64",
        val_json_bytes="base64",
    )


class Message(_Model):
    """Fields every message carries: version, round, sender and receiver."""

    stage: ClassVar[Stage]
    raw_field: ClassVar[str | None] = None

    version: Literal[1] = MESSAGE_VERSION
    """Wire-format version of this message type."""
    round: RoundNumber
    """Round number (< 2^64); a message from another round is a replay and is rejected."""
    sender: int = Field(ge=0, lt=2**32)
    """Party that sent the message (0 is the server)."""
    receiver: int = Field(ge=0, lt=2**32)
    """Party the message is addressed to (0 is the server)."""

    _wire: bytes | None = PrivateAttr(default=None)
    """The exact bytes this message was parsed from or encoded to (models are frozen)."""
    _wire_sha256: str | None = PrivateAttr(default=None)

    def to_bytes(self) -> bytes:
        """Compact wire encoding: header length, JSON header, raw tail (if the type has one).

        A parsed message returns the bytes it arrived as, so digests name what was received.
        """
        if self._wire is None:
            if self.raw_field is None:
                header, tail = self.model_dump_json().encode(), b""
            else:
                header = self.model_dump_json(exclude={self.raw_field}).encode()
                tail = getattr(self, self.raw_field)
            self._wire = _HEADER_LENGTH.pack(len(header)) + header + tail
        return self._wire

    def __eq__(self, other: object) -> bool:
        """Same type, fields and wire bytes (pydantic's comparison without the digest cache)."""
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Message)
        return self.__dict__ == other.__dict__ and self._wire == other._wire

    __hash__ = _Model.__hash__

    def wire_sha256(self) -> str:
        """Hex SHA-256 of `to_bytes()`, computed once: the server's log and the transcript both
        name every message by it, and a masked input is 400 kB."""
        if self._wire_sha256 is None:
            self._wire_sha256 = hashlib.sha256(self.to_bytes()).hexdigest()
        return self._wire_sha256

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy (with `update` applied) that forgets the cached wire bytes of the original."""
        copy = super().model_copy(update=update, deep=deep)
        copy._wire = copy._wire_sha256 = None
        return copy

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Parse `to_bytes` output of exactly this type; anything else raises MalformedMessage."""
        message = parse_message(data)
        if not isinstance(message, cls):
            raise MalformedMessage(f"expected {cls.__name__}, got {type(message).__name__}")
        return message


# ---------------------------------------------------------------------------------------------
# Stage 1: advertise keys


class AdvertiseKeysRequest(Message):
    """Server → client, stage advertise_keys: the round's public parameters."""

    stage: ClassVar[Stage] = Stage.ADVERTISE_KEYS
    kind: Literal["advertise_keys_request"] = "advertise_keys_request"
    """Message type tag."""
    config: SecAggConfig
    """Parameters of the round; a client refuses if they differ from its own."""
    dimension: int = Field(ge=1)
    """Length d of every input vector."""


class AdvertiseKeysResponse(Message):
    """Client → server, stage advertise_keys: two fresh X25519 public keys (version 2: signed
    in the malicious mode)."""

    stage: ClassVar[Stage] = Stage.ADVERTISE_KEYS
    version: Literal[2] = 2  # type: ignore[assignment]  # a type bumps its own version
    """Wire-format version of this message type (2: with signature)."""
    kind: Literal["advertise_keys_response"] = "advertise_keys_response"
    """Message type tag."""
    encryption_public_key: PublicKeyBytes
    """X25519 key for the share-encryption channel (c_pk)."""
    masking_public_key: PublicKeyBytes
    """X25519 key for pairwise masks (s_pk); its private key is secret-shared."""
    signature: SignatureBytes | None = None
    """Malicious mode: the client's identity signature over its id and both keys in this
    session (`identity.advertise_statement`); None in the semi-honest mode."""


# ---------------------------------------------------------------------------------------------
# Stage 2: share keys


class PeerKeys(_Model):
    """The two public keys of one neighbour, as advertised to the server."""

    client_id: ClientId
    """The neighbour's id."""
    encryption_public_key: PublicKeyBytes
    """Its share-encryption key c_pk."""
    masking_public_key: PublicKeyBytes
    """Its masking key s_pk."""
    signature: SignatureBytes | None = None
    """Malicious mode: the neighbour's identity signature over these keys, relayed unchanged so
    the receiver can check the server did not substitute them."""


class ShareKeysRequest(Message):
    """Server → client, stage share_keys: who takes part and the neighbours' public keys
    (version 2: each with its signature in the malicious mode)."""

    stage: ClassVar[Stage] = Stage.SHARE_KEYS
    version: Literal[2] = 2  # type: ignore[assignment]  # a type bumps its own version
    """Wire-format version of this message type (2: neighbours' keys carry signatures)."""
    kind: Literal["share_keys_request"] = "share_keys_request"
    """Message type tag."""
    participants: list[ClientId]
    """Every client that advertised keys, sorted; the client recomputes its neighbours from it."""
    neighbours: list[PeerKeys]
    """Public keys of exactly this client's neighbours in the SecAgg+ graph."""


class ShareCommitments(_Model):
    """SHA-256 commitments to the two shares one holder receives (see `share_commitment`)."""

    self_mask: Digest
    """Commitment to the holder's share of the dealer's self-mask seed b."""
    masking_key: Digest
    """Commitment to the holder's share of the dealer's masking private key s_sk."""


class SealedShares(_Model):
    """Both shares a dealer gives one holder, sealed with AES-256-GCM for that holder only."""

    dealer: ClientId
    """Client whose secrets are shared."""
    holder: ClientId
    """Client that can open the ciphertext."""
    ciphertext: bytes = Field(min_length=28, max_length=1024)
    """nonce || AES-GCM(share of b || share of s_sk); associated data binds session and parties."""
    commitments: ShareCommitments
    """Commitments the server uses to check the shares the holder reveals later."""


class ShareKeysResponse(Message):
    """Client → server, stage share_keys: sealed shares for each neighbour, routed by the server."""

    stage: ClassVar[Stage] = Stage.SHARE_KEYS
    kind: Literal["share_keys_response"] = "share_keys_response"
    """Message type tag."""
    shares: list[SealedShares]
    """One entry per neighbour, each opened only by its holder."""
    own_commitments: ShareCommitments
    """Commitments to the shares the dealer keeps for itself (x = its own id)."""
    self_mask_seed_commitment: Digest
    """Commitment to the self-mask seed b, checked after the server rebuilds it."""


# ---------------------------------------------------------------------------------------------
# Stage 3: masked input


class MaskedInputRequest(Message):
    """Server → client, stage masked_input: the sealed shares addressed to this client."""

    stage: ClassVar[Stage] = Stage.MASKED_INPUT
    kind: Literal["masked_input_request"] = "masked_input_request"
    """Message type tag."""
    shares: list[SealedShares]
    """Shares from every neighbour that completed share_keys; the client masks with exactly them."""


class MaskedInputResponse(Message):
    """Client → server, stage masked_input: the masked quantised vector, nothing in the clear.

    Version 2 added `mask_peers` and `binding`: the server checks both before summing, so a
    share lost in transit, a flipped bit or a replayed vector drops the sender rather than
    corrupting the sum.
    """

    stage: ClassVar[Stage] = Stage.MASKED_INPUT
    raw_field: ClassVar[str | None] = "masked_vector"
    version: Literal[2] = 2  # type: ignore[assignment]  # a type bumps its own version
    """Wire-format version of this message type (2: with mask_peers and binding)."""
    kind: Literal["masked_input_response"] = "masked_input_response"
    """Message type tag."""
    mask_peers: list[ClientId]
    """The neighbours whose pairwise masks are in the vector (whose shares the client opened),
    sorted; the server requires exactly the neighbours it routed shares from."""
    binding: Digest
    """SHA-256 over the round, the sender's id and public keys, `mask_peers` and SHA-256 of
    `masked_vector` (`masking.masked_input_binding`), recomputed by the server."""
    masked_vector: bytes = b""
    """y = q + PRG(b) ± Σ PRG(s_uv) mod 2^b, as raw little-endian uint32 (raw tail on the wire)."""

    def vector(self) -> npt.NDArray[np.uint32]:
        """The masked words as a read-only uint32 array (no copy)."""
        if len(self.masked_vector) % 4:
            raise MalformedMessage("masked_vector must hold whole uint32 words")
        return np.frombuffer(self.masked_vector, dtype="<u4")


# ---------------------------------------------------------------------------------------------
# Malicious mode only, between masked input and unmask: consistency check


class ConsistencyCheckRequest(Message):
    """Server → client, stage consistency_check (malicious mode): the survivor set U3.

    The client signs it only if it is in it and it is a set it can live with (SPEC.md §10); it
    will later reveal shares only for this set, once enough survivors have signed it.
    """

    stage: ClassVar[Stage] = Stage.CONSISTENCY_CHECK
    kind: Literal["consistency_check_request"] = "consistency_check_request"
    """Message type tag."""
    survivors: list[ClientId]
    """Every client whose masked input the server accepted, sorted (the whole round's U3)."""


class ConsistencyCheckResponse(Message):
    """Client → server, stage consistency_check (malicious mode): a signature on the set."""

    stage: ClassVar[Stage] = Stage.CONSISTENCY_CHECK
    kind: Literal["consistency_check_response"] = "consistency_check_response"
    """Message type tag."""
    signature: SignatureBytes
    """Identity signature over the session, the participants and the survivor set
    (`identity.survivors_statement`)."""


# ---------------------------------------------------------------------------------------------
# Stage 4: unmask


class SurvivorSignature(_Model):
    """One survivor's consistency-check signature, relayed to the others."""

    signer: ClientId
    """The survivor that signed."""
    signature: SignatureBytes
    """Its signature over the survivor set (`identity.survivors_statement`)."""


class UnmaskRequest(Message):
    """Server → client, stage unmask: which neighbours survived and which dropped (version 2:
    with the survivors' signatures in the malicious mode).

    Invariant: `survivors` and `dropped` are disjoint. An honest client never reveals both
    shares of one peer, so it refuses a request that lists a peer in both.
    """

    stage: ClassVar[Stage] = Stage.UNMASK
    version: Literal[2] = 2  # type: ignore[assignment]  # a type bumps its own version
    """Wire-format version of this message type (2: with consistency_signatures)."""
    kind: Literal["unmask_request"] = "unmask_request"
    """Message type tag."""
    survivors: list[ClientId]
    """Peers (and the client itself) whose masked input arrived: reveal their self-mask share."""
    dropped: list[ClientId]
    """Peers that shared keys but sent no masked input: reveal their masking-key share."""
    consistency_signatures: list[SurvivorSignature] = []
    """Malicious mode: the survivors' signatures over the survivor set this client signed; it
    reveals nothing unless enough of them verify. Empty in the semi-honest mode."""


class SelfMaskShare(_Model):
    """The holder's share of a surviving peer's self-mask seed b."""

    kind: Literal["self_mask"] = "self_mask"
    """Which secret this share belongs to."""
    owner: ClientId
    """The peer whose secret is shared."""
    value: ShareValue
    """Shamir y value, 33 bytes little-endian (x is the holder's id)."""


class MaskingKeyShare(_Model):
    """The holder's share of a dropped peer's masking private key s_sk."""

    kind: Literal["masking_key"] = "masking_key"
    """Which secret this share belongs to."""
    owner: ClientId
    """The peer whose secret is shared."""
    value: ShareValue
    """Shamir y value, 33 bytes little-endian (x is the holder's id)."""


RevealedShare = Annotated[SelfMaskShare | MaskingKeyShare, Field(discriminator="kind")]


class UnmaskResponse(Message):
    """Client → server, stage unmask: for each listed peer, exactly one kind of share."""

    stage: ClassVar[Stage] = Stage.UNMASK
    kind: Literal["unmask_response"] = "unmask_response"
    """Message type tag."""
    shares: list[RevealedShare]
    """A self-mask share per survivor and a masking-key share per dropped peer."""


AnyRequest = (
    AdvertiseKeysRequest
    | ShareKeysRequest
    | MaskedInputRequest
    | ConsistencyCheckRequest
    | UnmaskRequest
)
AnyResponse = (
    AdvertiseKeysResponse
    | ShareKeysResponse
    | MaskedInputResponse
    | ConsistencyCheckResponse
    | UnmaskResponse
)
AnyMessage = Annotated[AnyRequest | AnyResponse, Field(discriminator="kind")]
MESSAGE_TYPES: tuple[type[Message], ...] = (
    AdvertiseKeysRequest,
    AdvertiseKeysResponse,
    ShareKeysRequest,
    ShareKeysResponse,
    MaskedInputRequest,
    MaskedInputResponse,
    ConsistencyCheckRequest,
    ConsistencyCheckResponse,
    UnmaskRequest,
    UnmaskResponse,
)
_ANY_MESSAGE: TypeAdapter[AnyRequest | AnyResponse] = TypeAdapter(AnyMessage)


def parse_message(data: bytes) -> AnyRequest | AnyResponse:
    """Decode any message from its wire bytes; malformed input raises MalformedMessage.

    These are bytes from the network: whatever goes wrong while decoding them (a validator's
    ValueError, an arithmetic overflow inside one) is reported as MalformedMessage, so a
    transport handles every bad payload the same way.
    """
    try:
        return _parse_message(data)
    except MalformedMessage:
        raise
    except ValidationError as error:
        raise MalformedMessage(f"message does not parse: {error}") from error
    except (ValueError, TypeError, ArithmeticError, RecursionError) as error:
        raise MalformedMessage(f"message does not parse: {error!r}") from error


def _parse_message(data: bytes) -> AnyRequest | AnyResponse:
    if len(data) < _HEADER_LENGTH.size:
        raise MalformedMessage("message shorter than its header length")
    (header_length,) = _HEADER_LENGTH.unpack_from(data)
    header_end = _HEADER_LENGTH.size + header_length
    if header_end > len(data):
        raise MalformedMessage("header length points past the end of the message")
    message = _ANY_MESSAGE.validate_json(data[_HEADER_LENGTH.size : header_end])
    raw_field = message.raw_field
    if raw_field is None:
        if header_end != len(data):
            raise MalformedMessage("unexpected bytes after the JSON header")
    else:
        if getattr(message, raw_field):
            raise MalformedMessage(f"{raw_field} must travel as the raw tail, not in the header")
        message = message.model_copy(update={raw_field: bytes(data[header_end:])})
    message._wire = bytes(data)
    return message


def share_commitment(
    round_number: int,
    kind: Literal["self_mask", "masking_key"],
    dealer: int,
    holder: int,
    value: bytes,
) -> bytes:
    """SHA-256 binding one share value to its round, secret kind, dealer and holder."""
    prefix = DOMAIN + b"/share/" + kind.encode()
    return hashlib.sha256(
        prefix + struct.pack("<QII", round_number, dealer, holder) + value
    ).digest()


def seed_commitment(round_number: int, dealer: int, seed: bytes) -> bytes:
    """SHA-256 binding a self-mask seed to its round and dealer."""
    payload = DOMAIN + b"/self-mask-seed" + struct.pack("<QI", round_number, dealer) + seed
    return hashlib.sha256(payload).digest()
