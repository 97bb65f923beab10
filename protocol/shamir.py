"""Shamir secret sharing of 32-byte secrets over the prime field GF(2^256 + 297).

The prime is the smallest above 2^256, so every 32-byte secret is a field element and a share
fits in 33 bytes. Python ints are fast enough: sharing costs O(holders × t) multiplications and
reconstruction O(t) per secret once the Lagrange coefficients of a holder set are known; those
are computed once per holder set and reused for every secret with the same holders.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from functools import lru_cache

PRIME = 2**256 + 297
"""Field modulus: the smallest prime above 2^256 (checked by a Miller-Rabin test in tests/)."""
SECRET_BYTES = 32
SHARE_BYTES = 33
"""Serialised length of one share's y value (little-endian, < PRIME)."""


def split(secret: bytes, holders: Sequence[int], threshold: int) -> dict[int, int]:
    """Shares of `secret` per holder id (its x-coordinate); any `threshold` of them recover it."""
    if len(secret) != SECRET_BYTES:
        raise ValueError(f"secret must be {SECRET_BYTES} bytes, got {len(secret)}")
    if not 1 <= threshold <= len(holders):
        raise ValueError(f"threshold must be in [1, {len(holders)}], got {threshold}")
    if len(set(holders)) != len(holders) or min(holders) < 1 or max(holders) >= PRIME:
        raise ValueError("holders must be distinct ids in [1, PRIME)")
    coefficients = [int.from_bytes(secret, "little")]
    coefficients += [secrets.randbelow(PRIME) for _ in range(threshold - 1)]
    coefficients.reverse()
    shares: dict[int, int] = {}
    for x in holders:
        # Horner without reducing at each step: x is small, so the value grows by a few bits a
        # step and one final reduction is cheaper than t of them.
        value = 0
        for coefficient in coefficients:
            value = value * x + coefficient
        shares[x] = value % PRIME
    return shares


@lru_cache(maxsize=4096)
def lagrange_at_zero(xs: tuple[int, ...]) -> tuple[int, ...]:
    """Lagrange coefficients that interpolate f(0) from f at `xs` (cached per holder set)."""
    if len(set(xs)) != len(xs):
        raise ValueError("share x-coordinates must be distinct")
    coefficients = []
    for i, xi in enumerate(xs):
        numerator, denominator = 1, 1
        for j, xj in enumerate(xs):
            if i != j:
                numerator = numerator * xj % PRIME
                denominator = denominator * (xj - xi) % PRIME
        coefficients.append(numerator * pow(denominator, -1, PRIME) % PRIME)
    return tuple(coefficients)


def combine(shares: dict[int, int], threshold: int) -> bytes:
    """The secret behind `threshold` or more shares (x -> y); uses the `threshold` lowest x."""
    if len(shares) < threshold:
        raise ValueError(f"need {threshold} shares, got {len(shares)}")
    xs = tuple(sorted(shares)[:threshold])
    coefficients = lagrange_at_zero(xs)
    value = sum(c * shares[x] for c, x in zip(coefficients, xs, strict=True)) % PRIME
    if value >= 2 ** (8 * SECRET_BYTES):
        raise ValueError("shares are inconsistent: the interpolated value is not a 32-byte secret")
    return value.to_bytes(SECRET_BYTES, "little")


def encode_share(value: int) -> bytes:
    """One share's y value as 33 little-endian bytes."""
    return value.to_bytes(SHARE_BYTES, "little")


def decode_share(raw: bytes) -> int:
    """Parse `encode_share` output, rejecting values outside the field."""
    if len(raw) != SHARE_BYTES:
        raise ValueError(f"share must be {SHARE_BYTES} bytes, got {len(raw)}")
    value = int.from_bytes(raw, "little")
    if value >= PRIME:
        raise ValueError("share value is not a field element")
    return value
