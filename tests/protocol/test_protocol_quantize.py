"""Quantisation: clipped, within 1/scale per client, unbiased, exact in the modular sum."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from protocol.config import SecAggConfig
from protocol.errors import VectorLengthError
from protocol.quantize import check_input, dequantize, error_bound, quantize, to_signed

CONFIG = SecAggConfig(num_clients=10, clip=1.0, scale=2.0**12, modulus_bits=20)


@settings(max_examples=60, deadline=None)
@given(
    vector=arrays(np.float64, st.integers(1, 50), elements=st.floats(-5, 5)),
    seed=st.integers(0, 2**32),
)
def test_decoding_is_within_one_step_of_the_clipped_input(vector: np.ndarray, seed: int) -> None:
    # Execute
    words = quantize(vector, CONFIG, np.random.default_rng(seed))
    decoded = dequantize(words, CONFIG)
    # Assert
    assert words.dtype == np.uint32
    assert int(words.max()) < CONFIG.modulus
    assert np.all(np.abs(decoded - np.clip(vector, -1, 1)) < 1 / CONFIG.scale)


@settings(max_examples=30, deadline=None)
@given(
    vectors=st.lists(arrays(np.float64, 16, elements=st.floats(-1, 1)), min_size=1, max_size=10),
    seed=st.integers(0, 2**32),
)
def test_modular_sum_decodes_within_the_documented_bound(
    vectors: list[np.ndarray], seed: int
) -> None:
    # Prepare
    rng = np.random.default_rng(seed)
    encoded = [quantize(vector, CONFIG, rng) for vector in vectors]
    # Execute
    total = np.zeros(16, dtype=np.uint32)
    for words in encoded:
        total += words
    decoded = dequantize(total, CONFIG)
    # Assert
    assert np.all(np.abs(decoded - np.sum(vectors, axis=0)) < error_bound(CONFIG, len(vectors)))
    exact = np.sum([to_signed(words, CONFIG) for words in encoded], axis=0)
    np.testing.assert_array_equal(to_signed(total, CONFIG), exact)


def test_stochastic_rounding_is_unbiased() -> None:
    # Prepare: 0.3 steps above a grid point rounds up 30% of the time.
    value = np.full(200_000, 5.3 / CONFIG.scale)
    # Execute
    decoded = dequantize(quantize(value, CONFIG, np.random.default_rng(0)), CONFIG)
    # Assert
    assert set(np.unique(decoded * CONFIG.scale)) == {5.0, 6.0}
    assert abs(decoded.mean() * CONFIG.scale - 5.3) < 0.01


def test_extremes_stay_inside_the_configured_bound() -> None:
    # Execute
    words = quantize(np.array([-1e9, 1e9, -1.0, 1.0]), CONFIG, np.random.default_rng(0))
    # Assert
    np.testing.assert_array_equal(to_signed(words, CONFIG), [-4096, 4096, -4096, 4096])


@pytest.mark.parametrize(
    ("vector", "error", "message"),
    [
        (np.zeros((2, 2)), VectorLengthError, "1-D"),
        (np.array([1.0, np.nan]), ValueError, "finite"),
        (np.array([np.inf]), ValueError, "finite"),
    ],
)
def test_bad_inputs_are_refused(vector: np.ndarray, error: type[Exception], message: str) -> None:
    # Execute / Assert
    with pytest.raises(error, match=message):
        check_input(vector)


def test_wrong_length_is_refused_naming_the_expected_length() -> None:
    # Execute / Assert
    with pytest.raises(VectorLengthError, match="length 3, got 2"):
        check_input(np.zeros(2), dimension=3)
