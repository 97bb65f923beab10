"""Crypto wrappers: published RFC vectors, the mask PRG against AES block by block, and misuse."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from protocol import crypto
from protocol.errors import DecryptionError, InvalidPublicKey

# RFC 7748 section 5.2: (scalar, u-coordinate, output u-coordinate).
RFC7748_SCALAR_MULT = [
    (
        "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
        "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
        "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
    ),
    (
        "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
        "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
        "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
    ),
]
# RFC 7748 section 6.1: Alice and Bob.
ALICE_PRIVATE = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
ALICE_PUBLIC = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
BOB_PRIVATE = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"
BOB_PUBLIC = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
SHARED_SECRET = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"

# RFC 5869 appendix A, test cases 1-3: (ikm, salt, info, length, okm).
RFC5869_CASES = [
    (
        bytes([0x0B] * 22),
        bytes(range(0x0D)),
        bytes(range(0xF0, 0xFA)),
        42,
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
    ),
    (
        bytes(range(0x50)),
        bytes(range(0x60, 0xB0)),
        bytes(range(0xB0, 0x100)),
        82,
        "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
        "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
        "cc30c58179ec3e87c14c01d5c1f3434f1d87",
    ),
    (
        bytes([0x0B] * 22),
        b"",
        b"",
        42,
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
    ),
]


@pytest.mark.parametrize(("scalar", "u", "expected"), RFC7748_SCALAR_MULT)
def test_x25519_matches_rfc7748_scalar_multiplication(scalar: str, u: str, expected: str) -> None:
    # Prepare
    private = crypto.private_key_from_bytes(bytes.fromhex(scalar))
    # Execute
    output = crypto.x25519(private, bytes.fromhex(u))
    # Assert
    assert output.hex() == expected


def test_x25519_diffie_hellman_matches_rfc7748_section_6_1() -> None:
    # Prepare
    alice = crypto.private_key_from_bytes(bytes.fromhex(ALICE_PRIVATE))
    bob = crypto.private_key_from_bytes(bytes.fromhex(BOB_PRIVATE))
    # Execute
    alice_public, bob_public = crypto.public_key(alice), crypto.public_key(bob)
    # Assert
    assert alice_public.hex() == ALICE_PUBLIC
    assert bob_public.hex() == BOB_PUBLIC
    assert crypto.x25519(alice, bob_public).hex() == SHARED_SECRET
    assert crypto.x25519(bob, alice_public).hex() == SHARED_SECRET


@pytest.mark.parametrize(("ikm", "salt", "info", "length", "okm"), RFC5869_CASES)
def test_hkdf_matches_rfc5869(ikm: bytes, salt: bytes, info: bytes, length: int, okm: str) -> None:
    # Execute
    derived = crypto.hkdf_sha256(ikm, salt=salt, info=info, length=length)
    # Assert
    assert derived.hex() == okm


@pytest.mark.parametrize(
    "bad_key",
    [
        bytes(32),  # u = 0, low order
        (1).to_bytes(32, "little"),  # u = 1, low order
        bytes(31),  # too short
        bytes(33),  # too long
    ],
)
def test_malformed_public_keys_are_refused(bad_key: bytes) -> None:
    # Prepare
    private = crypto.generate_private_key()
    # Execute / Assert
    with pytest.raises(InvalidPublicKey):
        crypto.check_public_key(bad_key)
    with pytest.raises(InvalidPublicKey):
        crypto.x25519(private, bad_key)


def test_a_fresh_public_key_passes_the_check() -> None:
    # Prepare
    public = crypto.public_key(X25519PrivateKey.generate())
    # Execute / Assert (no error)
    crypto.check_public_key(public)


def test_pair_session_id_is_symmetric_and_bound_to_round_purpose_and_keys() -> None:
    # Prepare
    first = (3, crypto.encode_party(3, b"a" * 32, b"b" * 32))
    second = (7, crypto.encode_party(7, b"c" * 32, b"d" * 32))
    other_keys = (7, crypto.encode_party(7, b"c" * 32, b"e" * 32))
    # Execute
    forward = crypto.pair_session_id(1, "mask", first, second)
    backward = crypto.pair_session_id(1, "mask", second, first)
    # Assert
    assert forward == backward
    assert forward != crypto.pair_session_id(2, "mask", first, second)
    assert forward != crypto.pair_session_id(1, "share", first, second)
    assert forward != crypto.pair_session_id(1, "mask", first, other_keys)


def test_hkdf_refuses_impossible_lengths() -> None:
    # Execute / Assert
    with pytest.raises(ValueError, match="length must be in"):
        crypto.hkdf_sha256(b"k", info=b"", length=255 * 32 + 1)


def test_aead_round_trip_and_tamper_detection() -> None:
    # Prepare
    key = bytes(range(32))
    sealed = crypto.aead_encrypt(key, b"share bytes", b"context")
    tampered = bytearray(sealed)
    tampered[-1] ^= 1
    # Execute
    opened = crypto.aead_decrypt(key, sealed, b"context")
    # Assert
    assert opened == b"share bytes"
    with pytest.raises(DecryptionError):
        crypto.aead_decrypt(key, bytes(tampered), b"context")
    with pytest.raises(DecryptionError):
        crypto.aead_decrypt(key, sealed, b"another context")
    with pytest.raises(DecryptionError):
        crypto.aead_decrypt(key, sealed[:10], b"context")


def test_aead_never_repeats_a_nonce() -> None:
    # Prepare
    key = bytes(32)
    # Execute
    nonces = {crypto.aead_encrypt(key, b"x", b"")[: crypto.GCM_NONCE_BYTES] for _ in range(50)}
    # Assert
    assert len(nonces) == 50


def test_prg_is_the_aes256_ctr_keystream_block_by_block() -> None:
    # Prepare: AES-256 of the big-endian counters 2, 3, 4, ... computed independently with ECB.
    seed = bytes(range(100, 132))
    counters = b"".join(i.to_bytes(16, "big") for i in range(2, 7))
    ecb = Cipher(algorithms.AES(seed), modes.ECB()).encryptor()
    expected = np.frombuffer(ecb.update(counters) + ecb.finalize(), dtype="<u4")
    # Execute
    words = crypto.prg_uint32(seed, 20)
    # Assert
    assert words.dtype == np.uint32
    np.testing.assert_array_equal(words, expected)


@pytest.mark.parametrize("length", [1, 4, 5, 1023, 100_003])
def test_prg_equals_openssl_ctr_mode_from_counter_block_two(length: int) -> None:
    # Prepare: the fast path runs through the GCM encryptor; CTR mode is the definition.
    seed = bytes(range(7, 39))
    ctr = Cipher(algorithms.AES(seed), modes.CTR(bytes(15) + b"\x02")).encryptor()
    expected = np.frombuffer(ctr.update(bytes(4 * length)), dtype="<u4")
    # Execute
    words = crypto.prg_uint32(seed, length)
    into = crypto.prg_uint32_into(seed, np.empty(length, dtype=np.uint32))
    # Assert
    np.testing.assert_array_equal(words, expected)
    np.testing.assert_array_equal(into, expected)


def test_prg_depends_on_the_seed_and_refuses_short_seeds() -> None:
    # Execute
    first = crypto.prg_uint32(bytes(32), 1000)
    second = crypto.prg_uint32(bytes(31) + b"\x01", 1000)
    # Assert
    assert not np.array_equal(first, second)
    with pytest.raises(ValueError, match="seed must be 32 bytes"):
        crypto.prg_uint32(bytes(16), 10)


@pytest.mark.parametrize("length", [1, 3, 4, 5, 17, 4096])
def test_prg_into_a_buffer_equals_the_fresh_keystream(length: int) -> None:
    # Prepare
    seed = bytes(range(32))
    out = np.empty(length, dtype=np.uint32)
    # Execute
    crypto.prg_uint32_into(seed, out)
    # Assert
    np.testing.assert_array_equal(out, crypto.prg_uint32(seed, length))


def test_prg_into_refuses_a_wrong_buffer() -> None:
    # Execute / Assert
    with pytest.raises(ValueError, match="contiguous uint32"):
        crypto.prg_uint32_into(bytes(32), np.empty(4, dtype=np.int64))


_P25519 = 2**255 - 19


def _with_bit_255(key: bytes) -> bytes:
    return key[:31] + bytes([key[31] | 0x80])


@pytest.mark.parametrize(
    "encode",
    [
        _with_bit_255,
        lambda key: ((int.from_bytes(key, "little") % 17) + 2 + _P25519).to_bytes(32, "little"),
    ],
    ids=["bit-255-set", "u-plus-p"],
)
def test_non_canonical_encodings_are_refused(encode: Callable[[bytes], bytes]) -> None:
    # Prepare: RFC 7748 makes X25519 ignore bit 255 and reduce u modulo p, so these are other
    # spellings of valid, non-low-order points that X25519 itself accepts (issue 15, defect 8)
    public = crypto.public_key(X25519PrivateKey.generate())
    spelled = encode(public)
    crypto.x25519(X25519PrivateKey.generate(), spelled)  # the RFC 7748 function: no error
    # Execute / Assert
    with pytest.raises(InvalidPublicKey, match="canonical"):
        crypto.check_public_key(spelled)
