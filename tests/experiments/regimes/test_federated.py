"""Federated regime wiring: names, switches, and held-out scoring (no simulation engine)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clients.participant import ModelSpec
from experiments.config import parse_config
from experiments.harness import enabled_regimes
from experiments.regimes.federated import (
    dp_regime_name,
    federated_regimes,
    federation_run,
    score_holdout,
)
from experiments.regimes.standalone import Holdout
from experiments.world.datasets import load_german_credit
from experiments.world.tables import write_world
from server.rounds import FederationResult
from server.settings import FederationRun


def test_switches_enable_one_dp_regime_per_epsilon() -> None:
    # Prepare
    config = parse_config(
        {
            "experiment": {"name": "x"},
            "regimes": {"federated_secagg": True, "federated_plain": True, "federated_dp": True},
            "federation": {"dp_epsilons": [0.5, 8.0]},
        }
    )
    # Execute
    names = list(federated_regimes(config))
    # Assert
    assert names == [
        "federated_secagg",
        "federated_plain",
        "federated_dp_eps0.5",
        "federated_dp_eps8",
    ]
    assert set(names) <= set(enabled_regimes(config))


def test_federated_regimes_are_off_by_default() -> None:
    # Prepare / Execute
    config = parse_config({"experiment": {"name": "x"}})
    # Assert
    assert federated_regimes(config) == {}
    assert dp_regime_name(1.0) == "federated_dp_eps1"


def test_held_out_pairs_are_scored_with_each_firms_own_rows(tmp_path: Path) -> None:
    # Prepare: a model that predicts from the firm's common columns
    world = load_german_credit(n_firms=3, seed=1)
    write_world(world, tmp_path)
    holdout = Holdout.draw(world, 0.3, seed=1)
    spec = FederationRun(world_dir=str(tmp_path)).model_spec()
    rng = np.random.default_rng(0)
    weights = rng.normal(size=spec.initial_weights().size)
    # Execute
    probabilities, info = score_holdout(tmp_path, holdout, FederationResult(weights, spec, [], {}))
    # Assert: every pair scored, and a citizen's score depends on the firm that scores them
    assert probabilities.shape == (len(holdout.pairs),)
    assert not np.isnan(probabilities).any()
    assert info["n_features"] == spec.n_features
    assert len(np.unique(probabilities.round(6))) > 1


def test_fedscore_run_and_flwr_run_start_from_the_same_defaults(tmp_path: Path) -> None:
    # Prepare: `flwr run .` reads [tool.flwr.app.config]; `fedscore run` an experiment TOML
    # that sets nothing but its name
    import tomllib

    pyproject = Path(__file__).parents[3] / "pyproject.toml"
    listed = tomllib.loads(pyproject.read_text())["tool"]["flwr"]["app"]["config"]
    experiment = parse_config({"experiment": {"name": "x"}})
    # Execute
    flwr_run = FederationRun.from_run_config(listed)
    fedscore_run = federation_run(experiment, "ours", 0, tmp_path / "run", tmp_path / "world")
    # Assert: every setting alike but where each run writes and reads its files
    paths = {"world-dir", "run-dir"}
    flwr_settings = {k: v for k, v in flwr_run.to_run_config().items() if k not in paths}
    fedscore_settings = {k: v for k, v in fedscore_run.to_run_config().items() if k not in paths}
    assert fedscore_settings == flwr_settings
    spec = ModelSpec("logistic", 12, 32, 0)
    assert fedscore_run.round_config(spec, 1) == flwr_run.round_config(spec, 1)
    assert fedscore_run.round_config(spec, 1).batch_size == 256  # the experiment's, not 128
