"""The federation benchmark end to end, tiny: every mode on one simulation engine."""

from __future__ import annotations

from collections.abc import Callable

import pytest

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
