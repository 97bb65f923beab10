"""Config validation: every unsafe combination is refused with a message naming the field."""

from __future__ import annotations

from typing import Any

import pytest
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
