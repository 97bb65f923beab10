"""Config validation: every unsafe combination is refused with a message naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from protocol.config import SecAggConfig, recommended_degree, recommended_threshold


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"num_clients": 1}, "num_clients"),
        ({"num_clients": 10, "neighbours": 10}, "neighbours must be <= num_clients - 1"),
        ({"num_clients": 10, "neighbours": 3}, "neighbours must be even"),
        ({"num_clients": 10, "threshold": 4}, r"threshold must be > neighbours/2"),
        ({"num_clients": 10, "neighbours": 4, "threshold": 2}, r"threshold must be > neighbours/2"),
        ({"num_clients": 10, "neighbours": 4, "threshold": 6}, "threshold must be <= the neighbo"),
        ({"num_clients": 10, "threshold": 11}, "threshold must be <= the neighbourhood"),
        ({"num_clients": 100, "modulus_bits": 16}, "modulus_bits=16 is too small"),
        ({"num_clients": 2, "clip": 2.0**15, "modulus_bits": 32}, "modulus_bits=32 is too small"),
        ({"num_clients": 10, "modulus_bits": 33}, "modulus_bits"),
        ({"num_clients": 10, "clip": 0.0}, "clip"),
        ({"num_clients": 10, "scale": float("nan")}, "scale"),
        ({"num_clients": 10, "unknown": 1}, "unknown"),
    ],
)
def test_unsafe_combinations_are_rejected_naming_the_field(
    fields: dict[str, Any], message: str
) -> None:
    # Execute / Assert
    with pytest.raises(ValidationError, match=message):
        SecAggConfig(**fields)


def test_largest_sum_that_fits_is_accepted_and_one_more_client_is_not() -> None:
    # Prepare: with clip*scale = 2^10, n clients fit in b = 16 bits while n * 2^10 < 2^15.
    fields = {"clip": 1.0, "scale": 2.0**10, "modulus_bits": 16}
    # Execute
    accepted = SecAggConfig(num_clients=31, **fields)
    # Assert
    assert accepted.num_clients * accepted.max_abs_quantized < 2**15
    with pytest.raises(ValidationError, match="too small"):
        SecAggConfig(num_clients=32, **fields)


def test_defaults_use_the_complete_graph_and_a_two_thirds_threshold() -> None:
    # Execute
    config = SecAggConfig(num_clients=100)
    # Assert
    assert config.degree == 99
    assert config.reconstruction_threshold == 67
    assert 2 * config.reconstruction_threshold > config.degree


@pytest.mark.parametrize("num_clients", [2, 3, 10, 100, 1000, 10_000])
def test_recommended_parameters_always_validate(num_clients: int) -> None:
    # Prepare
    degree = recommended_degree(num_clients)
    # Execute
    config = SecAggConfig(
        num_clients=num_clients,
        neighbours=degree,
        threshold=recommended_threshold(degree),
        scale=2.0**10,
    )
    # Assert
    assert config.degree <= num_clients - 1
    assert config.degree / 2 < config.reconstruction_threshold <= config.degree + 1


def test_degree_is_logarithmic() -> None:
    # Assert
    assert recommended_degree(1000) == 30
    assert recommended_degree(10_000) == 40


@pytest.mark.parametrize(
    ("num_clients", "neighbours", "threshold"),
    [(4, None, 2), (6, None, 3), (8, None, 4), (10, None, 5), (20, None, 10)],
)
def test_a_threshold_of_half_the_share_holders_is_rejected(
    num_clients: int, neighbours: int | None, threshold: int
) -> None:
    # Prepare: 2t = k + 1, so the k + 1 holders of a secret split into two disjoint groups of
    # t; an active server tells one group "u survived" and the other "u dropped" and rebuilds
    # both of u's secrets without any colluder (issue 15, defect 2).
    # Execute / Assert
    with pytest.raises(ValidationError, match="threshold must be > neighbours/2"):
        SecAggConfig(num_clients=num_clients, neighbours=neighbours, threshold=threshold)


@given(num_clients=st.integers(2, 100_000))
def test_recommended_threshold_is_a_strict_majority_of_the_holders_for_every_degree(
    num_clients: int,
) -> None:
    # Prepare: the complete graph (k = n - 1, odd when n is even) and the sparse recommendation
    for degree in {num_clients - 1, recommended_degree(num_clients)}:
        # Execute
        threshold = recommended_threshold(degree)
        # Assert
        assert 2 * threshold > degree + 1
        assert threshold <= degree + 1
        assert threshold == max((degree + 1) // 2 + 1, -(-2 * (degree + 1) // 3))
        SecAggConfig(num_clients=num_clients, neighbours=degree, threshold=threshold, scale=1.0)


@pytest.mark.parametrize(("clip", "scale"), [(1e200, 1e200), (1.7e308, 2.0**16), (2.0, 1e308)])
def test_a_clip_times_scale_beyond_floats_is_a_validation_error(clip: float, scale: float) -> None:
    # Execute / Assert: clip * scale is inf; it used to escape as OverflowError (issue 15, 5)
    with pytest.raises(ValidationError, match=r"clip \* scale"):
        SecAggConfig(num_clients=3, clip=clip, scale=scale)
