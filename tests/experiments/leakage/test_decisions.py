import numpy as np
import pandas as pd
import pytest

from experiments.config import ScorecardSection
from experiments.leakage.decisions import decision_metrics, protected_groups
from experiments.world.synthetic import generate_world
from experiments.world.tables import ID, LABEL

SCORECARD = ScorecardSection(tiers={"hotel": 600.0, "visa": 750.0})
LOW_RISK, HIGH_RISK = 0.001, 0.5  # score ~ 900 (both tiers) and ~ 434 (none)


def _pairs(labels: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"firm": "f", ID: range(len(labels)), LABEL: labels})


def test_a_score_that_denies_one_group_shows_the_full_gap() -> None:
    # Prepare: group members all get the high-risk score, everyone else the low-risk one
    pairs = _pairs([0, 0, 0, 0, 1, 1])
    in_group = np.array([True, True, False, False, True, False])
    pds = np.where(in_group, HIGH_RISK, LOW_RISK)

    # Execute
    result = decision_metrics(pairs, pds, {"g": in_group}, SCORECARD)

    # Assert
    assert result["demographic_parity_gap"]["g"] == pytest.approx(-1.0)
    assert result["equal_opportunity_gap"]["g"] == pytest.approx(-1.0)
    assert result["tier_share"] == pytest.approx({"none": 0.5, "hotel": 0.0, "visa": 0.5})


def test_identical_scores_change_no_tier_and_a_one_sided_group_has_no_gap() -> None:
    pairs = _pairs([0, 1, 0])
    pds = np.array([0.01, 0.2, 0.05])

    result = decision_metrics(
        pairs, pds, {"all": np.ones(3, bool)}, SCORECARD, reference_probabilities=pds
    )

    assert result["tier_changed_vs_unified"] == 0.0
    assert result["demographic_parity_gap"]["all"] is None


def test_groups_cover_sensitive_attributes_and_scrutinized_professions() -> None:
    world = generate_world(3_000, seed=0)
    ids = world.truth[ID].to_numpy()[:500]

    groups = protected_groups(world, ids)

    for attribute in (
        "ethnic_minority",
        "religious_practice",
        "chronic_health",
        "political_expression",
    ):
        truth = world.truth.set_index(ID).loc[ids, attribute].to_numpy() == 1
        np.testing.assert_array_equal(groups[attribute], truth)
    assert "scrutinized_profession" in groups and "occupation=journalist" in groups


def test_tier_changes_against_unified_truth_and_retraining_and_who_gains() -> None:
    # Prepare: the group gains its privilege against unified; the others lose theirs
    pairs = _pairs([0, 0, 0, 0])
    in_group = np.array([True, True, False, False])
    regime = np.array([LOW_RISK, LOW_RISK, HIGH_RISK, HIGH_RISK])
    unified = np.array([HIGH_RISK, LOW_RISK, LOW_RISK, LOW_RISK])
    truth = np.array([LOW_RISK, LOW_RISK, LOW_RISK, HIGH_RISK])
    # Execute
    result = decision_metrics(
        pairs,
        regime,
        {"g": in_group},
        SCORECARD,
        reference_probabilities=unified,
        truth_probabilities=truth,
        retrained_probabilities=regime,
    )
    # Assert
    assert result["tier_changed_vs_unified"] == pytest.approx(0.75)
    assert result["tier_changed_vs_truth"] == pytest.approx(0.25)
    assert result["tier_changed_vs_retrained"] == 0.0
    assert result["privilege_gained_vs_unified"] == {"g": pytest.approx(0.5)}
    assert result["privilege_lost_vs_unified"] == {"g": 0.0}
