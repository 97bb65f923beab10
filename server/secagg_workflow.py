"""`secagg = "ours"`: each round's sum through our secure aggregation, over Flower messages.

A thin transport over `protocol.pipeline.PipelineScheduler`, which decides what each message
carries (SPEC.md §9) and drives a `protocol.SecAggServer` per round: here each node's batch of
protocol requests becomes one `train.secagg` Flower message (records in `clients/records.py`),
one `server.messaging.exchange` carries them all, and each node's reply, or why there is none
(matched to the node by `reply_to_message_id`), goes back to the scheduler. A node that answers
with an error, answers garbage or stays silent past the timeout is a dropout the round survives
while at least t clients remain (below t, `ProtocolAbort`: the round stops and nothing is
revealed; the aggregator raises it as `server.faults.RoundAborted`, with who dropped where). A
message carrying a masked-input request also carries the global weights and training config: a
firm trains then, once its keys are shared, and masks its contribution vector (layout in
`clients/participant.py`).

Pipelining (`pipeline = true`): round r+1's two key stages ride on round r's two messages, so a
round costs two messages per node instead of four once the federation is under way:

    message A of round r:  masked_input(r)  + advertise_keys(r+1)
    message B of round r:  unmask(r)        + share_keys(r+1)

The first round (or one whose cohort changed) runs its key stages on their own first.

Malicious mode (`secagg-mode = "malicious"`, SPEC.md §10): a round has one stage more, the
consistency check, and a pipelined round one message more (B = consistency_check(r) +
share_keys(r+1), C = unmask(r)). Its client ids are the ids of the identity manifest, not 1..n:
the first time the server meets a node it sends it a fresh challenge in an `identify` message,
and the node proves which manifest entry it holds with its identity key. A node that cannot is
left out of the round (and asked again next round); a node's later proof of the same entry
replaces the earlier node (a SuperNode that reconnected under a new node id).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import numpy as np
from flwr.app import ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid

from clients import records as R
from protocol import IdentityManifest, ProtocolAbort, ProtocolError, SecAggConfig, Stage
from protocol.identity import CHALLENGE_BYTES, check_identity_proof
from protocol.pipeline import (
    Cohort,
    NoReply,
    PipelineScheduler,
    Reply,
    RoundInFlight,
    TransportMessage,
)
from server.faults import RoundAborted
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
    pipelining. In malicious mode it needs the federation's identity `manifest`, and keeps
    which node proved which manifest entry.
    """

    def __init__(self, pipeline: bool = True, manifest: IdentityManifest | None = None) -> None:
        self.scheduler = PipelineScheduler(pipelined=pipeline)
        self.manifest = manifest
        self.client_ids: dict[int, int] = {}
        """Malicious mode: node -> the manifest client id it proved it holds."""

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
        unidentified: dict[int, str] = {}
        if settings.secagg_mode == "malicious":
            asked = {*nodes, *(next_nodes or [])}
            unidentified = self.identify(grid, asked, round_number, settings.timeout)
            nodes = [node for node in nodes if node in self.client_ids]
            next_nodes = [node for node in next_nodes or [] if node in self.client_ids]
            if len(nodes) < 2:
                raise RoundAborted(
                    ProtocolAbort(
                        Stage.ADVERTISE_KEYS,
                        f"{len(nodes)} invited firm(s) proved an identity in the manifest, "
                        "fewer than 2",
                    ),
                    dict(unidentified),
                    [],
                )
        cohort = self._cohort(nodes, settings)
        following = None
        if self.pipeline and next_nodes and len(next_nodes) >= 2:
            following = self._cohort(next_nodes, settings)
        round_ = self.scheduler.run_round(round_number, cohort, dimension, transport, following)
        lost = {n: why for n, why in unidentified.items() if n not in nodes}
        if round_.aborted is not None:  # who dropped where and why, for the transcript
            entries = [entry.model_dump(mode="json") for entry in round_.transcript.entries]
            raise RoundAborted(round_.aborted, {**lost, **round_.dropped()}, entries)
        aggregate = _aggregate(round_, transport.public_metrics)
        aggregate.dropped.update(lost)
        return aggregate

    def _cohort(self, nodes: list[int], settings: FederationSettings) -> Cohort:
        config = secagg_config(settings, len(nodes))
        if config.mode != "malicious":
            return Cohort.of(nodes, config)
        assert self.manifest is not None  # identify() refused to run without it
        return Cohort.of(nodes, config, manifest=self.manifest, client_ids=self.client_ids)

    def identify(
        self, grid: Grid, nodes: set[int], round_number: int, timeout: float
    ) -> dict[int, str]:
        """Learn which manifest entry each node not met before holds: one `identify` message
        with a fresh challenge each, answered with a proof signed by the node's identity key
        (`protocol.identity`). Returns the nodes that gave no valid proof, with why."""
        if self.manifest is None:
            raise ValueError(
                "secagg-mode = 'malicious' needs the federation's identity manifest "
                "(identity-manifest)"
            )
        unknown = sorted(node for node in nodes if node not in self.client_ids)
        if not unknown:
            return {}
        challenges = {node: secrets.token_bytes(CHALLENGE_BYTES) for node in unknown}
        contents = {
            node: RecordDict(
                {
                    R.SECAGG_RECORD: ConfigRecord(
                        {R.STAGE: R.IDENTIFY, R.PAYLOADS: [challenges[node]]}
                    )
                }
            )
            for node in unknown
        }
        outcome = exchange(grid, contents, R.SECAGG_MESSAGE_TYPE, str(round_number), timeout)
        failed = {node: f"identify: {why}" for node, why in outcome.dropped.items()}
        for node, reply in sorted(outcome.replies.items()):
            try:
                (proof,) = _payloads(reply)
                client_id = check_identity_proof(self.manifest, node, challenges[node], proof)
            except (KeyError, TypeError, ValueError, ProtocolError) as error:
                failed[node] = f"identify: {error}"
                continue
            for earlier in [n for n, c in self.client_ids.items() if c == client_id]:
                del self.client_ids[earlier]  # the newest proof of an entry wins
            self.client_ids[node] = client_id
        return failed


def aggregate_securely(
    grid: Grid,
    nodes: list[int],
    content: RecordDict,
    round_number: int,
    settings: FederationSettings,
    dimension: int,
    next_nodes: list[int] | None = None,
    manifest: IdentityManifest | None = None,
) -> RoundAggregate:
    """One round on its own: every stage a message of its own (no round prepared ahead)."""
    return SecureAggregator(pipeline=False, manifest=manifest)(
        grid, nodes, content, round_number, settings, dimension, next_nodes
    )
