"""`fedscore bench federation`: seconds per round of plain, our SecAgg and Flower's SecAgg+.

All modes run in one invocation on one simulation engine (Ray backend, one Ray start), with the
same number of nodes, the same vector length and the same neighbourhood size, interleaved round
by round so a load spike from other processes hits them alike. Ours runs three times: pipelined
(the default; two messages a round), each round alone (four messages), the baseline it improves
on, and pipelined in the malicious-server mode (three messages a round, signatures; SPEC §10).
A firm holding an identity joins malicious-mode rounds only, so the engine runs twice the nodes:
half without an identity (plain, ours, Flower), half with one (ours, malicious); the server
tells them apart by asking every node once who it is, before the first round. Firms send
synthetic updates of `--dim` values instead of training, so the figures are the aggregation's
cost alone. `--skip` leaves out the slow modes (Flower's SecAgg+, a round alone) when only some
ratios are wanted. Peak memory is the largest sum of resident memory over this process and every
process below it (Ray's head, raylet and workers), sampled every 0.2 s.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, RecordDict
from flwr.client import NumPyClient
from flwr.common import Scalar
from rich.console import Console
from rich.table import Table

from clients import records as R
from clients.participant import CONTRIBUTION_TAIL, EVALUATION_TAIL, LocalResult
from clients.round_config import RoundConfig
from clients.streams import bench_node_seed
from experiments.cli.procfs import tree_cpu_seconds, tree_rss_bytes

app = typer.Typer(help="Benchmarks.", no_args_is_help=True, add_completion=False)

MODES = ("plain", "ours", "ours_alone", "ours_malicious", "flower")
"""`ours` pipelines round r+1's key stages into round r (2 messages a round); `ours_alone` runs
each round on its own (4 messages), the same protocol without pipelining; `ours_malicious`
pipelines the malicious-server mode (3 messages a round)."""
SKIPPABLE = ("ours_alone", "ours_malicious", "flower")
"""Modes `--skip` may leave out: plain and ours always run, every ratio is against them."""


@app.callback()
def bench() -> None:
    """Benchmarks (a group, so `fedscore bench federation` keeps its subcommand name)."""


class _SyntheticNumPyClient(NumPyClient):
    def __init__(self, dimension: int, seed: int) -> None:
        self.dimension, self.seed = dimension, seed

    def fit(
        self, parameters: list[np.ndarray], config: dict[str, Any]
    ) -> tuple[list[np.ndarray], int, dict[str, Scalar]]:
        rng = np.random.default_rng(self.seed)
        weights = parameters[0] + rng.uniform(-0.01, 0.01, self.dimension).astype(np.float32)
        return [weights], 100, {}


@dataclass(frozen=True)
class SyntheticFirm:
    """A node that answers every message like a firm but sends a random update of `dimension`."""

    dimension: int

    def contribute(self, content: RecordDict, context: Context) -> LocalResult:
        config = RoundConfig.from_record(content.config_records[R.CONFIG_RECORD])
        rng = np.random.default_rng(bench_node_seed(context.node_id, config.round_number))
        share = 100 / config.weight_scale
        update = rng.uniform(-0.01, 0.01, self.dimension)
        tail = [share, share * 0.5, share * 0.1, *np.zeros(len(EVALUATION_TAIL))]
        vector = np.concatenate([share * update, tail])
        return LocalResult(vector, 100, 0.5, None, None)

    def legacy_client(self, context: Context) -> NumPyClient:
        return _SyntheticNumPyClient(self.dimension, context.node_id % 2**31)

    def evaluate(self, content: RecordDict, context: Context) -> dict[str, float]:
        del content, context
        return {"n": 1.0, "loss_sum": 0.5, "brier_sum": 0.1}


class PeakMemory:
    """Samples the process tree's resident memory in a thread; `peak` is the largest sum seen."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval, self.peak = interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_bytes(os.getpid()))
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _spread(ratios: list[float]) -> dict[str, float]:
    """Median, min and max of per-round ratios (each round against its own baseline round)."""
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}


def run_benchmark(
    clients: int,
    dim: int,
    rounds: int,
    degree: int = 0,
    timeout: float = 600.0,
    skip: Sequence[str] = (),
) -> dict[str, Any]:
    """Seconds per round of each mode (first, warm-up round excluded) and peak memory; the
    modes in `skip` (of `SKIPPABLE`) are not run, nor are the ratios that need them."""
    from flwr.common import ndarrays_to_parameters
    from flwr.server import LegacyContext, ServerConfig
    from flwr.server.strategy import FedAvg
    from flwr.server.workflow import DefaultWorkflow
    from flwr.serverapp import Grid

    from clients.app import build_client_app
    from protocol import recommended_degree, recommended_threshold
    from server.app import simulate
    from server.federation import aggregate_in_the_clear
    from server.flower_secaggplus import flower_workflow
    from server.identities import read_manifest, simulated_identities
    from server.messaging import exchange, wait_for_nodes
    from server.secagg_workflow import SecureAggregator, aggregate_securely
    from server.settings import FederationRun, FederationSettings

    if clients < 3:
        raise typer.BadParameter(f"--clients must be >= 3, got {clients}")
    unknown = sorted(set(skip) - set(SKIPPABLE))
    if unknown:
        raise typer.BadParameter(f"--skip takes modes of {list(SKIPPABLE)}, got {unknown}")
    modes = [mode for mode in MODES if mode not in skip]
    neighbours = degree or recommended_degree(clients)
    settings = FederationSettings(
        neighbours=0 if neighbours >= clients - 1 else neighbours,
        threshold=recommended_threshold(neighbours),
        clip=1.0,
        scale_bits=16,
        weight_scale=1000.0,
        timeout=timeout,
        min_clients=clients,
    )
    malicious_settings = settings.model_copy(update={"secagg_mode": "malicious"})
    run = FederationRun(federation=settings, secagg="ours", n_features=1)
    # Nodes clients..2·clients-1 (by partition) hold identities: the malicious mode's firms
    keys = tempfile.TemporaryDirectory(prefix="fedscore-bench-identities-")
    manifest_path, identities = simulated_identities(
        Path(keys.name), range(clients, 2 * clients), "fedscore-bench"
    )
    manifest = read_manifest(manifest_path)
    seconds: dict[str, list[float]] = {mode: [] for mode in (*modes, "empty")}
    stage_seconds: dict[str, list[dict[str, float]]] = {"ours": [], "ours_malicious": []}
    cpu_seconds: dict[str, list[float]] = {mode: [] for mode in (*modes, "empty")}
    empty = RecordDict({R.CONFIG_RECORD: ConfigRecord({})})

    def serve(grid: Grid, context: Context) -> None:
        """All modes on one engine; `simulate` polls faster for all of them alike."""
        everyone = wait_for_nodes(grid, 2 * clients, timeout)
        malicious_rounds = SecureAggregator(pipeline=True, manifest=manifest)
        nodes = sorted(malicious_rounds.identify(grid, set(everyone), 0, timeout))
        identified = sorted(malicious_rounds.client_ids)
        if len(nodes) != clients or len(identified) != clients:
            raise RuntimeError(f"{len(identified)} of {len(everyone)} nodes hold an identity")
        weights = np.zeros(dim)

        def content(round_number: int) -> RecordDict:
            config = run.round_config(run.model_spec(), round_number)
            return RecordDict(
                {
                    R.GLOBAL_RECORD: ArrayRecord({R.WEIGHTS: Array(weights)}),
                    R.CONFIG_RECORD: config.to_record(),
                }
            )

        def flower_round(round_number: int) -> float:
            timed: list[float] = []
            inner = flower_workflow(settings, clients)

            def fit(grid: Grid, legacy: Context) -> None:
                start = time.perf_counter()
                inner(grid, legacy)
                timed.append(time.perf_counter() - start)

            strategy = FedAvg(
                fraction_fit=0.5,  # `clients` of the 2·clients nodes, as every other mode
                fraction_evaluate=0.0,
                min_fit_clients=clients,
                min_available_clients=clients,
                initial_parameters=ndarrays_to_parameters([np.zeros(dim, dtype=np.float32)]),
                on_fit_config_fn=lambda r: {R.ROUND: round_number},
            )
            legacy = LegacyContext(context, config=ServerConfig(num_rounds=1), strategy=strategy)
            DefaultWorkflow(fit_workflow=fit)(grid, legacy)
            return timed[0]

        secure_rounds = SecureAggregator(pipeline=True)
        # Warm-up, not timed: round 0 of each of ours' modes also prepares round 1's keys, so
        # every timed round of ours is a steady-state one (and prepares the round after it).
        length = dim + len(CONTRIBUTION_TAIL)  # what a firm's contribution vector holds
        aggregate_in_the_clear(grid, nodes, content(0), 0, settings, length)
        secure_rounds(grid, nodes, content(0), 0, settings, length, nodes)
        if "ours_malicious" in modes:
            malicious_rounds(
                grid, identified, content(0), 0, malicious_settings, length, identified
            )

        @contextmanager
        def measured(mode: str, wall: bool = True) -> Iterator[None]:
            """Records the block's wall seconds (unless `wall` is False) and the CPU seconds the
            whole process tree spends in it. The clock runs inside the two /proc scans, so their
            milliseconds do not pad both sides of a ratio."""
            before = tree_cpu_seconds(os.getpid())
            start = time.perf_counter()
            yield
            if wall:
                seconds[mode].append(time.perf_counter() - start)
            cpu_seconds[mode].append(tree_cpu_seconds(os.getpid()) - before)

        for round_number in range(1, rounds + 1):
            args = (grid, nodes, content(round_number), round_number, settings, length)
            with measured("plain"):
                aggregate_in_the_clear(*args)
            with measured("ours"):
                secure = secure_rounds(*args, nodes)
            stage_seconds["ours"].append(secure.info["secagg"]["seconds"])
            if "ours_alone" in modes:
                with measured("ours_alone"):
                    aggregate_securely(*args)
            if "ours_malicious" in modes:
                malicious_args = (grid, identified, content(round_number), round_number)
                with measured("ours_malicious"):
                    malicious = malicious_rounds(
                        *malicious_args, malicious_settings, length, identified
                    )
                stage_seconds["ours_malicious"].append(malicious.info["secagg"]["seconds"])
            if "flower" in modes:
                # Flower's round is timed inside its workflow: the legacy set-up is not its round.
                with measured("flower", wall=False):
                    seconds["flower"].append(flower_round(round_number))
            with measured("empty"):  # the engine's cost of one exchange carrying nothing
                exchange(grid, dict.fromkeys(nodes, empty), "evaluate", str(round_number), timeout)

    with keys, warnings.catch_warnings(), PeakMemory() as memory:
        warnings.simplefilter("ignore")
        simulate(
            serve,
            build_client_app(identities, firm=SyntheticFirm(dim)),
            num_nodes=2 * clients,
            flower_log_level=logging.ERROR,
        )
    if any(len(v) != rounds for v in seconds.values()):
        raise RuntimeError(f"the benchmark did not finish every round: {seconds}")
    empty_median = statistics.median(seconds.pop("empty"))
    median = {mode: statistics.median(values) for mode, values in seconds.items()}
    # Each round of ours runs right after its plain round: their ratio cancels the VM's drift
    # over minutes, which moves both alike (the ratio of medians does not).
    paired = [o / p for o, p in zip(seconds["ours"], seconds["plain"], strict=True)]
    figures: dict[str, Any] = {
        "clients": clients,
        "dim": dim,
        "rounds": rounds,
        "neighbours": neighbours,
        "threshold": settings.threshold,
        "modes": modes,
        "seconds": seconds,
        "median_seconds": median,
        "ours_over_plain": median["ours"] / median["plain"],
        "ours_over_plain_per_round": _spread(paired),
    }
    if "ours_alone" in modes:
        figures["ours_alone_over_plain"] = median["ours_alone"] / median["plain"]
    if "ours_malicious" in modes:
        malicious_paired = [
            m / o for m, o in zip(seconds["ours_malicious"], seconds["ours"], strict=True)
        ]
        figures["malicious_over_ours"] = median["ours_malicious"] / median["ours"]
        figures["malicious_over_ours_per_round"] = _spread(malicious_paired)
    if "flower" in modes:
        figures["flower_over_ours"] = median["flower"] / median["ours"]
    figures |= {
        "empty_exchange_median_seconds": empty_median,
        "floor_over_plain": (median["plain"] + empty_median) / median["plain"],
        **{
            f"{mode}_stage_median_seconds": _stage_medians(rows)
            for mode, rows in stage_seconds.items()
            if rows
        },
        "median_cpu_seconds": {
            mode: statistics.median(values) for mode, values in cpu_seconds.items()
        },
        "peak_memory_gib": memory.peak / 2**30,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
    }
    return figures


def _stage_medians(rows: list[dict[str, float]]) -> dict[str, float]:
    """Median seconds of each timed part of a round (a part missing from a round, e.g. the
    bootstrap's, counts in the rounds that have it)."""
    keys = dict.fromkeys(key for row in rows for key in row)
    return {key: statistics.median(row[key] for row in rows if key in row) for key in keys}


@app.command("federation")
def federation(
    clients: Annotated[int, typer.Option(min=3, help="Simulated SuperNodes.")] = 100,
    dim: Annotated[int, typer.Option(min=1, help="Length of each update vector.")] = 100_000,
    rounds: Annotated[int, typer.Option(min=1, help="Timed rounds per mode.")] = 3,
    degree: Annotated[int, typer.Option(min=0, help="Neighbours; 0: SecAgg+ default.")] = 0,
    skip: Annotated[
        list[str] | None,
        typer.Option(
            help=f"A mode not to run (repeatable), of {', '.join(SKIPPABLE)}; plain and ours "
            "always run."
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Also write the figures as JSON.")] = None,
) -> None:
    """Median seconds per round: plain vs our SecAgg vs Flower's SecAgg+, and peak memory."""
    figures = run_benchmark(clients, dim, rounds, degree, skip=skip or ())
    table = Table(
        title=f"federation round, n = {clients}, d = {dim:,}, k = {figures['neighbours']}, "
        f"t = {figures['threshold']} ({rounds} rounds, load {figures['load_average'][0]:.2f})"
    )
    table.add_column("mode")
    table.add_column("median s / round", justify="right")
    table.add_column("CPU s / round", justify="right")
    table.add_column("all rounds (s)")
    labels = {
        "plain": "plain",
        "ours": "ours, pipelined",
        "ours_alone": "ours, round alone",
        "ours_malicious": "ours, malicious mode, pipelined",
        "flower": "Flower SecAgg+",
    }
    for mode in figures["modes"]:
        table.add_row(
            labels[mode],
            f"{figures['median_seconds'][mode]:.3f}",
            f"{figures['median_cpu_seconds'][mode]:.2f}",
            " ".join(f"{s:.2f}" for s in figures["seconds"][mode]),
        )
    paired = figures["ours_over_plain_per_round"]
    console = Console()
    console.print(table)
    summary = [
        f"ours / plain = {figures['ours_over_plain']:.2f} (target <= 1.5; per round "
        f"{paired['median']:.2f}, range {paired['min']:.2f}-{paired['max']:.2f})"
    ]
    if "ours_alone_over_plain" in figures:
        summary.append(f"a round alone / plain = {figures['ours_alone_over_plain']:.2f}")
    if "flower_over_ours" in figures:
        summary.append(f"Flower / ours = {figures['flower_over_ours']:.2f} (target >= 3)")
    summary.append(f"peak memory {figures['peak_memory_gib']:.2f} GiB (target < 2)")
    console.print("; ".join(summary))
    if "malicious_over_ours" in figures:
        malicious = figures["malicious_over_ours_per_round"]
        console.print(
            f"malicious / semi-honest (both pipelined) = {figures['malicious_over_ours']:.2f} "
            f"(target <= 1.3; per round {malicious['median']:.2f}, range "
            f"{malicious['min']:.2f}-{malicious['max']:.2f}): one exchange more a round (3 "
            "messages instead of 2) and the signatures"
        )
    console.print(
        f"floor: a secure round needs one exchange more than plain (unmask comes after the "
        f"masked inputs); an exchange carrying nothing costs "
        f"{figures['empty_exchange_median_seconds']:.2f} s here, so plain + one exchange = "
        f"{figures['floor_over_plain']:.2f}× plain before any cryptography"
    )
    cpu = figures["median_cpu_seconds"]
    console.print(
        f"CPU (every process of the simulation, both cores): ours spends "
        f"{cpu['ours'] - cpu['plain']:.2f} CPU s a round more than plain, of which "
        f"{cpu['empty']:.2f} is the extra exchange; 1.5× plain's time at plain's core usage "
        f"affords {0.5 * cpu['plain']:.2f} more"
    )
    for mode in ("ours", "ours_malicious"):
        stages = figures.get(f"{mode}_stage_median_seconds")
        if stages is None:
            continue
        console.print(
            f"{labels[mode]} by stage (median s; exchange = messages and firms' work, transport "
            "= the server encoding, parsing and recording messages, server = state machine): "
            + ", ".join(f"{k} {v:.2f}" for k, v in stages.items())
        )
    if out is not None:
        out.write_text(json.dumps(figures, indent=2) + "\n")
