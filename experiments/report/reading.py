"""How the report reads results.json: regimes in order and by name, tiers in order, and a
summary's mean with its error bar. Shared by the report's tables and figures.
"""

from __future__ import annotations

from typing import Any

from clients.scorecard import tier_names

REGIME_LABELS = {
    "unified": "Unified national score",
    "local_only": "Local-only firm scores",
    "federated_plain": "Federated, no secure aggregation",
    "federated_secagg": "Federated + secure aggregation (ours)",
    "federated_flower_secagg": "Federated + Flower SecAgg+",
}


REGIME_ORDER = (
    "unified",
    "federated_secagg",
    "federated_flower_secagg",
    "federated_plain",
    "federated_dp_eps",
    "local_only",
)


def ordered_regimes(results: dict[str, Any]) -> list[str]:
    """Regimes from the most centralised to the least, DP regimes by ε (results.json sorts keys)."""

    def rank(name: str) -> tuple[int, float]:
        if name.startswith("federated_dp_eps"):
            return REGIME_ORDER.index("federated_dp_eps"), float(
                name.removeprefix("federated_dp_eps")
            )
        return (REGIME_ORDER.index(name) if name in REGIME_ORDER else len(REGIME_ORDER)), 0.0

    return sorted(results["regimes"], key=rank)


def ordered_tiers(results: dict[str, Any]) -> list[str]:
    """Tier names from "none" up, by threshold."""
    return tier_names(results["config"]["scorecard"]["tiers"])


def regime_label(name: str) -> str:
    if name.startswith("federated_dp_eps"):
        return f"Federated + DP (ε = {name.removeprefix('federated_dp_eps')})"
    return REGIME_LABELS.get(name, name)


def mean_and_error(summary: dict[str, Any]) -> tuple[float, float]:
    mean = summary["mean"]
    if mean is None:
        return float("nan"), 0.0
    low, high = summary["ci95"]
    return mean, (high - low) / 2
