"""What every aggregation workflow shares: a round's outcome, the aggregator's signature, the
held-out evaluation, and a run's result and the files it writes.

In a module of its own so that the run loop (`server/federation.py`) imports the workflows
(`secagg_workflow.py`, `flower_secaggplus.py`) and the workflows import only this: no cycle.

Evaluation through the aggregate (`secagg = "none"` and `"ours"`). SPEC.md §1 promises that
everything the server receives from a firm's data is one masked vector, so the held-out sums
(rows, loss, Brier) travel inside the contribution vector (layout in `clients/participant.py`)
instead of in a message of their own: from round 2 on each firm appends the sums of the weights
it receives, i.e. of the previous round's model, and after the last round one evaluation-only
round (number R + 1, no training; pipelined, its key stages ride on round R's messages) scores
the final model. Round r's figures are therefore measured by round r + 1's contributors (the
last round's by every available firm), and are missing when that round aborts. A separate
secure round per evaluation would be as sound but double the rounds (two more messages per firm
per round once pipelined) for three numbers that fit in a vector already sent. Firms score the
received weights before training and scoring draws no random number, so the model is bit for
bit what it would be without evaluation. Flower's SecAgg+ (`secagg = "flower"`, a comparison)
keeps a final evaluation in the clear (`evaluate`), as Flower sends metrics in the clear anyway.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from flwr.app import Array, ArrayRecord, MetricRecord, RecordDict
from flwr.serverapp import Grid
from rich.console import Console

from clients import records as R
from clients.participant import CONTRIBUTION_TAIL, ModelSpec, read_heldout_sum
from clients.round_config import RoundConfig
from protocol import ProtocolAbort
from server.messaging import exchange
from server.settings import FederationRun, FederationSettings

TRANSCRIPT_FILE = "transcript.jsonl"
RESULT_FILE = "federation.json"
WEIGHTS_FILE = "final_weights.npy"
RECEIVED_FILE = "received.jsonl"
"""What the server received in each training round, one JSON line per round (`received_line`):
the sum it obtained and, in the clear only, every firm's own vector. The transcript keeps the
size and hash of every message; this file keeps the numbers the server could read, so what it
can infer from them is measured on the run itself (experiments/leakage/server_view.py)."""


@dataclass
class RoundAggregate:
    """What the server holds after one round's aggregation."""

    total: np.ndarray  # sum of the contributors' contribution vectors
    contributors: list[int]
    dropped: dict[int, str]
    public_metrics: dict[int, dict[str, float]] = field(default_factory=dict)
    transcript: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    individual: dict[int, np.ndarray] = field(default_factory=dict)
    """Each contributor's own vector where the server saw it (`secagg = "none"`); else empty."""


def received_line(round_number: int, result: RoundAggregate) -> dict[str, Any]:
    """One line of `RECEIVED_FILE`: the round, its contributors, the sum and, in the clear, each
    node's vector (floats as JSON numbers, which round-trip float64 exactly)."""
    return {
        "round": round_number,
        "contributors": sorted(result.contributors),
        "aggregate": [float(v) for v in result.total],
        "individual": {
            str(node): [float(v) for v in vector]
            for node, vector in sorted(result.individual.items())
        },
    }


class Aggregate(Protocol):
    """(grid, nodes, round content, round number, settings, dimension) -> the round's sum.

    `next_nodes`, when given, is the next round's cohort: an aggregator may prepare that round
    while this one runs (pipelined secure aggregation)."""

    def __call__(
        self,
        grid: Grid,
        nodes: list[int],
        content: RecordDict,
        round_number: int,
        settings: FederationSettings,
        dimension: int,
        next_nodes: list[int] | None = None,
    ) -> RoundAggregate: ...


@dataclass
class FederationResult:
    weights: np.ndarray
    spec: ModelSpec
    history: list[dict[str, Any]]
    accountant: dict[str, Any]
    """The public DP budget (`dp_budget`); {} without DP."""
    resumed_from: int = 0
    stopped: str | None = None
    """Why the run ended before its last round (too few firms), with how to resume."""


def dp_budget(run: FederationRun) -> dict[str, Any]:
    """What the server records of the firms' DP: the public budget only ({} without DP).

    Each firm calibrates its noise so that its ε after the last round is at most the target,
    and keeps its own accounting (`clients/accounting.py`): its noise multiplier and the ε it
    has spent depend on its number of rows, so reporting them would reveal its size.
    """
    if run.dp_epsilon <= 0:
        return {}
    return {
        "target_epsilon": run.dp_epsilon,
        "delta": run.federation.dp_delta,
        "rounds": run.federation.rounds,
    }


def heldout_record(total: np.ndarray, weight_scale: float, firms: int) -> dict[str, float] | None:
    """The log's held-out figures from a sum of contributions: pooled rows, firms, mean loss and
    mean Brier score (None when the sum carries no held-out rows)."""
    sums = read_heldout_sum(total, weight_scale)
    if sums is None:
        return None
    return {
        "n": sums.rows,
        "firms": float(firms),
        "loss": sums.loss / sums.rows,
        "brier": sums.brier / sums.rows,
    }


def record_evaluation(
    history: list[dict[str, Any]], evaluated_round: int, result: RoundAggregate, scale: float
) -> None:
    """File the held-out figures a round's sum carries under the round whose model they score."""
    figures = heldout_record(result.total, scale, len(result.contributors))
    target = next((r for r in reversed(history) if r["round"] == evaluated_round), None)
    if figures is not None and target is not None:
        target["evaluation"] = figures


def evaluate_final_model(
    grid: Grid,
    run: FederationRun,
    spec: ModelSpec,
    weights: np.ndarray,
    aggregate: Aggregate,
    nodes: list[int],
    history: list[dict[str, Any]],
) -> None:
    """Round R + 1 trains nothing: its sum carries the final model's held-out sums only.

    Its transcript joins the run's; an abort is logged and leaves round R without evaluation.
    """
    settings = run.federation
    number = settings.rounds + 1
    content = RecordDict(
        {
            R.GLOBAL_RECORD: ArrayRecord({R.WEIGHTS: Array(weights)}),
            R.CONFIG_RECORD: run.round_config(spec, number, train=False, evaluate=True).to_record(),
        }
    )
    dimension = weights.size + len(CONTRIBUTION_TAIL)
    try:
        result = aggregate(grid, nodes, content, number, settings, dimension)
    except ProtocolAbort as abort:
        Console(stderr=True, soft_wrap=True).print(
            f"[bold yellow]final evaluation aborted:[/] {abort}"
        )
        history[-1]["evaluation_aborted"] = str(abort)
        return
    record_evaluation(history, settings.rounds, result, settings.weight_scale)
    if run.run_dir:
        with open(Path(run.run_dir) / TRANSCRIPT_FILE, "a") as handle:
            handle.writelines(json.dumps(e, sort_keys=True) + "\n" for e in result.transcript)


def evaluate(
    grid: Grid,
    nodes: list[int],
    weights: np.ndarray,
    config: RoundConfig,
    round_number: int,
    timeout: float,
) -> dict[str, float]:
    """Flower's SecAgg+ only: pooled held-out figures from sums each firm sends in the clear."""
    content = RecordDict(
        {
            R.GLOBAL_RECORD: ArrayRecord({R.WEIGHTS: Array(weights)}),
            R.CONFIG_RECORD: config.to_record(),
        }
    )
    stage = exchange(grid, dict.fromkeys(nodes, content), "evaluate", str(round_number), timeout)
    sums = np.zeros(3)
    for reply in stage.replies.values():
        record = float_metrics(reply.content.metric_records[R.METRICS_RECORD])
        sums += [record[k] for k in ("n", "loss_sum", "brier_sum")]
    if sums[0] == 0:
        return {"n": 0.0, "firms": 0.0}
    return {
        "n": float(sums[0]),
        "firms": float(len(stage.replies)),
        "loss": float(sums[1] / sums[0]),
        "brier": float(sums[2] / sums[0]),
    }


def float_metrics(record: MetricRecord) -> dict[str, float]:
    """A firm's metrics as floats. A MetricRecord value may also be a list, which no firm sends:
    refused here, so that every reader gets numbers."""
    metrics: dict[str, float] = {}
    for key, value in record.items():
        if isinstance(value, list):
            raise TypeError(f"metric {key!r} must be a number, got a list")
        metrics[key] = float(value)
    return metrics
