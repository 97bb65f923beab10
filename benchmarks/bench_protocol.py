"""Benchmark of a secure-aggregation round against the floor of its unavoidable work.

For each (n, d, dropout, k, workers) scenario, in a fresh subprocess (so peak memory is the
round's own), it runs one round (clients in this process, or in `workers` forked processes;
dropouts happen after share keys, the costliest point: the server must regenerate the dropped
clients' pairwise masks), then times, in the same process, the floor: expanding the same number
of d-long AES-256-CTR masks and summing the survivors' vectors, on one core. It prints round
time, floor time, their ratio, CPU seconds (this process plus its workers), bytes per client and
peak RSS (this process; largest worker).

    .venv/bin/python benchmarks/bench_protocol.py          # issue 3's scenarios, 1 and 2 workers
    .venv/bin/python benchmarks/bench_protocol.py --quick      # a small smoke run
    .venv/bin/python benchmarks/bench_protocol.py --one 100 100000 0.1 0 1  # n d drop k workers

Other work on the machine skews every figure; the load average is printed with the results, and
CPU seconds (time.process_time) are reported beside wall seconds because they suffer less from
other processes sharing the cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from protocol import SecAggConfig, Stage, recommended_degree, run_round
from protocol.masking import add_mask

Scenario = tuple[int, int, float, int | None, int]
"""(n, d, dropout, k, workers); k None is the complete graph, -1 the logarithmic degree."""
SCENARIOS: list[Scenario] = [
    (100, 100_000, 0.1, None, 1),
    (100, 100_000, 0.1, None, 2),
    (1000, 100_000, 0.1, -1, 1),
    (1000, 100_000, 0.1, -1, 2),
]
QUICK: list[Scenario] = [(20, 10_000, 0.1, None, 1), (60, 10_000, 0.1, -1, 2)]


def measure_floor(masks: int, vectors: list[np.ndarray], dimension: int) -> tuple[float, float]:
    """(wall, CPU) seconds to expand `masks` AES-CTR masks and add them and `vectors` to a sum."""
    seeds = [os.urandom(32) for _ in range(masks)]
    wall, cpu = time.perf_counter(), time.process_time()
    total = np.zeros(dimension, dtype=np.uint32)
    for seed in seeds:
        add_mask(total, seed, +1)
    for vector in vectors:
        np.add(total, vector, out=total)
    return time.perf_counter() - wall, time.process_time() - cpu


def run_one(
    num_clients: int, dimension: int, dropout: float, neighbours: int | None, workers: int
) -> dict[str, float | bool]:
    degree = recommended_degree(num_clients) if neighbours == -1 else neighbours
    config = SecAggConfig(num_clients=num_clients, neighbours=degree, scale=2.0**16)
    rng = np.random.default_rng(0)
    inputs = [rng.uniform(-1, 1, dimension) for _ in range(num_clients)]
    dropped = rng.choice(np.arange(1, num_clients + 1), round(dropout * num_clients), False)
    schedule = {int(client): Stage.MASKED_INPUT for client in dropped}
    before = os.times()
    result = run_round(config, inputs, dropout=schedule, rounding_seed=1, workers=workers)
    after = os.times()
    round_cpu = sum(after[:4]) - sum(before[:4])  # this process and its (joined) workers
    survivors_quantized = [np.zeros(dimension, dtype=np.uint32) for _ in result.survivors]
    floor, floor_cpu = measure_floor(result.masks_expanded, survivors_quantized, dimension)
    transcript = result.transcript
    upload = sum(e.bytes for e in transcript.entries if e.sender != 0) / num_clients
    download = sum(e.bytes for e in transcript.entries if e.sender == 0) / num_clients
    return {
        "n": num_clients,
        "d": dimension,
        "dropout": dropout,
        "k": config.degree,
        "workers": workers,
        "t": config.reconstruction_threshold,
        "exact": result.exact,
        "survivors": len(result.survivors),
        "masks_expanded": result.masks_expanded,
        "round_seconds": round(result.seconds, 3),
        "floor_seconds": round(floor, 3),
        "ratio": round(result.seconds / floor, 2),
        "round_cpu_seconds": round(round_cpu, 3),
        "floor_cpu_seconds": round(floor_cpu, 3),
        "cpu_ratio": round(round_cpu / floor_cpu, 2),
        "upload_bytes_per_client": int(upload),
        "download_bytes_per_client": int(download),
        "expansion": round(upload / (4 * dimension), 4),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_rss_worker_mib": round(
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small scenarios only")
    parser.add_argument("--one", nargs=5, metavar=("N", "D", "DROPOUT", "K", "WORKERS"))
    arguments = parser.parse_args()
    if arguments.one:
        n, d, dropout, k, workers = arguments.one
        neighbours = None if int(k) == 0 else int(k)
        print(json.dumps(run_one(int(n), int(d), float(dropout), neighbours, int(workers))))
        return
    rows = []
    for n, d, dropout, k, workers in QUICK if arguments.quick else SCENARIOS:
        command = [sys.executable, str(Path(__file__)), "--one", str(n), str(d), str(dropout)]
        command += [str(0 if k is None else k), str(workers)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(output.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    print(f"load average: {os.getloadavg()}, cpus: {os.cpu_count()}")
    print(
        "n      d        drop  k    t    w  exact  round_s  floor_s  ratio  cpu_s    floor_cpu "
        "cpu_ratio  up_MB   down_MB  peak_MiB worker_MiB"
    )
    for row in rows:
        print(
            f"{row['n']:<6} {row['d']:<8} {row['dropout']:<5} {row['k']:<4} {row['t']:<4} "
            f"{row['workers']:<2} "
            f"{row['exact']!s:<6} {row['round_seconds']:<8} {row['floor_seconds']:<8} "
            f"{row['ratio']:<6} {row['round_cpu_seconds']:<8} {row['floor_cpu_seconds']:<9} "
            f"{row['cpu_ratio']:<10} {row['upload_bytes_per_client'] / 1e6:<7.3f} "
            f"{row['download_bytes_per_client'] / 1e6:<8.3f} {row['peak_rss_mib']:<8} "
            f"{row['peak_rss_worker_mib']}"
        )


if __name__ == "__main__":
    main()
