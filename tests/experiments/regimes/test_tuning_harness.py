"""Validation citizens and tuning, end to end through the harness and the report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from experiments.config import parse_config
from experiments.harness import run_experiment
from experiments.regimes.standalone import Holdout, design_columns, national_database
from experiments.report.html import render_html
from experiments.world.synthetic import generate_world
from experiments.world.tables import ID


def test_validation_citizens_are_training_citizens_and_leave_the_held_out_ones_alone() -> None:
    # Prepare
    world = generate_world(4_000, seed=2)
    # Execute
    plain = Holdout.draw(world, 0.2, seed=2)
    with_validation = Holdout.draw(world, 0.2, seed=2, validation_fraction=0.25)
    # Assert: the held-out citizens do not move; validation is a quarter of the rest
    ids = world.truth[ID].to_numpy()
    assert np.array_equal(plain.test_ids, with_validation.test_ids)
    assert len(plain.validation_ids) == 0
    assert not np.isin(with_validation.validation_ids, with_validation.test_ids).any()
    share = len(with_validation.validation_ids) / (len(ids) - len(plain.test_ids))
    assert 0.2 < share < 0.3
    fit = with_validation.is_fit(ids)
    assert fit.sum() + len(with_validation.validation_ids) + len(plain.test_ids) == len(ids)


@pytest.fixture(scope="module")
def tuned_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    out = tmp_path_factory.mktemp("tuned")
    config = parse_config(
        {
            "experiment": {"name": "tuned", "seeds": [0, 1]},
            "data": {"source": "synthetic", "citizens": 3000},
            "regimes": {"federated_limit": True},
            "membership": {"pool": 200, "shadows": 4},
            "tuning": {
                "enabled": True,
                "learning_rates": [0.01, 0.1],
                "weight_decays": [0.0, 1e-3],
                "max_epochs": 8,
                "patience": 3,
            },
        }
    )
    return out, run_experiment(config, out).as_dict()


def test_results_record_each_regimes_grid_choice_and_budget(
    tuned_run: tuple[Path, dict[str, object]],
) -> None:
    # Prepare / Execute (fixture)
    _, results = tuned_run
    tuning = results["tuning"]
    # Assert: one record per seed; local-only one per firm
    assert set(tuning) == {"unified", "local_only", "federated_limit"}  # type: ignore[arg-type]
    for name, regime in tuning.items():  # type: ignore[attr-defined]
        assert len(regime["per_seed"]) == 2
        for record in regime["per_seed"]:
            records = list(record.values()) if name == "local_only" else [record]
            for r in records:
                assert len(r["grid"]) == 4 and r["budget"] == 8
                assert [r["learning_rate"], r["weight_decay"]] in r["grid"]
                assert 1 <= r["passes"] <= r["passes_run"] <= 8
                assert len(r["curve"]) == r["passes_run"]


def test_the_same_seed_gives_the_same_tuned_results(
    tuned_run: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    # Prepare
    out, results = tuned_run
    config = parse_config(results["config"])  # type: ignore[arg-type]
    # Execute
    again = run_experiment(config, tmp_path)
    # Assert
    assert (tmp_path / "results.json").read_bytes() == (out / "results.json").read_bytes()
    assert again.tuning is not None


def test_decisions_read_scores_calibrated_on_the_validation_pairs(
    tuned_run: tuple[Path, dict[str, object]],
) -> None:
    # Prepare / Execute (fixture)
    regimes = tuned_run[1]["regimes"]
    # Assert: every regime records ECE before and after, per seed
    for regime in regimes.values():  # type: ignore[attr-defined]
        calibration = regime["calibration"]
        assert len(calibration["ece_before"]["per_seed"]) == 2
        assert calibration["ece_after"]["mean"] < 0.05


def test_results_hold_paired_differences_within_their_bounds(
    tuned_run: tuple[Path, dict[str, object]],
) -> None:
    # Prepare / Execute (fixture)
    results = tuned_run[1]
    paired = results["paired"]["unified - local_only"]  # type: ignore[index]
    unified, local = (results["regimes"][n]["utility"]["auc"] for n in ("unified", "local_only"))  # type: ignore[index]
    # Assert: the per-seed differences are the regimes' own, and every interval is bounded
    expected = [u - v for u, v in zip(unified["per_seed"], local["per_seed"], strict=True)]
    assert paired["auc"]["per_seed"] == pytest.approx(expected)
    assert -1 <= paired["auc"]["ci95"][0] <= paired["auc"]["ci95"][1] <= 1
    for regime in results["regimes"].values():  # type: ignore[attr-defined]
        low, high = regime["utility"]["auc"]["ci95"]
        assert 0 <= low <= high <= 1


def test_tier_changes_stand_beside_the_true_pd_and_the_retraining_floor(
    tuned_run: tuple[Path, dict[str, object]],
) -> None:
    # Prepare / Execute (fixture)
    regimes = tuned_run[1]["regimes"]
    # Assert: every tuned regime has both floors; unified's floor is a real retraining
    for regime in regimes.values():  # type: ignore[attr-defined]
        decisions = regime["decisions"]
        assert 0 <= decisions["tier_changed_vs_truth"]["mean"] <= 1
        assert 0 <= decisions["tier_changed_vs_retrained"]["mean"] <= 1
        assert set(decisions["privilege_gained_vs_unified"]) == set(
            decisions["demographic_parity_gap"]
        )
    assert regimes["unified"]["decisions"]["tier_changed_vs_retrained"]["mean"] > 0  # type: ignore[index]
    assert regimes["unified"]["decisions"]["tier_changed_vs_unified"]["mean"] == 0  # type: ignore[index]


def test_unified_takes_the_design_validation_picks(
    tuned_run: tuple[Path, dict[str, object]],
) -> None:
    # Prepare / Execute (fixture)
    records = tuned_run[1]["tuning"]["unified"]["per_seed"]  # type: ignore[index]
    # Assert: both designs tuned alike; the chosen one has the lowest validation loss
    for record in records:
        losses = record["design_losses"]
        assert set(losses) == {"common", "pooled", "blocks"}
        assert record["design"] == min(losses, key=losses.get)
        assert min(record["curve"]) == losses[record["design"]]


def test_the_pooled_design_keeps_firm_effects_but_no_firm_blocks() -> None:
    # Prepare
    world = generate_world(2_000, seed=1)
    _, columns = national_database(world)
    # Execute
    pooled = {c.name for c in design_columns(world, columns, "pooled")}
    # Assert
    assert {f"{firm}.present" for firm in world.firms} <= pooled
    assert any(name.startswith("pooled.") for name in pooled)
    blocks = {c.name for c in columns} - pooled
    assert blocks and all(name.split(".")[0] in world.firms for name in blocks)
    # ... and the common design is the pooled one without the firm effects
    common = {c.name for c in design_columns(world, columns, "common")}
    assert common == pooled - {f"{firm}.present" for firm in world.firms}


def test_the_report_shows_tuning_and_convergence(
    tuned_run: tuple[Path, dict[str, object]],
) -> None:
    # Prepare / Execute
    page = render_html(tuned_run[1])
    # Assert
    assert "<h2>Tuning and convergence</h2>" in page
    assert "Validation loss against passes" in page
    assert "Calibration before decisions" in page
    assert "Paired differences" in page
    assert "tier ≠ retrained (noise floor)" in page


def test_the_federated_limit_is_a_tuned_reference_the_unified_score_is_paired_with(
    tuned_run: tuple[Path, dict[str, object]],
) -> None:
    # Prepare / Execute (fixture)
    _, results = tuned_run
    # Assert: utility and its tuning recorded, no attacks run on it, one paired difference
    references = results["references"]
    assert isinstance(references, dict) and list(references) == ["federated_limit"]
    auc = references["federated_limit"]["utility"]["auc"]
    assert 0.6 < auc["mean"] < 1.0 and len(auc["per_seed"]) == 2
    assert "federated_limit" not in results["regimes"]  # type: ignore[operator]
    assert "federated_limit" in results["tuning"]  # type: ignore[operator]
    assert "unified - federated_limit" in results["paired"]  # type: ignore[operator]
    assert "federated_limit (reference)" in render_html(results)
