"""The same config and seed give a byte-identical results.json, federated regimes included;
DP regimes only with `[federation] reproducible = true`, which results.json and the report flag."""

from pathlib import Path

import pytest

from experiments.config import ExperimentConfig, parse_config
from experiments.harness import run_experiment
from experiments.report.html import write_report
from experiments.results import load_results


@pytest.mark.slow
def test_secure_and_dp_federated_runs_repeat_only_with_reproducible_noise(tmp_path: Path) -> None:
    # Prepare: a tiny world, one round of each stochastic federated regime
    def config(reproducible: bool) -> ExperimentConfig:
        return parse_config(
            {
                "experiment": {"name": "repeat", "seeds": [0]},
                "data": {"source": "synthetic", "citizens": 2000},
                "training": {"epochs": 1},
                "regimes": {"unified": False, "federated_secagg": True, "federated_dp": True},
                "federation": {
                    "rounds": 1,
                    "dp_epsilons": [4.0],
                    "run_dir": str(tmp_path / "fed"),
                    "reproducible": reproducible,
                },
                "membership": {"pool": 200, "shadows": 0},
            }
        )

    # Execute: twice with reproducible noise, once without
    run_experiment(config(True), tmp_path / "a")
    run_experiment(config(True), tmp_path / "b")
    fresh = run_experiment(config(False), tmp_path / "c")
    write_report(load_results(tmp_path / "a" / "results.json").as_dict(), tmp_path / "a")

    # Assert: reproducible runs are byte-identical and say how
    first = (tmp_path / "a" / "results.json").read_bytes()
    assert first == (tmp_path / "b" / "results.json").read_bytes()
    results = load_results(tmp_path / "a" / "results.json")  # the DP blocks fit the model
    assert results.to_json().encode() == first
    privacy = results.regimes["federated_dp_eps4"].privacy
    assert privacy is not None and privacy.noise == "run-seed"
    report = (tmp_path / "a" / "report.html").read_text()
    assert "Reproducible DP noise" in report and "could regenerate" in report
    # ... and without it, the DP regime draws other noise (the secure one is unchanged)
    dp, fresh_dp = results.regimes["federated_dp_eps4"], fresh.regimes["federated_dp_eps4"]
    assert fresh.regimes["federated_secagg"] == results.regimes["federated_secagg"]
    assert fresh_dp.utility != dp.utility
    assert fresh_dp.privacy is not None and fresh_dp.privacy.noise == "os-generator"


@pytest.mark.slow
def test_tuned_federated_runs_are_byte_identical(tmp_path) -> None:
    # Prepare: tuning on, so the federated regimes tune in process and then federate
    config = parse_config(
        {
            "experiment": {"name": "repeat-tuned", "seeds": [0]},
            "data": {"source": "synthetic", "citizens": 2000},
            "regimes": {"local_only": False, "federated_secagg": True, "federated_dp": True},
            "federation": {
                "dp_epsilons": [4.0],
                "run_dir": str(tmp_path / "fed"),
                "reproducible": True,
            },
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
