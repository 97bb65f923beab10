"""A real Flower simulation (Ray backend): firms as SuperNodes, our secure aggregation."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from clients import records as R
from clients.app import build_client_app
from clients.model import flatten_weights, get_weights
from experiments.config import ExperimentConfig, parse_config
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


@pytest.mark.slow
@pytest.mark.usefixtures("reap_started_processes")
def test_a_simulated_malicious_mode_federation_gives_each_firm_an_identity(
    tmp_path: Path,
) -> None:
    # Prepare: three firms, two rounds, the malicious-server mode
    world = load_german_credit(n_firms=3, seed=0)
    holdout = Holdout.draw(world, 0.25, seed=0)

    def experiment(mode: str) -> ExperimentConfig:
        federation = {"rounds": 2, "weight_scale": 1000, "run_dir": str(tmp_path)}
        return parse_config(
            {
                "experiment": {"name": "sim"},
                "data": {"source": "german_credit", "firms": 3},
                "federation": {**federation, "secagg_mode": mode},
            }
        )

    # Execute: the regime on the simulation engine, then the same rounds semi-honest in process
    output = run_federated(world, holdout, experiment("malicious"), 0, FEDERATED_SECAGG, "ours")
    run_dir = Path(str(output.info["run_dir"]))
    semi_honest = federation_run(
        experiment("semi-honest"), "ours", 0, tmp_path / "semi", run_dir / "world"
    )
    grid = InProcessGrid(
        build_client_app(
            {
                R.WORLD_DIR: str(run_dir / "world"),
                R.HOLDOUT_FILE: str(run_dir / "heldout_ids.npy"),
            }
        ),
        [{R.PARTITION_ID: i} for i in range(3)],
    )
    reference = run_federation(grid, semi_honest)
    # Assert: identities written into the run directory; every round had its consistency
    # check; the same model as the semi-honest rounds (the sums are exact in both)
    manifest = (run_dir / "identities" / "manifest.json").read_text()
    assert sorted(json.loads(manifest)["keys"]) == ["1", "2", "3"]
    keys = sorted((run_dir / "identities" / "keys").glob("*.pem"))
    assert [k.name for k in keys] == ["0.pem", "1.pem", "2.pem"]
    assert all(oct(k.stat().st_mode & 0o777) == "0o600" for k in keys)
    assert [r["contributors"] for r in output.info["history"]] == [3, 3]  # type: ignore[index]
    stages = {
        json.loads(line)["stage"]
        for line in (run_dir / "transcript.jsonl").read_text().splitlines()
    }
    assert "consistency_check" in stages
    secure_weights = flatten_weights(get_weights(output.models["global"]))
    np.testing.assert_allclose(secure_weights, reference.weights, rtol=0, atol=1e-6)
