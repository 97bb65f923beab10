"""Feature scaling that leaks nothing across firms.

Every firm maps a column onto [0, 1] with the *schema-declared* range (public, identical at every
firm), so federated models see comparable inputs without any firm revealing its statistics. A
column without a declared range falls back to the firm's own min/max: local statistics that
never leave the firm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from clients.data import ColumnInfo


@dataclass(frozen=True)
class FeatureScaler:
    """Maps named columns onto [0, 1]; values outside the range are clipped."""

    names: tuple[str, ...]
    low: np.ndarray
    high: np.ndarray

    @classmethod
    def from_ranges(
        cls,
        names: Sequence[str],
        lows: Sequence[float | None],
        highs: Sequence[float | None],
        local: pd.DataFrame | None = None,
    ) -> FeatureScaler:
        """Declared ranges first; an undeclared bound comes from `local` (this firm's own rows)."""
        low = np.empty(len(names))
        high = np.empty(len(names))
        for i, (name, lo, hi) in enumerate(zip(names, lows, highs, strict=True)):
            if lo is None or hi is None:
                if local is None:
                    raise ValueError(
                        f"column {name!r} declares no range (low={lo}, high={hi}) and no local "
                        "table was given to take it from"
                    )
                values = local[name].to_numpy(dtype=float)
                lo = float(np.nanmin(values)) if lo is None else lo
                hi = float(np.nanmax(values)) if hi is None else hi
            if not hi > lo:
                raise ValueError(f"column {name!r}: range high={hi} must exceed low={lo}")
            low[i], high[i] = lo, hi
        return cls(tuple(names), low, high)

    @classmethod
    def from_columns(
        cls, columns: Sequence[ColumnInfo], local: pd.DataFrame | None = None
    ) -> FeatureScaler:
        """The manifest's columns with their declared ranges (what every party scales with)."""
        return cls.from_ranges(
            [c.name for c in columns], [c.low for c in columns], [c.high for c in columns], local
        )

    def transform(self, table: pd.DataFrame) -> np.ndarray:
        """Shape (rows, len(names)) float32; missing values become 0 (the bottom of the range)."""
        missing = [n for n in self.names if n not in table.columns]
        if missing:
            raise KeyError(f"table lacks feature columns {missing}; it has {list(table.columns)}")
        raw = table.loc[:, list(self.names)].to_numpy(dtype=np.float64, na_value=np.nan)
        scaled = np.clip((raw - self.low) / (self.high - self.low), 0.0, 1.0)
        features: np.ndarray = np.nan_to_num(scaled, nan=0.0).astype(np.float32)
        return features
