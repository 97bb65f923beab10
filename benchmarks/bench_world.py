"""Time and peak memory of generating and writing the synthetic world.

The issue's budget is 1,000,000 citizens generated and written in at most 60 s on 2 cores with
peak RSS under 4 GiB; this measures it (a timed test would be flaky on a shared machine).

    .venv/bin/python benchmarks/bench_world.py --citizens 1000000
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from experiments.world.synthetic import generate_world
from experiments.world.tables import write_world


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports ru_maxrss in KiB)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024 if sys.platform != "darwin" else kib / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--citizens", type=int, default=1_000_000, help="population size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, default=None, help="keep the files here (else a temp dir)"
    )
    args = parser.parse_args()

    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}  cpus: {os.cpu_count()}")
    start = time.perf_counter()
    world = generate_world(args.citizens, args.seed)
    generated = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        write_world(world, out)
        written = time.perf_counter()
        size_mib = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20

    print(f"citizens: {args.citizens:,}  seed: {args.seed}")
    print(f"generate: {generated - start:.2f} s")
    print(f"write:    {written - generated:.2f} s  ({size_mib:.1f} MiB on disk)")
    print(f"total:    {written - start:.2f} s")
    print(f"peak RSS: {peak_rss_mib():.0f} MiB")
    print(f"base rate: {world.truth['default_12m'].mean():.4f}")
    for firm, table in world.firms.items():
        print(f"  {firm:<15} rows {len(table):>9,}  default rate {table['default_12m'].mean():.4f}")


if __name__ == "__main__":
    main()
