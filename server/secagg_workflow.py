"""`secagg = "ours"`: each round's sum through our secure aggregation, over Flower messages.

A thin transport over `protocol.pipeline.PipelineScheduler`, which decides what each message
carries (SPEC.md §9) and drives a `protocol.SecAggServer` per round: here each node's batch of
protocol requests becomes one `train.secagg` Flower message (records in `clients/records.py`),
one `send_and_receive` carries them all, and each node's reply, or why there is none, goes back
to the scheduler. A node that answers with an error, answers garbage or stays silent past the
timeout is a dropout the round survives while at least t clients remain (below t,
`ProtocolAbort`: the round stops and nothing is revealed). A message carrying a masked-input
request also carries the global weights and training config: a firm trains then, once its keys
are shared, and masks its contribution vector (layout in `clients/participant.py`).

Pipelining (`pipeline = true`): round r+1's two key stages ride on round r's two messages, so a
round costs two messages per node instead of four once the federation is under way:

    message A of round r:  masked_input(r)  + advertise_keys(r+1)
    message B of round r:  unmask(r)        + share_keys(r+1)

The first round (or one whose cohort changed) runs its key stages on their own first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from flwr.app import ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid

from clients import records as R
from protocol import SecAggConfig, Stage
from protocol.pipeline import (
    Cohort,
    NoReply,
    PipelineScheduler,
    Reply,
    RoundInFlight,
    TransportMessage,
)
from server.messaging import exchange
from server.rounds import RoundAggregate, float_metrics
from server.settings import FederationSettings


def secagg_config(settings: FederationSettings, num_clients: int) -> SecAggConfig:
    """The round's public parameters (`FederationSettings.secagg_config` reads the sentinels)."""
    return settings.secagg_config(num_clients)


@dataclass
class _FlowerTransport:
    """Carries the scheduler's messages to the nodes of one round as Flower messages."""

    grid: Grid
    content: RecordDict
    """The round's global weights and training config, for the messages that ask to mask."""
    timeout: float
    public_metrics: dict[int, dict[str, float]] = field(default_factory=dict)
    """What each node reported in the clear with its masked input (DP accounting)."""

    def __call__(self, message: TransportMessage) -> dict[int, Reply]:
        contents: dict[int, RecordDict] = {}
        for node, batch in message.batches.items():
            record = RecordDict(
                {
                    R.SECAGG_RECORD: ConfigRecord(
                        {R.STAGE: batch.label, R.PAYLOADS: list(batch.payloads)}
                    )
                }
            )
            if batch.carries(Stage.MASKED_INPUT):  # firms train now, then mask (clients/secagg.py)
                record[R.GLOBAL_RECORD] = self.content.array_records[R.GLOBAL_RECORD]
                record[R.CONFIG_RECORD] = self.content.config_records[R.CONFIG_RECORD]
            contents[node] = record
        outcome = exchange(
            self.grid, contents, R.SECAGG_MESSAGE_TYPE, str(message.round_number), self.timeout
        )
        replies: dict[int, Reply] = {node: NoReply(why) for node, why in outcome.dropped.items()}
        for node, reply in outcome.replies.items():
            try:
                replies[node] = _payloads(reply)
            except (KeyError, TypeError) as error:
                replies[node] = NoReply(f"unreadable reply ({error})")
                continue
            metrics = reply.content.metric_records.get(R.METRICS_RECORD)
            if metrics is not None and message.batches[node].carries(Stage.MASKED_INPUT):
                self.public_metrics[node] = float_metrics(metrics)
        return replies


def _payloads(reply: Message) -> list[bytes]:
    """The protocol messages a node's reply carries (KeyError or TypeError when it has none)."""
    payloads = reply.content.config_records[R.SECAGG_RECORD][R.PAYLOADS]
    if not isinstance(payloads, list):
        raise TypeError(f"payloads must be a list of bytes, got {type(payloads).__name__}")
    data = [payload for payload in payloads if isinstance(payload, bytes)]
    if len(data) != len(payloads):
        raise TypeError("payloads must be a list of bytes")
    return data


def _aggregate(round_: RoundInFlight, metrics: dict[int, dict[str, float]]) -> RoundAggregate:
    assert round_.outcome is not None
    contributors = round_.contributors()
    return RoundAggregate(
        total=np.asarray(round_.outcome.float_sum, dtype=np.float64),
        contributors=contributors,
        dropped=round_.dropped(),
        public_metrics={n: m for n, m in metrics.items() if n in contributors},
        transcript=[entry.model_dump(mode="json") for entry in round_.transcript.entries],
        info={
            "secagg": {
                "threshold": round_.server.threshold,
                "masks_expanded": round_.server.masks_expanded,
                "seconds": round_.seconds,
            }
        },
    )


class SecureAggregator:
    """Our secure aggregation across the rounds of one federation.

    Keeps the scheduler (and with it the next round's protocol instance) between calls, so each
    call `(grid, nodes, content, round, settings, dimension, next_nodes)` returns round
    `round`'s sum having also run round `round + 1`'s key stages with `next_nodes` when
    pipelining.
    """

    def __init__(self, pipeline: bool = True) -> None:
        self.scheduler = PipelineScheduler(pipelined=pipeline)

    @property
    def pipeline(self) -> bool:
        return self.scheduler.pipelined

    def __call__(
        self,
        grid: Grid,
        nodes: list[int],
        content: RecordDict,
        round_number: int,
        settings: FederationSettings,
        dimension: int,
        next_nodes: list[int] | None = None,
    ) -> RoundAggregate:
        transport = _FlowerTransport(grid, content, settings.timeout)
        cohort = Cohort.of(nodes, secagg_config(settings, len(nodes)))
        following = None
        if self.pipeline and next_nodes:
            following = Cohort.of(next_nodes, secagg_config(settings, len(next_nodes)))
        round_ = self.scheduler.run_round(round_number, cohort, dimension, transport, following)
        if round_.aborted is not None:
            raise round_.aborted
        return _aggregate(round_, transport.public_metrics)


def aggregate_securely(
    grid: Grid,
    nodes: list[int],
    content: RecordDict,
    round_number: int,
    settings: FederationSettings,
    dimension: int,
    next_nodes: list[int] | None = None,
) -> RoundAggregate:
    """One round on its own: the four stages, one message each (no round prepared ahead)."""
    return SecureAggregator(pipeline=False)(
        grid, nodes, content, round_number, settings, dimension, next_nodes
    )
