"""Small typed wrappers over the `cryptography` primitives the protocol uses, and nothing else.

Every security-relevant argument is explicit: HKDF always gets an `info` bound to the session,
AES-GCM always gets associated data and a fresh random nonce, and masks come from an AES-256-CTR
keystream read straight into numpy (never `np.random`, never a seed folded to 32 bits).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from protocol.errors import DecryptionError, InvalidPublicKey

KEY_BYTES = 32
"""Length of X25519 keys, HKDF outputs, AES-256 keys and mask seeds."""
GCM_NONCE_BYTES = 12
ROUND_LIMIT = 2**64
"""Round numbers are packed as unsigned 64-bit integers into every session id, commitment and
graph seed, so every model and state machine refuses a round number at or above this."""
DOMAIN = b"fedscore-secagg/v1"
"""Domain separator hashed into every session id, so keys never collide with another protocol."""

_GCM_ZERO_NONCE = bytes(GCM_NONCE_BYTES)
"""Masks are the AES-256-CTR keystream from counter block 0^96 ‖ 2, which is what AES-GCM
encrypts data with under a zero 96-bit nonce (J0 = 0^96 ‖ 1, data from inc32(J0)). A fixed
counter is safe because every mask key is derived for exactly one use."""


def generate_private_key() -> X25519PrivateKey:
    """A fresh X25519 private key from the OS generator."""
    return X25519PrivateKey.generate()


def private_key_bytes(private_key: X25519PrivateKey) -> bytes:
    """The 32 raw bytes of a private key (what the masking key's Shamir shares encode)."""
    return private_key.private_bytes_raw()


def private_key_from_bytes(raw: bytes) -> X25519PrivateKey:
    """Load a raw 32-byte private key, e.g. one rebuilt from shares."""
    if len(raw) != KEY_BYTES:
        raise ValueError(f"private key must be {KEY_BYTES} bytes, got {len(raw)}")
    return X25519PrivateKey.from_private_bytes(raw)


def public_key(private_key: X25519PrivateKey) -> bytes:
    """The X25519 public key (32 raw bytes) of a private key."""
    return private_key.public_key().public_bytes_raw()


def check_public_key(public: bytes) -> None:
    """Refuse anything that is not a usable X25519 public key: wrong length, a non-canonical
    encoding, or a low-order point."""
    check_canonical(public)
    x25519(_PROBE_KEY, public)


_CURVE25519_PRIME = 2**255 - 19


def check_canonical(public: bytes) -> None:
    """Refuse a public key that is not the canonical encoding of its point.

    RFC 7748 receivers ignore bit 255 and reduce u modulo p = 2^255 - 19, so the same key has
    other spellings (bit 255 set, or u + p for u < 19). Accepting them would let one client
    pass off another's key as different bytes; only u < p, with bit 255 clear, is accepted, so
    equal keys are equal bytes and a raw-bytes comparison is a comparison of points.
    """
    if len(public) != KEY_BYTES:
        raise InvalidPublicKey(f"public key must be {KEY_BYTES} bytes, got {len(public)}")
    if int.from_bytes(public, "little") >= _CURVE25519_PRIME:
        raise InvalidPublicKey(
            "public key is not a canonical X25519 encoding (bit 255 set, or u >= 2^255 - 19)"
        )


def x25519(private_key: X25519PrivateKey, peer_public_key: bytes) -> bytes:
    """RFC 7748 X25519 key agreement; a bad or low-order peer key raises `InvalidPublicKey`.

    Exactly the RFC function (it masks bit 255, as its published vectors require): keys that
    arrive from other parties go through `check_public_key` / `check_canonical` first."""
    if len(peer_public_key) != KEY_BYTES:
        raise InvalidPublicKey(f"public key must be {KEY_BYTES} bytes, got {len(peer_public_key)}")
    try:
        return private_key.exchange(X25519PublicKey.from_public_bytes(peer_public_key))
    except ValueError as error:
        raise InvalidPublicKey(f"X25519 rejected the public key: {error}") from error


_PROBE_KEY = generate_private_key()
"""A throw-away private key used only to test that a peer's public key is not of low order."""


def hkdf_sha256(
    input_key: bytes, *, info: bytes, salt: bytes | None = None, length: int = 32
) -> bytes:
    """RFC 5869 HKDF-SHA256. `info` is mandatory: callers bind it to a session and a purpose.

    Written over `hmac.digest` (one C call per block) rather than the `cryptography` HKDF
    object, whose per-call set-up dominated at ~20k derivations per round; RFC 5869 vectors
    in tests/ pin it down.
    """
    if not 0 < length <= 255 * _SHA256_BYTES:
        raise ValueError(f"length must be in [1, {255 * _SHA256_BYTES}], got {length}")
    pseudo_random_key = hmac.digest(salt or bytes(_SHA256_BYTES), input_key, "sha256")
    output, block = b"", b""
    for counter in range(1, -(-length // _SHA256_BYTES) + 1):
        block = hmac.digest(pseudo_random_key, block + info + bytes([counter]), "sha256")
        output += block
    return output[:length]


_SHA256_BYTES = 32


def encode_party(client_id: int, encryption_key: bytes, masking_key: bytes) -> bytes:
    """A party's id and two public keys, length-prefixed: its part of a pair session id."""
    return _length_prefixed([struct.pack("<I", client_id), encryption_key, masking_key])


def _length_prefixed(parts: Sequence[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(part)) + part for part in parts)


def pair_session_id(
    round_number: int, purpose: str, first: tuple[int, bytes], second: tuple[int, bytes]
) -> bytes:
    """SHA-256 over the length-prefixed domain, round, purpose and both parties' encodings.

    Each party is (client id, `encode_party(...)`). The pair is sorted by client id, so both
    ends compute the same id; it becomes the HKDF `info` and part of the AES-GCM associated
    data, binding every derived key to one round, one purpose and both parties' public keys
    (fcp `compute_session_id`; Flower passes `info=None`).
    """
    low, high = (first, second) if first[0] < second[0] else (second, first)
    return hashlib.sha256(_session_header(round_number, purpose) + low[1] + high[1]).digest()


@lru_cache(maxsize=64)
def _session_header(round_number: int, purpose: str) -> bytes:
    return _length_prefixed([DOMAIN, struct.pack("<Q", round_number), purpose.encode()])


def aead_encrypt(key: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    """AES-256-GCM with a fresh 96-bit random nonce, returned as nonce || ciphertext || tag."""
    nonce = os.urandom(GCM_NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, associated_data)


def aead_decrypt(key: bytes, sealed: bytes, associated_data: bytes) -> bytes:
    """Open `aead_encrypt` output; any tampering or wrong context raises `DecryptionError`."""
    if len(sealed) < GCM_NONCE_BYTES + 16:
        raise DecryptionError(f"ciphertext too short: {len(sealed)} bytes")
    nonce, body = sealed[:GCM_NONCE_BYTES], sealed[GCM_NONCE_BYTES:]
    try:
        return AESGCM(key).decrypt(nonce, body, associated_data)
    except InvalidTag as error:
        raise DecryptionError("AES-GCM authentication failed") from error


_zero_buffers: dict[int, bytes] = {}


def _zeros(byte_count: int) -> bytes:
    zeros = _zero_buffers.get(byte_count)
    if zeros is None:
        if len(_zero_buffers) > 8:
            _zero_buffers.clear()
        zeros = _zero_buffers[byte_count] = bytes(byte_count)
    return zeros


def _keystream(seed: bytes) -> Any:
    """AES-256-CTR from counter block 2, produced by OpenSSL's GCM encryptor.

    Same keystream as `modes.CTR(bytes(15) + b"\x02")` (tests pin it block by block), but
    OpenSSL runs GCM on vectorised AES (VAES) where CTR gets plain AES-NI: 0.05 against
    0.10 ms per 400 kB here, for 21 masks per client and one per survivor at the server. The
    GHASH tag it also computes is never read. GCM's 32-bit counter bounds a mask at
    2^32 - 2 blocks (16 Gi words); `cryptography` refuses anything longer.
    """
    if len(seed) != KEY_BYTES:
        raise ValueError(f"seed must be {KEY_BYTES} bytes, got {len(seed)}")
    return Cipher(algorithms.AES(seed), modes.GCM(_GCM_ZERO_NONCE)).encryptor()


def prg_uint32(seed: bytes, length: int) -> npt.NDArray[np.uint32]:
    """`length` pseudo-random uint32 words: the AES-256-CTR keystream under key `seed`
    (counter blocks 2, 3, ...; see `_keystream`).

    The keystream is the encryption of zeros, read into numpy without a copy (the array is
    read-only). A seed must be used for exactly one mask.
    """
    return np.frombuffer(_keystream(seed).update(_zeros(4 * length)), dtype="<u4")


def prg_uint32_into(seed: bytes, out: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint32]:
    """Like `prg_uint32`, written into `out` (a contiguous uint32 array) instead of a new one."""
    if out.dtype != np.uint32 or not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("out must be a writeable, contiguous uint32 array")
    # update_into wants block_size - 1 spare bytes, so write all but the last block directly
    # and the tail through update().
    words = out.shape[0]
    head_words = max(words - 4, 0)
    encryptor = _keystream(seed)
    if head_words:
        encryptor.update_into(_zeros(4 * head_words), out[:head_words].view(np.uint8))
    if words > head_words:
        tail = encryptor.update(_zeros(4 * (words - head_words)))
        out[head_words:] = np.frombuffer(tail, dtype="<u4")
    return out
