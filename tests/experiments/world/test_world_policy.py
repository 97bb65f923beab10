"""The policy positive control: strength 0 is the world as before; a strong policy must make
the harness's own attribute-inference and group-gap figures light up."""

from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from experiments.config import parse_config
from experiments.harness import run_experiment
from experiments.world.policy import PolicySettings
from experiments.world.synthetic import generate_world
from experiments.world.tables import LABEL


def test_strength_zero_draws_the_world_exactly_as_without_a_policy() -> None:
    # Execute
    before = generate_world(3000, seed=4)
    after = generate_world(3000, seed=4, policy=PolicySettings(strength=0.0))

    # Assert
    pd.testing.assert_frame_equal(after.truth, before.truth)
    pd.testing.assert_frame_equal(after.government, before.government)
    for firm, table in before.firms.items():
        pd.testing.assert_frame_equal(after.firms[firm], table)
    assert after.meta == before.meta


@pytest.mark.parametrize("target", ["political_expression", "scrutinized_profession", "doctor"])
def test_a_policy_moves_its_groups_default_rate_and_keeps_the_base_rate(target: str) -> None:
    # Execute
    neutral = generate_world(20_000, seed=1)
    policed = generate_world(20_000, seed=1, policy=PolicySettings(target=target, strength=3.0))

    # Assert
    def group_rate(truth: pd.DataFrame) -> float:
        if target == "political_expression":
            inside = truth[target] == 1
        elif target == "scrutinized_profession":
            inside = truth["occupation"].isin(["teacher", "accountant", "journalist", "doctor"])
            inside |= truth["occupation"].isin(["veterinarian", "tour_guide"])
        else:
            inside = truth["occupation"] == target
        return float(truth.loc[inside, LABEL].mean())

    assert group_rate(policed.truth) > group_rate(neutral.truth) + 0.1
    assert abs(policed.truth[LABEL].mean() - neutral.truth[LABEL].mean()) < 0.01
    assert policed.meta["policy"] == {"target": target, "strength": 3.0}
    assert "policy" not in neutral.meta


@pytest.mark.parametrize(
    ("raw", "field"),
    [({"target": "politics"}, "target"), ({"strength": 11.0}, "strength"), ({"tilt": 1}, "tilt")],
)
def test_bad_policy_settings_name_the_field(raw: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        PolicySettings.model_validate(raw)


def _unified_run(strength: float, out: Path) -> dict[str, float]:
    """The unified regime's political-expression figures from one small run."""
    config = parse_config(
        {
            "experiment": {"name": "policy-control", "seeds": [0]},
            "data": {"source": "synthetic", "citizens": 4000, "policy": {"strength": strength}},
            "training": {"epochs": 20, "learning_rate": 0.05},
            "regimes": {"local_only": False},
            "membership": {"pool": 100, "shadows": 0},
        }
    )
    regime = run_experiment(config, out).regimes["unified"]
    assert regime.score_consumer is not None
    figures = {
        "advantage": regime.attribute_inference["political_expression"].advantage.mean,
        "gap": regime.decisions.demographic_parity_gap["political_expression"].mean,
        "consumer": regime.score_consumer["quasi_identifiers"][
            "political_expression"
        ].advantage.mean,
    }
    return {name: float("nan") if value is None else value for name, value in figures.items()}


def test_the_harness_detects_a_policy_that_moves_default_by_political_expression(
    tmp_path: Path,
) -> None:
    # Execute: the experiment's own path, without and with a strong policy
    neutral = _unified_run(0.0, tmp_path / "neutral")
    policed = _unified_run(5.0, tmp_path / "policed")

    # Assert: at strength 0 the score adds nothing beyond the QIs (the AUC's standard error at
    # ~100 positives is about 0.03); a strong policy makes the score reveal the attribute, and
    # the group is privileged far less often
    assert abs(neutral["advantage"]) < 0.04
    assert policed["advantage"] > 0.06
    assert policed["consumer"] > neutral["consumer"] + 0.05
    assert policed["gap"] < neutral["gap"] - 0.1
