"""Paired differences over seeds, and intervals that stay within a metric's bounds."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments.metrics import summarise
from experiments.paired import comparisons, paired_differences


def _seeds(aucs: list[float]) -> list[dict[str, Any]]:
    return [{"utility": {"auc": a, "ks": a / 2, "brier": 0.05, "ece": 0.01}} for a in aucs]


def test_the_headline_comparisons_use_the_secure_federated_regime() -> None:
    # Prepare
    names = ["unified", "local_only", "federated_plain", "federated_secagg", "federated_dp_eps1"]
    # Execute / Assert
    assert comparisons(names) == [
        ("unified", "federated_secagg"),
        ("federated_secagg", "local_only"),
        ("federated_secagg", "federated_dp_eps1"),
    ]
    assert comparisons(["unified", "local_only"]) == [("unified", "local_only")]


def test_the_federated_limit_is_compared_with_unified_and_federated() -> None:
    # Execute / Assert
    assert comparisons(["unified", "federated_secagg", "federated_limit"]) == [
        ("unified", "federated_secagg"),
        ("unified", "federated_limit"),
        ("federated_secagg", "federated_limit"),
    ]
    assert comparisons(["unified", "federated_limit"]) == [("unified", "federated_limit")]


def test_a_paired_difference_is_tight_where_marginal_intervals_overlap() -> None:
    # Prepare: two regimes that move together over seeds, one always 0.016 ahead
    federated = [0.80, 0.84, 0.82]
    unified = [f + 0.016 for f in federated]
    per_seed = {"unified": _seeds(unified), "federated_secagg": _seeds(federated)}
    # Execute
    difference = paired_differences(per_seed)["unified - federated_secagg"]["auc"]
    # Assert: marginal intervals overlap; the paired one excludes 0
    low_u = summarise(unified)["ci95"][0]  # type: ignore[index]
    high_f = summarise(federated)["ci95"][1]  # type: ignore[index]
    assert low_u < high_f
    assert difference["mean"] == pytest.approx(0.016)
    assert difference["ci95"][0] > 0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=5))
def test_a_bounded_interval_stays_within_its_bounds(values: list[float]) -> None:
    # Execute
    summary = summarise(values, bounds=(0.0, 1.0))
    # Assert
    low, high = summary["ci95"]  # type: ignore[misc]
    assert 0.0 <= low <= summary["mean"] <= high <= 1.0  # type: ignore[operator]
