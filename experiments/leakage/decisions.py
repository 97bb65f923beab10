"""Decisions: which privileges a score grants, to whom, and how that differs between regimes.

Gaps are signed: (rate in the group) − (rate outside it), so a negative gap means the group is
granted the privilege less often. Demographic parity compares everyone; equal opportunity only
citizens who did not default, i.e. those a fair score should have privileged alike.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from clients.scorecard import privilege_tier, score_from_default_probability, tier_names
from experiments.config import ScorecardSection
from experiments.world.causal_model import SCRUTINIZED as SCRUTINIZED_PROFESSIONS
from experiments.world.tables import ID, LABEL, World


def tiers(probabilities: np.ndarray, scorecard: ScorecardSection) -> np.ndarray:
    """Privilege tier index per row (0 = none) from default probabilities."""
    scores = score_from_default_probability(
        probabilities, scorecard.base_score, scorecard.base_odds, scorecard.pdo
    )
    return privilege_tier(scores, scorecard.tiers)


YES_WORDS = frozenset({"yes", "y", "true", "t", "1"})
"""Values that name the group of a two-valued attribute given as text (`afam = yes`)."""


def _group_level(values: pd.Series, levels: list[str]) -> str:
    """The one group of a two-valued attribute: its yes-like value, else its rarer value."""
    yes = [level for level in levels if level.strip().lower() in YES_WORDS]
    if len(yes) == 1:
        return yes[0]
    counts = values.astype(str).value_counts()
    return min(sorted(levels, reverse=True), key=lambda level: counts.get(level, 0))


def protected_groups(world: World, ids: np.ndarray) -> dict[str, np.ndarray]:
    """Membership per group, aligned with `ids`.

    Every binary sensitive attribute is one group, a 0/1 one as itself and a two-valued text
    one as its yes-like (else rarer) value, so no group appears twice as mirror images; a
    categorical one gives one group per level; the scrutinized professions give one group
    together and one each, where occupations exist. A mask is boolean where the attribute is
    known for every row; where it is missing for some, the mask is float (1 in the group, 0
    not, NaN unknown) so a missing value is never counted as outside the group.
    """
    truth = world.truth.set_index(ID).reindex(ids)
    groups: dict[str, np.ndarray] = {}
    for column in world.columns_of("truth", {"sensitive"}):
        values = truth[column.name]
        known = values.notna().to_numpy()

        def mask(inside: np.ndarray, known: np.ndarray = known) -> np.ndarray:
            return inside if known.all() else np.where(known, inside.astype(float), np.nan)

        levels = pd.unique(values.dropna())
        if set(levels) <= {0, 1}:
            groups[column.name] = mask((values == 1).to_numpy())
            continue
        names = sorted(map(str, levels))
        population = world.truth[column.name].dropna()  # not the subset: one name every call
        population_levels = sorted(map(str, pd.unique(population)))
        if len(population_levels) == 2:
            names = [_group_level(population, population_levels)]
        for level in names:
            groups[f"{column.name}={level}"] = mask((values.astype(str) == level).to_numpy())
    if "occupation" in truth.columns:
        occupation = truth["occupation"].astype(str)
        groups["scrutinized_profession"] = occupation.isin(SCRUTINIZED_PROFESSIONS).to_numpy()
        for profession in SCRUTINIZED_PROFESSIONS:
            groups[f"occupation={profession}"] = (occupation == profession).to_numpy()
    return groups


def inside_and_outside(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(in the group, known to be outside it) from a boolean or a float-with-NaN mask."""
    if mask.dtype == bool:
        return mask, ~mask
    return mask == 1, mask == 0


def _rate_gap(granted: np.ndarray, in_group: np.ndarray) -> float | None:
    inside, outside = inside_and_outside(in_group)
    if not outside.any() or not inside.any():
        return None
    return float(granted[inside].mean() - granted[outside].mean())


def decision_metrics(
    pairs: pd.DataFrame,
    probabilities: np.ndarray,
    groups: Mapping[str, np.ndarray],
    scorecard: ScorecardSection,
    reference_probabilities: np.ndarray | None = None,
    truth_probabilities: np.ndarray | None = None,
    retrained_probabilities: np.ndarray | None = None,
) -> dict[str, object]:
    """Tier distribution, tier changes against a reference regime, and group gaps.

    A tier change means something only beside its floors: against the tier of the true PD
    (`truth_probabilities`, where the world knows it) and against the same regime retrained
    with another training seed (`retrained_probabilities`: the change retraining alone makes).
    Against the reference, who gains and who loses a privilege, per group.

    pairs: the held-out (firm, ID, LABEL) rows; probabilities and every group mask align with it.
    A citizen is "privileged" when the score unlocks at least the lowest privilege tier.
    """
    names = tier_names(scorecard.tiers)
    tier = tiers(probabilities, scorecard)
    counts = np.bincount(tier, minlength=len(names)) / len(tier)
    granted = tier >= 1
    deserving = pairs[LABEL].to_numpy() == 0
    result: dict[str, object] = {
        "tier_share": {name: float(share) for name, share in zip(names, counts, strict=True)},
        "privileged_share": float(granted.mean()),
        "demographic_parity_gap": {g: _rate_gap(granted, m) for g, m in groups.items()},
        "equal_opportunity_gap": {
            g: _rate_gap(granted[deserving], m[deserving]) for g, m in groups.items()
        },
    }
    if reference_probabilities is not None:
        reference = tiers(reference_probabilities, scorecard)
        result["tier_changed_vs_unified"] = float(np.mean(reference != tier))
        result["privilege_gained_vs_unified"] = {
            g: _share_in_group(granted & (reference == 0), m) for g, m in groups.items()
        }
        result["privilege_lost_vs_unified"] = {
            g: _share_in_group(~granted & (reference >= 1), m) for g, m in groups.items()
        }
    if truth_probabilities is not None:
        result["tier_changed_vs_truth"] = float(
            np.mean(tiers(truth_probabilities, scorecard) != tier)
        )
    if retrained_probabilities is not None:
        result["tier_changed_vs_retrained"] = float(
            np.mean(tiers(retrained_probabilities, scorecard) != tier)
        )
    return result


def _share_in_group(event: np.ndarray, in_group: np.ndarray) -> float | None:
    inside, _ = inside_and_outside(in_group)
    return float(event[inside].mean()) if inside.any() else None
