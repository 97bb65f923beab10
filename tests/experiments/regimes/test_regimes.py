"""The first two regimes on a small synthetic world: they learn, and they share held-out rows."""

import json
from pathlib import Path

import numpy as np
import pytest

from experiments.config import load_config, parse_config
from experiments.harness import run_experiment
from experiments.regimes.standalone import Holdout, national_database, run_local_only, run_unified
from experiments.world.synthetic import generate_world
from experiments.world.tables import ID, LABEL

SMOKE = Path(__file__).parents[3] / "experiments" / "configs" / "smoke.toml"


@pytest.fixture(scope="module")
def world():
    return generate_world(8_000, seed=5)


@pytest.fixture(scope="module")
def config():
    return load_config(SMOKE)


def test_holdout_pairs_are_exactly_the_held_out_customers_of_each_firm(world) -> None:
    holdout = Holdout.draw(world, fraction=0.25, seed=1)

    for firm, table in world.firms.items():
        expected = set(table[ID][np.isin(table[ID], holdout.test_ids)])
        assert set(holdout.pairs.loc[holdout.pairs["firm"] == firm, ID]) == expected
    assert 0.2 < len(holdout.test_ids) / len(world.truth) < 0.3


def test_national_database_joins_every_firm_and_the_government_per_citizen(world) -> None:
    table, columns = national_database(world)

    assert len(table) == len(world.truth)
    assert table[ID].is_unique
    for firm, firm_table in world.firms.items():
        present = table.set_index(ID)[f"{firm}.present"]
        assert present.sum() == len(firm_table)
        assert set(present[present == 1].index) == set(firm_table[ID])
    declared = {c.name for c in columns}
    assert declared <= set(table.columns)
    assert any(c.role == "government" for c in columns)


def test_unified_score_learns_the_synthetic_world(world, config) -> None:
    holdout = Holdout.draw(world, fraction=0.25, seed=0)

    output = run_unified(world, holdout, config, seed=0)

    from sklearn.metrics import roc_auc_score

    auc = roc_auc_score(holdout.pairs[LABEL], output.probabilities)
    assert auc > 0.75
    assert not np.isnan(output.probabilities).any()


def test_local_only_scores_every_pair_with_the_firms_own_model(world, config) -> None:
    holdout = Holdout.draw(world, fraction=0.25, seed=0)

    output = run_local_only(world, holdout, config, seed=0)

    assert set(output.models) == set(world.firms)
    assert output.probabilities.shape == (len(holdout.pairs),)
    assert not np.isnan(output.probabilities).any()


def test_results_json_has_every_regime_metric_and_firm_and_is_reproducible(tmp_path) -> None:
    raw = {
        "experiment": {"name": "tiny", "seeds": [0, 1]},
        "data": {"source": "synthetic", "citizens": 3000},
        "training": {"epochs": 2},
        "membership": {"pool": 400, "shadows": 4},
    }
    config = parse_config(raw)

    first = run_experiment(config, tmp_path / "a")
    run_experiment(config, tmp_path / "b")

    on_disk = json.loads((tmp_path / "a" / "results.json").read_text())
    assert on_disk == json.loads(first.to_json())
    assert (tmp_path / "a" / "results.json").read_bytes() == (
        tmp_path / "b" / "results.json"
    ).read_bytes()
    for regime in ("unified", "local_only"):
        utility = on_disk["regimes"][regime]["utility"]
        assert set(utility) == {"auc", "ks", "brier", "ece"}
        assert len(utility["auc"]["per_seed"]) == 2
        low, high = utility["auc"]["ci95"]
        assert low <= utility["auc"]["mean"] <= high
    assert len(on_disk["regimes"]["local_only"]["per_firm"]) == 8
