"""A numpy-Generator look-alike whose `random` returns one fixed value: never in production.

Stochastic rounding draws U uniform on [0, 1); the worst case for its bound is U just below 1,
which `np.random.default_rng` returns with probability 2^-53 per coordinate.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

LARGEST_BELOW_ONE = float(np.nextafter(1.0, 0.0))
"""1 - 2^-53: the largest value `Generator.random` can return."""


class ConstantUniform:
    """Answers `random(size)` with `size` copies of `value` (only what `quantize` calls)."""

    def __init__(self, value: float = LARGEST_BELOW_ONE) -> None:
        if not 0.0 <= value < 1.0:
            raise ValueError(f"value must be in [0, 1), got {value}")
        self.value = value

    def random(self, size: int) -> npt.NDArray[np.float64]:
        return np.full(size, self.value)
