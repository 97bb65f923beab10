"""Shamir sharing: the field is prime, any t-subset recovers the secret, fewer do not."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import shamir


def _is_probable_prime(candidate: int, rounds: int = 32) -> bool:
    if candidate % 2 == 0:
        return False
    exponent, twos = candidate - 1, 0
    while exponent % 2 == 0:
        exponent //= 2
        twos += 1
    generator = random.Random(7)
    for _ in range(rounds):
        witness = pow(generator.randrange(2, candidate - 1), exponent, candidate)
        if witness in (1, candidate - 1):
            continue
        for _ in range(twos - 1):
            witness = pow(witness, 2, candidate)
            if witness == candidate - 1:
                break
        else:
            return False
    return True


def test_field_modulus_is_a_prime_above_every_32_byte_secret() -> None:
    # Assert
    assert shamir.PRIME > 2**256
    assert _is_probable_prime(shamir.PRIME)


@settings(max_examples=40, deadline=None)
@given(
    secret=st.binary(min_size=32, max_size=32),
    holders=st.lists(st.integers(1, 10_000), min_size=1, max_size=12, unique=True),
    data=st.data(),
)
def test_any_threshold_subset_recovers_the_secret(
    secret: bytes, holders: list[int], data: st.DataObject
) -> None:
    # Prepare
    threshold = data.draw(st.integers(1, len(holders)))
    subset = data.draw(
        st.lists(st.sampled_from(holders), min_size=threshold, max_size=len(holders), unique=True)
    )
    shares = shamir.split(secret, holders, threshold)
    # Execute
    recovered = shamir.combine({x: shares[x] for x in subset}, threshold)
    # Assert
    assert recovered == secret


def test_every_t_subset_of_a_small_sharing_recovers_the_secret() -> None:
    # Prepare
    secret = bytes(range(32))
    holders = [1, 2, 3, 4, 5]
    shares = shamir.split(secret, holders, 3)
    # Execute
    recovered = {
        shamir.combine({x: shares[x] for x in subset}, 3)
        for subset in itertools.combinations(holders, 3)
    }
    # Assert
    assert recovered == {secret}


def test_fewer_than_t_shares_are_refused_and_t_minus_one_interpolate_elsewhere() -> None:
    # Prepare
    secret = b"\x11" * 32
    shares = shamir.split(secret, [1, 2, 3, 4], 3)
    # Execute / Assert
    with pytest.raises(ValueError, match="need 3 shares"):
        shamir.combine({1: shares[1], 2: shares[2]}, 3)
    wrong = shamir.lagrange_at_zero((1, 2))
    guess = (wrong[0] * shares[1] + wrong[1] * shares[2]) % shamir.PRIME
    assert guess != int.from_bytes(secret, "little")


def test_share_encoding_round_trips_and_rejects_values_outside_the_field() -> None:
    # Prepare
    value = shamir.PRIME - 1
    # Execute
    raw = shamir.encode_share(value)
    # Assert
    assert len(raw) == shamir.SHARE_BYTES
    assert shamir.decode_share(raw) == value
    with pytest.raises(ValueError, match="not a field element"):
        shamir.decode_share(shamir.PRIME.to_bytes(33, "little"))
    with pytest.raises(ValueError, match="33 bytes"):
        shamir.decode_share(b"\x00" * 32)


@pytest.mark.parametrize(
    ("secret", "holders", "threshold", "message"),
    [
        (b"x" * 31, [1, 2], 2, "secret must be 32 bytes"),
        (b"x" * 32, [1, 2], 3, "threshold must be in"),
        (b"x" * 32, [1, 1], 2, "distinct"),
        (b"x" * 32, [0, 1], 2, "distinct ids"),
    ],
)
def test_split_rejects_bad_arguments(
    secret: bytes, holders: list[int], threshold: int, message: str
) -> None:
    # Execute / Assert
    with pytest.raises(ValueError, match=message):
        shamir.split(secret, holders, threshold)
