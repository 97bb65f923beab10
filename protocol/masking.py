"""Key derivations and mask arithmetic shared by the client and the server.

Both ends of a pair derive the same keys from X25519 agreement plus HKDF bound to the pair
session id (round, purpose, both parties' ids and public keys). The server repeats exactly the
client's derivation when it rebuilds a dropped client's masking key, so the two cannot drift.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from protocol.crypto import (
    DOMAIN,
    encode_party,
    hkdf_sha256,
    pair_session_id,
    prg_uint32_into,
    x25519,
)
from protocol.stages import Stage

SHARE_ENCRYPTION = "share-encryption"
PAIRWISE_MASK = "pairwise-mask"


@dataclass(frozen=True)
class PublicKeys:
    """One client's advertised public keys; their session-id encoding is computed on first use
    (a client reloaded from its state between stages does not pay for neighbours it will not
    pair with in that stage)."""

    client_id: int
    encryption: bytes
    masking: bytes

    @cached_property
    def encoded(self) -> bytes:
        return encode_party(self.client_id, self.encryption, self.masking)

    def as_party(self) -> tuple[int, bytes]:
        return (self.client_id, self.encoded)


def share_channel(
    round_number: int, private_encryption_key: X25519PrivateKey, me: PublicKeys, peer: PublicKeys
) -> tuple[bytes, bytes]:
    """AES-256-GCM key and session id for sealing shares between `me` and `peer`."""
    session = pair_session_id(round_number, SHARE_ENCRYPTION, me.as_party(), peer.as_party())
    shared = x25519(private_encryption_key, peer.encryption)
    return hkdf_sha256(shared, info=session), session


def share_associated_data(
    session: bytes, dealer: int, holder: int, participants_digest: bytes = b""
) -> bytes:
    """AES-GCM associated data: session id, stage, dealer and holder (a sealed share is useless
    anywhere else). In the malicious mode also the digest of the participant list U1 as the
    dealer saw it, so a holder shown another U1 cannot open it (SPEC.md §10)."""
    return session + _SHARE_STAGE_TAG + struct.pack("<II", dealer, holder) + participants_digest


_SHARE_STAGE_TAG = Stage.SHARE_KEYS.value.encode()


def pairwise_mask_seed(
    round_number: int, private_masking_key: X25519PrivateKey, me: PublicKeys, peer: PublicKeys
) -> bytes:
    """The 32-byte AES-CTR key of the mask `me` and `peer` share in this round."""
    session = pair_session_id(round_number, PAIRWISE_MASK, me.as_party(), peer.as_party())
    return hkdf_sha256(x25519(private_masking_key, peer.masking), info=session)


_BINDING_DOMAIN = DOMAIN + b"/masked-input"


def masked_input_binding(
    round_number: int, sender: PublicKeys, mask_peers: Sequence[int], masked_vector: bytes
) -> bytes:
    """SHA-256 binding a masked vector to its session and to the peers it was masked with.

    Over, each 4-byte length-prefixed: the domain, the round (u64), the sender's id and fresh
    public keys (which exist in exactly one protocol instance, so they name the session), the
    sorted peer ids (u32 each) and SHA-256 of the vector's bytes. The server recomputes it from
    the keys it holds and the shares it routed: a share lost on the way to the sender, a bit
    flipped anywhere, or a vector from another session of the same round number fails to
    match, and the sender is dropped instead of the sum going silently wrong. A checksum against
    faults and stale messages, not a signature: whoever can rewrite the message can recompute it.
    """
    parts = [
        _BINDING_DOMAIN,
        struct.pack("<Q", round_number),
        sender.encoded,
        np.asarray(mask_peers, dtype="<u4").tobytes(),
        hashlib.sha256(masked_vector).digest(),
    ]
    return hashlib.sha256(b"".join(struct.pack("<I", len(p)) + p for p in parts)).digest()


def add_mask(total: npt.NDArray[np.uint32], seed: bytes, sign: int) -> None:
    """total += sign · PRG(seed) modulo 2^32, in place (sign is +1 or -1).

    The keystream goes into a reused scratch buffer: allocating a fresh 400 kB array per mask
    cost about 10% of the mask itself.
    """
    mask = prg_uint32_into(seed, _scratch(total.shape[0]))
    if sign > 0:
        np.add(total, mask, out=total)
    else:
        np.subtract(total, mask, out=total)


def pair_sign(client_id: int, peer_id: int) -> int:
    """+1 if `client_id` adds the pair's mask, -1 if it subtracts it (lower id adds)."""
    return 1 if client_id < peer_id else -1


_scratch_buffers: dict[int, npt.NDArray[np.uint32]] = {}


def _scratch(length: int) -> npt.NDArray[np.uint32]:
    """A reusable uint32 buffer of `length` words (one per length; masks are used at once)."""
    buffer = _scratch_buffers.get(length)
    if buffer is None:
        if len(_scratch_buffers) > 8:
            _scratch_buffers.clear()
        buffer = _scratch_buffers[length] = np.empty(length, dtype=np.uint32)
    return buffer
