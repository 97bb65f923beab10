"""Paired differences over seeds: the comparisons the headline makes, seed by seed.

Regimes in one seed share the world, the held-out citizens and the validation citizens, so
the seed-to-seed spread of a difference is far smaller than that of either figure; marginal
intervals that overlap say nothing about whether one regime beats another. Each difference is
summarised over the seeds it is defined in, its interval clipped to the difference's bounds.
"""

from __future__ import annotations

from typing import Any

from experiments.metrics import summarise

PAIRED_METRICS = ("auc", "ks", "brier", "ece")
"""Utility metrics, each in [0, 1], so each difference is in [-1, 1]."""
FEDERATED_REFERENCE = ("federated_secagg", "federated_plain", "federated_flower_secagg")
"""The federated regime the differences use: the first of these that ran."""


FEDERATED_LIMIT = "federated_limit"
"""The reference model `experiments.regimes.limit` trains."""


def comparisons(regimes: list[str]) -> list[tuple[str, str]]:
    """(a, b) for a − b: unified − federated, federated − local-only, federated − each DP, and
    unified and federated − the federated limit when it ran."""
    federated = next((name for name in FEDERATED_REFERENCE if name in regimes), None)
    pairs: list[tuple[str, str]] = []
    if federated is None:
        if "unified" in regimes and "local_only" in regimes:
            pairs.append(("unified", "local_only"))
    else:
        if "unified" in regimes:
            pairs.append(("unified", federated))
        if "local_only" in regimes:
            pairs.append((federated, "local_only"))
        pairs += [(federated, name) for name in regimes if name.startswith("federated_dp_eps")]
    if FEDERATED_LIMIT in regimes:
        pairs += [(a, FEDERATED_LIMIT) for a in ("unified", federated) if a and a in regimes]
    return pairs


def pair_name(a: str, b: str) -> str:
    return f"{a} - {b}"


def paired_differences(per_seed: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """{"a - b": {metric: summary of a − b over seeds}} from each regime's per-seed figures."""
    differences: dict[str, Any] = {}
    for a, b in comparisons(list(per_seed)):
        differences[pair_name(a, b)] = {
            metric: summarise(
                [
                    float(x["utility"][metric]) - float(y["utility"][metric])
                    for x, y in zip(per_seed[a], per_seed[b], strict=True)
                ],
                bounds=(-1.0, 1.0),
            )
            for metric in PAIRED_METRICS
        }
    return differences
