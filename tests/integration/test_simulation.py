"""A real Flower simulation (Ray backend): firms as SuperNodes, our secure aggregation."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from clients import records as R
from clients.app import build_client_app
from clients.model import flatten_weights, get_weights
from experiments.config import parse_config
from experiments.regimes.federated import FEDERATED_SECAGG, federation_run, run_federated
from experiments.regimes.standalone import Holdout
from experiments.world.datasets import load_german_credit
from server.federation import run_federation
from server.inprocess import InProcessGrid


@pytest.mark.slow
@pytest.mark.usefixtures("reap_started_processes")
def test_simulated_secure_federation_matches_plain_fedavg(tmp_path: Path) -> None:
    # Prepare: three firms, two rounds
    world = load_german_credit(n_firms=3, seed=0)
    holdout = Holdout.draw(world, 0.25, seed=0)
    config = parse_config(
        {
            "experiment": {"name": "sim"},
            "data": {"source": "german_credit", "firms": 3},
            "federation": {"rounds": 2, "weight_scale": 1000, "run_dir": str(tmp_path)},
        }
    )
    # Execute: the regime on the simulation engine, then the same rounds in the clear
    output = run_federated(world, holdout, config, 0, FEDERATED_SECAGG, "ours")
    run_dir = Path(str(output.info["run_dir"]))
    plain_settings = federation_run(config, "none", 0, tmp_path / "plain", run_dir / "world")
    grid = InProcessGrid(
        build_client_app(
            {
                R.WORLD_DIR: str(run_dir / "world"),
                R.HOLDOUT_FILE: str(run_dir / "heldout_ids.npy"),
            }
        ),
        [{R.PARTITION_ID: i} for i in range(3)],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = run_federation(grid, plain_settings)
    # Assert
    secure_weights = flatten_weights(get_weights(output.models["global"]))
    np.testing.assert_allclose(secure_weights, plain.weights, rtol=0, atol=1e-3)
    assert output.probabilities.shape == (len(holdout.pairs),)
    assert np.all((output.probabilities > 0) & (output.probabilities < 1))
    assert [r["contributors"] for r in output.info["history"]] == [3, 3]  # type: ignore[index]
    assert (run_dir / "transcript.jsonl").stat().st_size > 0
