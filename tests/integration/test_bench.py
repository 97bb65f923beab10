"""The federation benchmark end to end, tiny: every mode on one simulation engine."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import typer

from experiments.cli.bench import MODES, run_benchmark


@pytest.mark.slow
def test_benchmark_times_every_mode_and_measures_memory(
    reap_started_processes: Callable[[], set[int]],
) -> None:
    # Execute
    figures = run_benchmark(clients=3, dim=20, rounds=1)
    # Assert
    assert set(figures["median_seconds"]) == set(MODES)
    assert all(seconds > 0 for seconds in figures["median_seconds"].values())
    assert figures["ours_over_plain"] > 0 and figures["flower_over_ours"] > 0
    per_round = figures["ours_over_plain_per_round"]
    assert per_round["min"] == per_round["median"] == per_round["max"]  # one round
    assert per_round["median"] == pytest.approx(figures["ours_over_plain"])
    assert figures["peak_memory_gib"] > 0
    assert set(figures["median_cpu_seconds"]) == {*MODES, "empty"}
    assert figures["median_cpu_seconds"]["ours"] > 0  # the firms' processes are counted too
    assert figures["empty_exchange_median_seconds"] > 0 and figures["floor_over_plain"] > 1
    assert figures["threshold"] == 2  # k = 2 neighbours among three firms
    malicious = figures["malicious_over_ours_per_round"]
    assert malicious["min"] == malicious["median"] == malicious["max"] > 0
    assert set(figures["ours_malicious_stage_median_seconds"]) >= {
        "consistency_check+share_keys.exchange",
        "unmask.exchange",
    }


@pytest.mark.slow
def test_skipped_modes_are_neither_run_nor_in_any_ratio(
    reap_started_processes: Callable[[], set[int]],
) -> None:
    # Execute
    figures = run_benchmark(clients=3, dim=20, rounds=1, skip=("flower", "ours_alone"))
    # Assert
    assert figures["modes"] == ["plain", "ours", "ours_malicious"]
    assert set(figures["median_seconds"]) == {"plain", "ours", "ours_malicious"}
    assert "flower_over_ours" not in figures and "ours_alone_over_plain" not in figures
    assert figures["malicious_over_ours"] > 0


def test_only_the_slow_modes_can_be_skipped() -> None:
    with pytest.raises(typer.BadParameter, match="--skip takes modes of"):
        run_benchmark(clients=3, dim=20, rounds=1, skip=("ours",))
