"""`secagg = "ours"`: each round's sum through our secure aggregation, over Flower messages.

Each protocol stage is one `send_and_receive` to the nodes still in the round, driving a
`protocol.SecAggServer` per round: the server state machine produces the requests, the replies
go back into it, and the next stage goes only to the clients it kept. A node that answers with
an error, answers garbage or stays silent past the timeout is a dropout the round survives while
at least t clients remain (below t, `ProtocolAbort`: the round stops and nothing is revealed).
The masked-input request also carries the global weights and training config: a firm trains
then, once its keys are shared, and masks its contribution vector (layout in
`clients/participant.py`).

Pipelining (`pipeline = true`, SPEC.md §9): round r+1 is a separate protocol instance with its
own fresh keys, and its two key stages ride on round r's two messages, so a round costs two
messages per node instead of four once the federation is under way:

    message A of round r:  masked_input(r)  + advertise_keys(r+1)
    message B of round r:  unmask(r)        + share_keys(r+1)

The first round (or one whose cohort changed) runs its key stages on their own first.

Why not deeper: a three-deep pipeline (A = masked_input(r) + share_keys(r+1) +
advertise_keys(r+2), B = unmask(r) alone) empties B down to the engine's floor, but on 2 cores
a round is CPU-bound and A grows by what B loses: 1.84× plain against 1.76× for this schedule,
interleaved in one simulation (15 rounds each, n = 100, d = 100,000), with a third round's
secrets held at every node. Not worth its extra state.

Node ids (64-bit) map to protocol client ids 1..n per round, in sorted node order: the protocol
uses them as Shamir x-coordinates.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from flwr.app import ConfigRecord, RecordDict
from flwr.serverapp import Grid
from pydantic import ValidationError

from clients import records as R
from protocol import (
    AggregateResult,
    ProtocolAbort,
    ProtocolError,
    SecAggConfig,
    SecAggServer,
    Stage,
    Transcript,
    parse_message,
)
from server.messaging import exchange
from server.rounds import RoundAggregate
from server.settings import FederationSettings


def secagg_config(settings: FederationSettings, num_clients: int) -> SecAggConfig:
    """The round's public parameters (`FederationSettings.secagg_config` reads the sentinels)."""
    return settings.secagg_config(num_clients)


@dataclass
class RoundInFlight:
    """The server's side of one round: its protocol state and which node is which client."""

    number: int
    nodes: tuple[int, ...]
    server: SecAggServer
    requests: dict[int, Any]
    """The requests of the round's next stage, by protocol client id."""
    client_of: dict[int, int]
    node_of: dict[int, int]
    transcript: Transcript = field(default_factory=Transcript)
    transport_drops: dict[int, str] = field(default_factory=dict)
    public_metrics: dict[int, dict[str, float]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    outcome: AggregateResult | None = None
    aborted: ProtocolAbort | None = None

    @classmethod
    def open(
        cls, number: int, nodes: list[int], settings: FederationSettings, dimension: int
    ) -> RoundInFlight:
        ordered = tuple(sorted(nodes))
        client_of = {node: index for index, node in enumerate(ordered, start=1)}
        server = SecAggServer(secagg_config(settings, len(ordered)), dimension, number)
        requests = server.start(client_of.values())
        node_of = {index: node for node, index in client_of.items()}
        return cls(number, ordered, server, dict(requests), client_of, node_of)

    @property
    def stage(self) -> Stage | None:
        """The stage of the requests to send next (None once the sum is out or aborted)."""
        if self.outcome is not None or self.aborted is not None or not self.requests:
            return None
        return next(iter(self.requests.values())).stage  # type: ignore[no-any-return]

    def receive(self, stage: Stage, responses: dict[int, Any]) -> None:
        """Feed one stage's responses to the state machine (ProtocolAbort propagates)."""
        handler = {
            Stage.ADVERTISE_KEYS: self.server.advertise_keys,
            Stage.SHARE_KEYS: self.server.share_keys,
            Stage.MASKED_INPUT: self.server.masked_input,
            Stage.UNMASK: self.server.unmask,
        }[stage]
        started = time.perf_counter()
        try:
            result = handler(responses)
        except ProtocolAbort as abort:
            self.aborted, self.requests = abort, {}
            raise
        self.seconds[f"{stage.value}.server"] = time.perf_counter() - started
        if isinstance(result, AggregateResult):
            self.outcome, self.requests = result, {}
        else:
            self.requests = dict(result)

    def aggregate(self) -> RoundAggregate:
        assert self.outcome is not None
        contributors = [self.node_of[c] for c in self.outcome.survivors]
        dropped = {
            self.node_of[c]: f"{record.stage.value}: {record.reason.value} {record.detail}".strip()
            for c, record in self.server.drops.items()
        }
        dropped.update(self.transport_drops)
        return RoundAggregate(
            total=np.asarray(self.outcome.float_sum, dtype=np.float64),
            contributors=contributors,
            dropped=dropped,
            public_metrics={n: m for n, m in self.public_metrics.items() if n in contributors},
            transcript=[entry.model_dump(mode="json") for entry in self.transcript.entries],
            info={
                "secagg": {
                    "threshold": self.server.threshold,
                    "masks_expanded": self.server.masks_expanded,
                    "seconds": self.seconds,
                }
            },
        )


Part = tuple[RoundInFlight, Stage]
"""One round's stage inside a message."""


def _label(parts: list[Part]) -> str:
    """`masked_input+advertise_keys`: the stages a message carries, in round order."""
    return "+".join(stage.value for _, stage in parts)


class SecureAggregator:
    """Our secure aggregation across the rounds of one federation.

    Keeps the next round's protocol instance between calls when pipelining, so each call
    `(grid, nodes, content, round, settings, dimension, next_nodes)` returns round `round`'s
    sum having also run round `round + 1`'s key stages with `next_nodes`.
    """

    def __init__(self, pipeline: bool = True) -> None:
        self.pipeline = pipeline
        self._prepared: RoundInFlight | None = None

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
        current = self._take_prepared(round_number, nodes, dimension)
        if current is None:
            current = RoundInFlight.open(round_number, nodes, settings, dimension)
        following: RoundInFlight | None = None
        try:
            while current.stage in (Stage.ADVERTISE_KEYS, Stage.SHARE_KEYS):
                self._exchange(grid, [current], None, round_number, settings.timeout)
            if self.pipeline and next_nodes:
                following = RoundInFlight.open(round_number + 1, next_nodes, settings, dimension)
            for _ in (Stage.MASKED_INPUT, Stage.UNMASK):
                following = self._exchange(
                    grid, [current, following], content, round_number, settings.timeout
                )
        finally:
            alive = following is not None and following.aborted is None
            self._prepared = following if alive else None
        return current.aggregate()

    def _take_prepared(
        self, round_number: int, nodes: list[int], dimension: int
    ) -> RoundInFlight | None:
        """The round prepared during the last call, if it is this round with these nodes."""
        prepared, self._prepared = self._prepared, None
        if prepared is None or prepared.number != round_number:
            return None
        if prepared.nodes != tuple(sorted(nodes)) or prepared.server.dimension != dimension:
            return None  # another cohort: start afresh (the nodes drop the stale round)
        return prepared

    def _exchange(
        self,
        grid: Grid,
        rounds: list[RoundInFlight | None],
        content: RecordDict | None,
        group: int,
        timeout: float,
    ) -> RoundInFlight | None:
        """Send each round's next stage, together in one message per node, and feed the replies
        back. Returns the last round if it is still alive (a pipelined round that aborts is
        dropped; the current round's abort propagates)."""
        prepared_at = time.perf_counter()
        parts = [(r, stage) for r in rounds if r is not None and (stage := r.stage) is not None]
        asked: dict[int, list[Part]] = defaultdict(list)
        payloads: dict[int, list[bytes]] = defaultdict(list)
        for part in parts:
            round_ = part[0]
            for client_id, request in sorted(round_.requests.items()):
                payload = request.to_bytes()
                round_.transcript.record(request, payload)
                node = round_.node_of[client_id]
                asked[node].append(part)
                payloads[node].append(payload)
        label = _label(parts)
        contents: dict[int, RecordDict] = {}
        for node, node_payloads in payloads.items():
            record = RecordDict(
                {
                    R.SECAGG_RECORD: ConfigRecord(
                        {R.STAGE: _label(asked[node]), R.PAYLOADS: node_payloads}
                    )
                }
            )
            if content is not None and any(s is Stage.MASKED_INPUT for _, s in asked[node]):
                # firms train now, then mask (clients/secagg.py)
                record[R.GLOBAL_RECORD] = content.array_records[R.GLOBAL_RECORD]
                record[R.CONFIG_RECORD] = content.config_records[R.CONFIG_RECORD]
            contents[node] = record
        started = time.perf_counter()
        replies = exchange(grid, contents, R.SECAGG_MESSAGE_TYPE, str(group), timeout)
        elapsed = time.perf_counter() - started
        transport = started - prepared_at
        started = time.perf_counter()
        responses: dict[int, dict[int, Any]] = {r.number: {} for r, _ in parts}
        for node, reason in replies.dropped.items():
            for round_, stage in asked[node]:
                round_.transport_drops.setdefault(node, f"{stage.value}: {reason}")
        for node, reply in replies.replies.items():
            self._read_reply(node, reply, asked[node], responses)
        transport += time.perf_counter() - started
        following = rounds[-1] if len(rounds) > 1 else None
        for round_, stage in reversed(parts):  # the pipelined round first: the current may abort
            round_.seconds[f"{label}.exchange"] = elapsed
            round_.seconds[f"{label}.transport"] = transport  # encoding, parsing, transcript
            try:
                round_.receive(stage, responses[round_.number])
            except ProtocolAbort:
                if round_ is not following:
                    raise
                following = None  # the next round starts afresh when its turn comes
        return following

    @staticmethod
    def _read_reply(
        node: int, reply: Any, asked: list[Part], responses: dict[int, dict[int, Any]]
    ) -> None:
        """Split one node's reply into its per-round responses; anything off drops the node
        from every round it was asked in."""
        try:
            record = reply.content.config_records[R.SECAGG_RECORD]
            parsed = [(parse_message(payload), payload) for payload in record[R.PAYLOADS]]
            by_round = {response.round: (response, payload) for response, payload in parsed}
            if len(parsed) != len(asked) or set(by_round) != {r.number for r, _ in asked}:
                raise ValueError(
                    f"expected one response for each of rounds {[r.number for r, _ in asked]}, "
                    f"got rounds {[response.round for response, _ in parsed]}"
                )
        except (KeyError, TypeError, ValueError, ValidationError, ProtocolError) as error:
            for round_, stage in asked:
                round_.transport_drops.setdefault(
                    node, f"{stage.value}: unreadable reply ({error})"
                )
            return
        metrics = reply.content.metric_records.get(R.METRICS_RECORD)
        for round_, stage in asked:
            response, payload = by_round[round_.number]
            round_.transcript.record(response, payload)
            responses[round_.number][round_.client_of[node]] = response
            if stage is Stage.MASKED_INPUT and metrics is not None:
                round_.public_metrics[node] = {k: float(v) for k, v in metrics.items()}


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
