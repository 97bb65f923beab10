"""Fixed-point encoding of float vectors into Z_{2^b}, and decoding of their sum.

Encoding: clip each coordinate to [-clip, clip], multiply by `scale`, round stochastically
(floor, plus one with probability equal to the fractional part, so the encoding is unbiased) and
reduce modulo 2^b in two's complement. Decoding reads the sum as a signed integer and divides by
`scale`.

Error bound: each client's rounding error is below 1/scale per coordinate, so the decoded sum of
m clipped inputs differs from their float sum by less than m/scale per coordinate (with
expectation 0). The config guarantees the signed sum never wraps.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from protocol.config import SecAggConfig
from protocol.errors import InvalidInput, VectorLengthError


def check_input(vector: npt.ArrayLike, dimension: int | None = None) -> npt.NDArray[np.float64]:
    """Validate a client input: a finite 1-D float vector, of `dimension` when given.

    Faults are protocol errors (`InvalidInput`, `VectorLengthError`), so a client that is
    handed a bad input mid-round forgets the round like after any other fault (SPEC.md §9).
    """
    try:
        array = np.asarray(vector, dtype=np.float64)
    except (ValueError, TypeError) as error:
        raise InvalidInput(f"input must be a numeric vector: {error}") from error
    if array.ndim != 1:
        raise VectorLengthError(f"vector must be 1-D, got shape {array.shape}")
    if dimension is not None and array.shape[0] != dimension:
        raise VectorLengthError(f"vector must have length {dimension}, got {array.shape[0]}")
    if not np.isfinite(array).all():
        raise InvalidInput("input vector must be finite (no NaN or inf)")
    return array


def quantize(
    vector: npt.ArrayLike,
    config: SecAggConfig,
    rng: np.random.Generator,
    dimension: int | None = None,
) -> npt.NDArray[np.uint32]:
    """Clip, scale, stochastically round and reduce modulo 2^b; returns uint32 words.

    The vector is checked first (`check_input`, of `dimension` when given)."""
    scaled = np.clip(check_input(vector, dimension), -config.clip, config.clip)
    scaled *= config.scale
    # floor(x + U), U uniform on [0, 1): rounds up with probability frac(x), in place (half the
    # time of floor-then-compare, which needed two more d-long temporaries).
    scaled += rng.random(scaled.shape[0])
    np.floor(scaled, out=scaled)
    # In exact arithmetic floor(x + U) <= ceil(clip * scale) for x <= clip * scale, but x + U is
    # rounded to float64 first: with U close enough to 1 (the generator returns up to 1 - 2^-53)
    # it can round up to the next integer and give ceil(clip * scale) + 1, which could wrap the
    # sum. Clamp to the bound the config's no-wrap check uses (the low end cannot overshoot:
    # -clip * scale + U >= -clip * scale is exact in float).
    np.minimum(scaled, config.max_abs_quantized, out=scaled)
    # |q| <= max_abs_quantized < 2^(b-1) / n (the config's check), so int32 holds it; its two's
    # complement bits are already q mod 2^32.
    words = scaled.astype(np.int32).view(np.uint32)
    if config.modulus_bits < 32:
        words &= np.uint32(config.modulus - 1)
    return words


def to_signed(words: npt.NDArray[np.uint32], config: SecAggConfig) -> npt.NDArray[np.int64]:
    """Read words modulo 2^b as signed integers in [-2^(b-1), 2^(b-1))."""
    signed = (words & np.uint32(config.modulus - 1)).astype(np.int64)
    signed[signed >= config.modulus // 2] -= config.modulus
    return signed


def dequantize(words: npt.NDArray[np.uint32], config: SecAggConfig) -> npt.NDArray[np.float64]:
    """The float value of a quantised vector or of a sum of them."""
    return to_signed(words, config) / config.scale


def error_bound(config: SecAggConfig, summands: int) -> float:
    """Largest possible |decoded sum - float sum of clipped inputs| per coordinate."""
    return summands / config.scale
