"""What every aggregation workflow shares: a round's outcome, the aggregator's signature, the
held-out evaluation, and a run's result and the files it writes.

In a module of its own so that the run loop (`server/federation.py`) imports the workflows
(`secagg_workflow.py`, `flower_secaggplus.py`) and the workflows import only this: no cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from flwr.app import Array, ArrayRecord, MetricRecord, RecordDict
from flwr.serverapp import Grid

from clients import records as R
from clients.participant import ModelSpec
from clients.round_config import RoundConfig
from server.messaging import exchange
from server.settings import FederationSettings

TRANSCRIPT_FILE = "transcript.jsonl"
RESULT_FILE = "federation.json"
WEIGHTS_FILE = "final_weights.npy"


@dataclass
class RoundAggregate:
    """What the server holds after one round's aggregation."""

    total: np.ndarray  # sum of the contributors' contribution vectors
    contributors: list[int]
    dropped: dict[int, str]
    public_metrics: dict[int, dict[str, float]] = field(default_factory=dict)
    transcript: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


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
    resumed_from: int = 0


def evaluate(
    grid: Grid,
    nodes: list[int],
    weights: np.ndarray,
    config: RoundConfig,
    round_number: int,
    timeout: float,
) -> dict[str, float]:
    """Pooled loss and accuracy of the global model on the firms' held-out rows."""
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
        sums += [record["n"], record["loss_sum"], record["correct"]]
    if sums[0] == 0:
        return {"n": 0.0, "firms": 0.0}
    return {
        "n": float(sums[0]),
        "firms": float(len(stage.replies)),
        "loss": float(sums[1] / sums[0]),
        "accuracy": float(sums[2] / sums[0]),
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
