"""From probability of default to a 350–950 score and privilege tiers.

Points-to-double-odds scaling, as credit scorecards do: `base_score` points at good:bad odds of
`base_odds`, and every `pdo` points double the odds. Scores are clipped to the Sesame Credit
range, so the map is monotone (non-increasing in PD) and bounded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

SCORE_MIN = 350
SCORE_MAX = 950
_PD_FLOOR = 1e-9  # keeps log-odds finite at PD 0 or 1; the clip decides the score there anyway


def score_from_default_probability(
    pd_: np.ndarray, base_score: float = 650.0, base_odds: float = 20.0, pdo: float = 50.0
) -> np.ndarray:
    """Score = offset + factor * ln(good:bad odds), clipped to [350, 950]."""
    if base_odds <= 0 or pdo <= 0:
        raise ValueError(f"base_odds and pdo must be > 0, got base_odds={base_odds}, pdo={pdo}")
    p = np.clip(np.asarray(pd_, dtype=np.float64), _PD_FLOOR, 1.0 - _PD_FLOOR)
    factor = pdo / math.log(2.0)
    offset = base_score - factor * math.log(base_odds)
    return np.clip(offset + factor * np.log((1.0 - p) / p), SCORE_MIN, SCORE_MAX)


def privilege_tier(scores: np.ndarray, thresholds: Mapping[str, float]) -> np.ndarray:
    """Index of the highest privilege a score unlocks: 0 = none, i = the i-th lowest threshold.

    Privileges are cumulative (a visa fast-track holder may also rent a car without deposit),
    so one integer per citizen says everything.
    """
    cutoffs = np.sort(np.asarray(list(thresholds.values()), dtype=np.float64))
    return np.searchsorted(cutoffs, np.asarray(scores, dtype=np.float64), side="right")


def tier_names(thresholds: Mapping[str, float]) -> list[str]:
    """Names for the tier indices of `privilege_tier`: "none", then privileges by threshold."""
    return ["none", *sorted(thresholds, key=lambda name: thresholds[name])]
