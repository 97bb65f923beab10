"""The in-process FedAvg that tunes the federated regimes is the Flower federation's model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clients.training import predict_default
from experiments.config import parse_config
from experiments.regimes.federated import run_federated, tune_federation
from experiments.regimes.standalone import Holdout, common_features
from experiments.world.synthetic import generate_world
from experiments.world.tables import ID, LABEL


@pytest.mark.slow
@pytest.mark.parametrize("secagg", ["none", "ours"])
def test_tuned_fedavg_equals_the_federation_for_the_same_hyperparameters(
    tmp_path: Path, secagg: str
) -> None:
    # Prepare: a one-point grid, so tuning's model is the one the federation must reproduce
    world = generate_world(3_000, seed=4)
    config = parse_config(
        {
            "experiment": {"name": "equal", "seeds": [4]},
            "data": {"source": "synthetic", "citizens": 3_000},
            "training": {"batch_size": 64},
            "federation": {"local_epochs": 2, "run_dir": str(tmp_path)},
            "tuning": {
                "enabled": True,
                "learning_rates": [0.05],
                "weight_decays": [1e-3],
                "max_epochs": 6,
                "patience": 10,
            },
        }
    )
    holdout = Holdout.draw(world, 0.25, seed=4, validation_fraction=0.2)
    tuning = tune_federation(world, holdout, config, seed=4)
    # Execute: the real federation with the tuned rounds, step size and penalty
    output = run_federated(world, holdout, config, 4, "federated", secagg, tuning=tuning)  # type: ignore[arg-type]
    # Assert: the same number of rounds, and the federation's validation loss is tuning's
    assert tuning.passes_run == 3 and output.info["rounds"] == tuning.passes
    x = np.concatenate(
        [
            common_features(world, f, t)[holdout.is_validation(t[ID].to_numpy())]
            for f, t in world.firms.items()
        ]
    )
    y = np.concatenate(
        [t[LABEL].to_numpy()[holdout.is_validation(t[ID].to_numpy())] for t in world.firms.values()]
    )
    p = np.clip(predict_default(output.models["global"], x), 1e-7, 1 - 1e-7)
    loss = float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))
    assert loss == pytest.approx(tuning.curve[tuning.passes - 1], abs=2e-4)
