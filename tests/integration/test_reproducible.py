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


@pytest.mark.slow
def test_tuned_federated_runs_are_byte_identical(tmp_path) -> None:
    # Prepare: tuning on, so the federated regimes tune in process and then federate
    config = parse_config(
        {
            "experiment": {"name": "repeat-tuned", "seeds": [0]},
            "data": {"source": "synthetic", "citizens": 2000},
            "regimes": {"local_only": False, "federated_secagg": True, "federated_dp": True},
            "federation": {"dp_epsilons": [4.0], "run_dir": str(tmp_path / "fed")},
            "membership": {"pool": 200, "shadows": 4},
            "tuning": {
                "enabled": True,
                "learning_rates": [0.03],
                "weight_decays": [0.0, 1e-3],
                "max_epochs": 3,
                "patience": 2,
            },
        }
    )

    # Execute
    run_experiment(config, tmp_path / "a")
    run_experiment(config, tmp_path / "b")

    # Assert
    first = (tmp_path / "a" / "results.json").read_bytes()
    assert first == (tmp_path / "b" / "results.json").read_bytes()
    results = load_results(tmp_path / "a" / "results.json")
    assert results.tuning is not None and "federated_secagg" in results.tuning
