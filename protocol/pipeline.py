"""The server's scheduler for pipelined rounds (SPEC.md §9), free of any framework.

A federation runs one protocol instance per round. Once it is under way, round r+1's two key
stages ride on round r's messages, so a semi-honest round costs each node two messages instead
of four, and a malicious-mode round (SPEC.md §10, one stage more) three instead of five:

    bootstrap (first round, or one started afresh):  advertise_keys(r), then share_keys(r)
    message A:                                       masked_input(r)      + advertise_keys(r+1)
    message B, semi-honest:                          unmask(r)            + share_keys(r+1)
    message B, malicious:                            consistency_check(r) + share_keys(r+1)
    message C, malicious only:                       unmask(r)

The consistency check cannot share a message with round r's masked input (it signs the set of
clients whose masked input arrived) nor with its unmask (that needs a quorum of its
signatures), and round r+1 has nothing left to run before it trains on round r's sum: so a
malicious-mode round is three messages after training, one more than a semi-honest one, and
round r+1's key stages fill the first two (a following round joins a message only while it is
in its key stages).

`PipelineScheduler.run_round` decides what each message carries to each node, hands it to a
transport (`Send`: the Flower workflow in server/secagg_workflow.py, or the in-process
`LocalNodes` of protocol/nodes.py) and feeds each node's replies back to each round's
`SecAggServer`. The rounds share nothing but the messages: a node whose reply fails is dropped
from every round in it, and an abort stops its own round only. The prepared round is kept
between calls and taken up only by a call for that round with the same cohort, config and
dimension; otherwise the round starts afresh (its nodes drop the stale instance, since an
advertise request reopens a round).

Why not deeper: a three-deep pipeline (A = masked_input(r) + share_keys(r+1) +
advertise_keys(r+2), B = unmask(r) alone) empties B down to the engine's floor, but on 2 cores
a round is CPU-bound and A grows by what B loses: 1.84× plain against 1.76× for this schedule,
interleaved in one Flower simulation (15 rounds each, n = 100, d = 100,000), with a third
round's secrets held at every node. Not worth its extra state.

Transport node ids (any distinct ints, e.g. Flower's 64-bit node ids) map to protocol client
ids per round: in semi-honest mode 1..n in sorted node order (the protocol uses client ids as
Shamir x-coordinates), in malicious mode the id under which the identity manifest lists the
node's identity key (the transport learns it once, e.g. `server/secagg_workflow.py`'s identity
check), since every signature names it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from protocol.config import SecAggConfig
from protocol.errors import ProtocolAbort, ProtocolError
from protocol.identity import IdentityManifest
from protocol.messages import Message, parse_message
from protocol.server import AggregateResult, SecAggServer
from protocol.stages import Stage
from protocol.transcript import Transcript

KEY_STAGES = (Stage.ADVERTISE_KEYS, Stage.SHARE_KEYS)
"""The stages a pipelined round runs ahead, inside the previous round's messages."""


@dataclass(frozen=True)
class Cohort:
    """Who takes part in a round, under which public parameters."""

    nodes: tuple[int, ...]
    """Transport node ids, sorted."""
    config: SecAggConfig
    """The round's public parameters (`num_clients` at least the cohort's size)."""
    clients: tuple[int, ...]
    """The protocol client id of each node, in the order of `nodes`: 1..n in semi-honest mode,
    each node's id in the identity manifest in malicious mode."""
    manifest: IdentityManifest | None = None
    """The federation's identity manifest (malicious mode only)."""

    @classmethod
    def of(
        cls,
        nodes: Iterable[int],
        config: SecAggConfig,
        *,
        manifest: IdentityManifest | None = None,
        client_ids: Mapping[int, int] | None = None,
    ) -> Cohort:
        """A cohort; in malicious mode `client_ids` maps each node to its manifest id."""
        ordered = tuple(sorted(nodes))
        if len(set(ordered)) != len(ordered):
            raise ValueError(f"a cohort's nodes must be distinct, got {list(ordered)}")
        if config.mode != "malicious":
            if manifest is not None or client_ids is not None:
                raise ValueError(
                    "a semi-honest cohort numbers its nodes 1..n: give no manifest or client ids"
                )
            return cls(ordered, config, tuple(range(1, len(ordered) + 1)))
        if manifest is None or client_ids is None:
            raise ValueError(
                "a malicious-mode cohort needs the identity manifest and each node's client id"
            )
        unknown = [node for node in ordered if node not in client_ids]
        if unknown:
            raise ValueError(f"client_ids has no manifest id for nodes {unknown}")
        clients = tuple(client_ids[node] for node in ordered)
        if len(set(clients)) != len(clients):
            raise ValueError(f"two nodes of the cohort share a client id: {list(clients)}")
        strangers = sorted(set(clients) - set(manifest.keys))
        if strangers:
            raise ValueError(f"client ids {strangers} are not in the identity manifest")
        return cls(ordered, config, clients, manifest)


@dataclass(frozen=True)
class Part:
    """One round's stage inside a transport message."""

    round_number: int
    stage: Stage


def label(parts: Iterable[Part]) -> str:
    """`masked_input+advertise_keys`: the stages of a message, in round order."""
    return "+".join(part.stage.value for part in parts)


@dataclass(frozen=True)
class NodeBatch:
    """What one message carries to one node: one protocol request per round it is asked in."""

    parts: tuple[Part, ...]
    """The round and stage of each request, in round order."""
    payloads: tuple[bytes, ...]
    """The requests' wire bytes, in the same order."""

    @property
    def label(self) -> str:
        return label(self.parts)

    def carries(self, stage: Stage) -> bool:
        """True when one of the requests is of `stage` (masked_input: the node trains first)."""
        return any(part.stage is stage for part in self.parts)


@dataclass(frozen=True)
class TransportMessage:
    """One exchange with every node concerned, sent during round `round_number`'s turn."""

    round_number: int
    """The current round r (the message's group: both of its rounds travel under r)."""
    parts: tuple[Part, ...]
    """Every round's stage the message carries, in round order."""
    batches: dict[int, NodeBatch]
    """What each node is sent, by node id, in sending order."""

    @property
    def label(self) -> str:
        return label(self.parts)


@dataclass(frozen=True)
class NoReply:
    """A node from which the transport got no usable reply, and why (error, timeout, garbage)."""

    reason: str


Reply = Sequence[bytes] | NoReply
"""A node's reply: its responses' wire bytes (one per round it was asked in), or why none."""
Send = Callable[[TransportMessage], Mapping[int, Reply]]
"""A transport: delivers one message to its nodes and returns their replies, in arrival order.
A node missing from the replies is silent."""


@dataclass
class RoundInFlight:
    """The server's side of one round: its state machine, which node is which client, and
    everything it sent and received."""

    number: int
    cohort: Cohort
    server: SecAggServer
    requests: dict[int, Message]
    """The requests of the round's next stage, by protocol client id (empty once it is over)."""
    client_of: dict[int, int]
    node_of: dict[int, int]
    transcript: Transcript = field(default_factory=Transcript)
    transport_drops: dict[int, str] = field(default_factory=dict)
    """Node -> the first stage at which the transport got no usable reply from it, and why."""
    seconds: dict[str, float] = field(default_factory=dict)
    """`<stage>.server`: the state machine; `<message label>.exchange`: the transport's round
    trip (messages and the nodes' work); `<message label>.transport`: encoding, parsing and
    recording the messages here."""
    outcome: AggregateResult | None = None
    aborted: ProtocolAbort | None = None

    @classmethod
    def open(cls, number: int, cohort: Cohort, dimension: int) -> RoundInFlight:
        client_of = dict(zip(cohort.nodes, cohort.clients, strict=True))
        server = SecAggServer(cohort.config, dimension, number, cohort.manifest)
        requests: dict[int, Message] = dict(server.start(client_of.values()))
        node_of = {index: node for node, index in client_of.items()}
        return cls(number, cohort, server, requests, client_of, node_of)

    @property
    def stage(self) -> Stage | None:
        """The stage of the requests to send next (None once the sum is out or it aborted)."""
        return self.server.next_stage

    def receive(self, stage: Stage, responses: Mapping[int, Message]) -> None:
        """Feed one stage's responses to the state machine; an abort is kept, not raised."""
        started = time.perf_counter()
        try:
            result = self.server.receive(stage, responses)
        except ProtocolAbort as abort:
            self.aborted, self.requests = abort, {}
            return
        self.seconds[f"{stage.value}.server"] = time.perf_counter() - started
        if isinstance(result, AggregateResult):
            self.outcome, self.requests = result, {}
        else:
            self.requests = dict(result)

    def contributors(self) -> list[int]:
        """Nodes whose input is in the sum (none unless the round completed)."""
        if self.outcome is None:
            return []
        return [self.node_of[client] for client in self.outcome.survivors]

    def dropped(self) -> dict[int, str]:
        """Node -> why it is not in the sum: the server's drop record or the transport's."""
        dropped = {
            self.node_of[client]: f"{record.stage.value}: {record.reason.value} "
            f"{record.detail}".strip()
            for client, record in self.server.drops.items()
        }
        dropped.update(self.transport_drops)
        return dropped


class PipelineScheduler:
    """A federation's rounds, one call each; when `pipelined`, each call also runs the next
    round's key stages inside this round's messages A and B and keeps that round for the next
    call."""

    def __init__(self, pipelined: bool = True) -> None:
        self.pipelined = pipelined
        self.prepared: RoundInFlight | None = None
        """The next round, its key stages run (or under way) during the last call."""

    def run_round(
        self,
        round_number: int,
        cohort: Cohort,
        dimension: int,
        send: Send,
        next_cohort: Cohort | None = None,
    ) -> RoundInFlight:
        """Run round `round_number` until its sum or its abort (`.outcome` / `.aborted`).

        With `pipelined` and `next_cohort`, round `round_number + 1`'s key stages run in this
        round's messages A and B; it survives this round's abort, and is dropped if it aborts
        itself.
        """
        current = self._take_prepared(round_number, cohort, dimension)
        if current is None:
            current = RoundInFlight.open(round_number, cohort, dimension)
        following: RoundInFlight | None = None
        try:
            while current.stage in KEY_STAGES:  # bootstrap: the key stages on their own
                self._exchange(send, current, None)
            if current.aborted is None and self.pipelined and next_cohort is not None:
                following = RoundInFlight.open(round_number + 1, next_cohort, dimension)
            while current.stage is not None:  # messages A and B (and C in malicious mode)
                self._exchange(send, current, following)
                if following is not None and following.aborted is not None:
                    following = None  # the next round starts afresh when its turn comes
        finally:
            self.prepared = following
        return current

    def _take_prepared(
        self, round_number: int, cohort: Cohort, dimension: int
    ) -> RoundInFlight | None:
        """The round prepared during the last call, if it is this round for this cohort."""
        prepared, self.prepared = self.prepared, None
        if prepared is None or prepared.number != round_number:
            return None
        if prepared.cohort != cohort or prepared.server.dimension != dimension:
            return None  # another cohort: start afresh (the nodes drop the stale round)
        return prepared

    def _exchange(
        self, send: Send, current: RoundInFlight, following: RoundInFlight | None
    ) -> None:
        """One message: each live round's next stage, together per node; replies fed back to
        each round."""
        prepared_at = time.perf_counter()
        rounds = [current]
        if following is not None and following.stage in KEY_STAGES:
            rounds.append(following)  # it trains only on this round's sum: keys only
        message = _message(current.number, rounds)
        started = time.perf_counter()
        replies = send(message)
        exchange_seconds = time.perf_counter() - started
        started = time.perf_counter()
        responses = _read_replies(message, replies, {r.number: r for r in rounds})
        transport_seconds = (started - prepared_at) + (time.perf_counter() - started)
        for round_, part in zip(rounds, message.parts, strict=True):
            round_.seconds[f"{message.label}.exchange"] = exchange_seconds
            round_.seconds[f"{message.label}.transport"] = transport_seconds
            round_.receive(part.stage, responses[round_.number])


def _message(group: int, rounds: list[RoundInFlight]) -> TransportMessage:
    """Encode and record every round's requests, then gather them per node in round order."""
    parts: list[Part] = []
    by_node: dict[int, tuple[list[Part], list[bytes]]] = {}
    for round_ in rounds:
        stage = round_.stage
        assert stage is not None
        part = Part(round_.number, stage)
        parts.append(part)
        for client_id, request in sorted(round_.requests.items()):
            payload = request.to_bytes()
            round_.transcript.record(request, payload)
            node_parts, node_payloads = by_node.setdefault(round_.node_of[client_id], ([], []))
            node_parts.append(part)
            node_payloads.append(payload)
    batches = {
        node: NodeBatch(tuple(node_parts), tuple(node_payloads))
        for node, (node_parts, node_payloads) in by_node.items()
    }
    return TransportMessage(group, tuple(parts), batches)


def _read_replies(
    message: TransportMessage, replies: Mapping[int, Reply], rounds: Mapping[int, RoundInFlight]
) -> dict[int, dict[int, Message]]:
    """Split each node's reply into its per-round responses (by client id), recording them;
    a reply that fails in any way drops its node from every round it was asked in."""
    responses: dict[int, dict[int, Message]] = {number: {} for number in rounds}
    for node, reply in replies.items():
        batch = message.batches.get(node)
        if batch is None:
            continue  # a reply from a node we did not ask: ignored, never trusted
        if isinstance(reply, NoReply):
            failure = reply.reason
        else:
            try:
                by_round = _one_response_per_round(batch, reply)
            except (ValueError, ProtocolError) as error:
                failure = f"unreadable reply ({error})"
            else:
                for part in batch.parts:
                    round_ = rounds[part.round_number]
                    response, payload = by_round[part.round_number]
                    round_.transcript.record(response, payload)
                    responses[part.round_number][round_.client_of[node]] = response
                continue
        for part in batch.parts:
            rounds[part.round_number].transport_drops.setdefault(
                node, f"{part.stage.value}: {failure}"
            )
    return responses


def _one_response_per_round(
    batch: NodeBatch, payloads: Sequence[bytes]
) -> dict[int, tuple[Message, bytes]]:
    parsed = [(parse_message(payload), payload) for payload in payloads]
    by_round: dict[int, tuple[Message, bytes]] = {
        response.round: (response, payload) for response, payload in parsed
    }
    asked = [part.round_number for part in batch.parts]
    if len(parsed) != len(asked) or set(by_round) != set(asked):
        raise ValueError(
            f"expected one response for each of rounds {asked}, "
            f"got rounds {[response.round for response, _ in parsed]}"
        )
    return by_round
