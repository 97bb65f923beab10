"""The same config and seed give a byte-identical results.json, federated regimes included."""

import pytest

from experiments.config import parse_config
from experiments.harness import run_experiment
from experiments.results import load_results


@pytest.mark.slow
def test_secure_and_dp_federated_runs_are_byte_identical(tmp_path) -> None:
    # Prepare: a tiny world, one round of each stochastic federated regime, two runs
    config = parse_config(
        {
            "experiment": {"name": "repeat", "seeds": [0]},
            "data": {"source": "synthetic", "citizens": 2000},
            "training": {"epochs": 1},
            "regimes": {"unified": False, "federated_secagg": True, "federated_dp": True},
            "federation": {"rounds": 1, "dp_epsilons": [4.0], "run_dir": str(tmp_path / "fed")},
            "membership": {"pool": 200, "shadows": 0},
        }
    )

    # Execute
    run_experiment(config, tmp_path / "a")
    run_experiment(config, tmp_path / "b")

    # Assert
    first = (tmp_path / "a" / "results.json").read_bytes()
    assert first == (tmp_path / "b" / "results.json").read_bytes()
    results = load_results(tmp_path / "a" / "results.json")  # the DP blocks fit the model
    assert results.to_json().encode() == first
    assert results.regimes["federated_dp_eps4"].privacy is not None
