"""Quantisation: clipped, within 1/scale per client, unbiased, exact in the modular sum."""

from __future__ import annotations

import numpy as np
import pytest
from fakes.rng import LARGEST_BELOW_ONE, ConstantUniform
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


def test_rounding_up_at_the_clip_never_exceeds_the_no_wrap_bound() -> None:
    # Prepare: a config the validator accepts with no room to spare: n * ceil(clip * scale) =
    # 3 * 715,827,882 = 2^31 - 2. At x = clip, x * scale + U with U = 1 - 2^-53 rounds (in
    # float64) to clip * scale + 1, so floor gave ceil(clip * scale) + 1 and three honest
    # inputs of +2.0 summed past 2^31 and decoded as about -6 (issue 15, defect 4).
    config = SecAggConfig(num_clients=3, clip=2.0, scale=357_913_941.0)
    rounding = ConstantUniform()  # U just below 1, as default_rng returns once in 2^53 draws
    # Execute
    encoded = [quantize(np.array([3.0, 2.0, -2.0]), config, rounding) for _ in range(3)]
    total = np.sum(encoded, axis=0, dtype=np.uint32)
    # Assert
    assert np.all(np.abs(to_signed(encoded[0], config)) <= config.max_abs_quantized)
    decoded = dequantize(total, config)
    np.testing.assert_allclose(decoded, [6.0, 6.0, -6.0], atol=error_bound(config, 3))


@settings(max_examples=200, deadline=None)
@given(
    clip=st.sampled_from([1.0, 2.0, 0.5]) | st.floats(1e-3, 1e3),
    scale_bits=st.integers(0, 30),
    scale_factor=st.sampled_from([1.0, 3.0, 1.0000001]),
    uniform=st.sampled_from([0.0, 0.5, LARGEST_BELOW_ONE]) | st.floats(0, 1, exclude_max=True),
    vector=arrays(np.float64, st.integers(1, 8), elements=st.floats(-1e4, 1e4)),
)
def test_every_encoded_value_stays_within_max_abs_quantized(
    clip: float, scale_bits: int, scale_factor: float, uniform: float, vector: np.ndarray
) -> None:
    # Prepare: any config with room for two clients, any U the generator can return
    scale = 2.0**scale_bits * scale_factor
    if 2 * (np.ceil(clip * scale) + 1) >= 2**31:
        return
    config = SecAggConfig(num_clients=2, clip=clip, scale=scale)
    # Execute
    signed = to_signed(quantize(vector, config, ConstantUniform(uniform)), config)
    # Assert
    assert np.all(np.abs(signed) <= config.max_abs_quantized)
