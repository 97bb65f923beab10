"""Seeds run side by side in worker processes give the results of one process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.config import parse_config
from experiments.harness import run_experiment


def _without_workers(path: Path) -> dict[str, object]:
    results = json.loads(path.read_text())
    results["config"]["experiment"].pop("workers")
    return results


@pytest.mark.slow
def test_two_worker_processes_give_the_results_of_one(tmp_path: Path) -> None:
    # Prepare: two seeds, one federated regime (its Ray cluster starts inside each worker)
    def config(workers: int) -> dict[str, object]:
        return {
            "experiment": {"name": "workers", "seeds": [0, 1], "workers": workers},
            "data": {"source": "synthetic", "citizens": 2000},
            "regimes": {"federated_plain": True, "federated_limit": True},
            "federation": {"rounds": 1},
            "membership": {"pool": 200, "shadows": 4},
        }

    # Execute
    run_experiment(parse_config(config(1)), tmp_path / "one")
    run_experiment(parse_config(config(2)), tmp_path / "two")

    # Assert: the same figures, seed by seed, in the config's seed order
    one = _without_workers(tmp_path / "one" / "results.json")
    two = _without_workers(tmp_path / "two" / "results.json")
    assert one == two
    assert one["seeds"] == [0, 1] and "federated_plain" in one["regimes"]  # type: ignore[operator]


def test_workers_must_be_a_positive_count() -> None:
    # Execute / Assert
    with pytest.raises(ValueError, match="workers"):
        parse_config({"experiment": {"name": "x", "workers": 0}})
