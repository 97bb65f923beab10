"""Play whole rounds on one machine, through the same state machines and wire encoding.

Every message is encoded with `to_bytes`, logged in the transcript, and decoded again on the
other side, exactly as a network transport would; a dropout schedule says which client stays
silent from which stage on. `run_round` plays one round, its clients in this process or, with
`workers`, in forked worker processes that see only bytes. `run_rounds` plays several as a
federation does, through the scheduler of `protocol/pipeline.py` (pipelined: SPEC.md §9), each
node keeping its rounds in a `ClientSessions`. Nothing here is a shortcut the federation would
not take. A malicious-mode config (SPEC.md §10) gets a fresh identity key per client and their
manifest, unless the caller passes its own.
"""

from __future__ import annotations

import multiprocessing
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

import numpy as np
import numpy.typing as npt

from protocol.client import SecAggClient
from protocol.config import SecAggConfig
from protocol.errors import ProtocolAbort, ProtocolError
from protocol.identity import Identities, fresh_identities
from protocol.messages import MaskedInputRequest, Message, parse_message
from protocol.nodes import DropoutPlan, LocalNodes
from protocol.pipeline import (
    Cohort,
    PipelineScheduler,
    RoundInFlight,
)
from protocol.quantize import check_input, to_signed
from protocol.server import AggregateResult, SecAggServer
from protocol.stages import Stage, stage_order
from protocol.transcript import Transcript

Progress = Callable[[Stage, int, int], None]
"""Called as (stage, clients done, clients in the stage) while a stage runs."""
Intercept = Callable[[Message], Message | None]
"""A network adversary: sees every message in transit, returns what to deliver (None drops it)."""


@dataclass
class RoundResult:
    """The outcome of an in-process round, with what is needed to check it."""

    aggregate: AggregateResult
    """What the server computed."""
    transcript: Transcript
    """Every message sent."""
    expected_integer_sum: npt.NDArray[np.int64]
    """Sum of the survivors' quantised inputs, computed in the clear (simulation only)."""
    expected_float_sum: npt.NDArray[np.float64]
    """Float sum of the survivors' clipped inputs (simulation only)."""
    seconds: float
    """Wall time of the round, clients and server together."""
    client_errors: dict[int, ProtocolError] = field(default_factory=dict)
    """Errors raised by clients (each such client stopped answering)."""
    masks_expanded: int = 0
    """Number of d-long PRG masks expanded by clients and server together."""

    @property
    def survivors(self) -> tuple[int, ...]:
        return self.aggregate.survivors

    @property
    def exact(self) -> bool:
        """True when the unmasked integer sum equals the survivors' quantised inputs' sum."""
        return bool(np.array_equal(self.aggregate.integer_sum, self.expected_integer_sum))

    @property
    def max_abs_error(self) -> float:
        """Largest |dequantised sum - float sum| over coordinates."""
        return float(np.max(np.abs(self.aggregate.float_sum - self.expected_float_sum)))


def _intercepted(
    message: Message, transcript: Transcript, intercept: Intercept | None
) -> tuple[Message, bytes] | None:
    """Pass a message through the adversary (if any), log its wire bytes, return both."""
    if intercept is not None:
        altered = intercept(message)
        if altered is None:
            return None
        message = altered
    payload = message.to_bytes()
    transcript.record(message, payload)
    return message, payload


ClientResult = bytes | ProtocolError
"""A client's wire response, or the protocol error it raised instead of answering."""


class _LocalClients:
    """Clients in this process: each request is decoded from, and answered in, wire bytes."""

    def __init__(self, clients: Mapping[int, SecAggClient]) -> None:
        self._clients = clients

    def handle(
        self, batch: list[tuple[int, bytes]], on_result: Callable[[int, ClientResult], None]
    ) -> None:
        for client_id, payload in batch:
            on_result(client_id, _answer(self._clients[client_id], payload))

    def close(self) -> int:
        return sum(client.masks_expanded for client in self._clients.values())


def _answer(client: SecAggClient, payload: bytes) -> ClientResult:
    try:
        request = parse_message(payload)
        response = client.handle(request).to_bytes()  # type: ignore[arg-type]
        if isinstance(request, MaskedInputRequest):
            client.release_input()  # masked and sent: as on a node, only keys and shares stay
        return response
    except ProtocolError as error:
        return error


_BATCH_DONE = -1


def _serve(connection: Connection, clients: dict[int, SecAggClient]) -> None:
    """Worker loop: answer batches of (client id, request bytes) until told to stop."""
    while True:
        batch = connection.recv()
        if batch is None:
            connection.send(sum(client.masks_expanded for client in clients.values()))
            return
        for client_id, payload in batch:
            try:
                result: ClientResult | str = _answer(clients[client_id], payload)
            except Exception:  # a bug, not a protocol fault: report it to the parent
                result = traceback.format_exc()
            connection.send((client_id, result))
        connection.send((_BATCH_DONE, b""))


class _ClientProcesses:
    """Clients spread over forked worker processes, reached only through wire bytes.

    This is how the federation runs them (one process per node); here it also lets a round use
    every core. Each worker owns a fixed shard of clients for the whole round.
    """

    def __init__(self, clients: Mapping[int, SecAggClient], workers: int) -> None:
        if "fork" not in multiprocessing.get_all_start_methods():
            raise ValueError("workers > 1 needs the 'fork' start method (Linux, macOS)")
        context = multiprocessing.get_context("fork")
        ids = sorted(clients)
        self._shard_of: dict[int, int] = {}
        self._connections: list[Connection] = []
        self._processes: list[BaseProcess] = []
        for shard in range(workers):
            members = {client_id: clients[client_id] for client_id in ids[shard::workers]}
            self._shard_of.update(dict.fromkeys(members, shard))
            parent_end, child_end = context.Pipe()
            process = context.Process(target=_serve, args=(child_end, members), daemon=True)
            process.start()
            child_end.close()
            self._connections.append(parent_end)
            self._processes.append(process)

    def handle(
        self, batch: list[tuple[int, bytes]], on_result: Callable[[int, ClientResult], None]
    ) -> None:
        shards: list[list[tuple[int, bytes]]] = [[] for _ in self._connections]
        for client_id, payload in batch:
            shards[self._shard_of[client_id]].append((client_id, payload))
        for connection, shard in zip(self._connections, shards, strict=True):
            connection.send(shard)
        pending = set(self._connections)
        while pending:
            for ready in wait(list(pending)):
                assert isinstance(ready, Connection)
                client_id, result = ready.recv()
                if client_id == _BATCH_DONE:
                    pending.discard(ready)
                elif isinstance(result, str):
                    raise RuntimeError(f"client {client_id} crashed in its worker:\n{result}")
                else:
                    on_result(client_id, result)

    def close(self) -> int:
        masks = 0
        for connection, process in zip(self._connections, self._processes, strict=True):
            try:
                connection.send(None)
                masks += connection.recv()
            except (EOFError, OSError):
                pass
            connection.close()
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
        return masks


def _answer_batch(
    host: _LocalClients | _ClientProcesses,
    stage: Stage,
    batch: list[tuple[int, bytes]],
    progress: Progress | None,
) -> dict[int, ClientResult]:
    results: dict[int, ClientResult] = {}

    def collect(client_id: int, result: ClientResult) -> None:
        results[client_id] = result
        if progress is not None:
            progress(stage, len(results), len(batch))

    host.handle(batch, collect)
    return results


def _vectors(
    inputs: Mapping[int, npt.ArrayLike] | Sequence[npt.ArrayLike], what: str = "inputs"
) -> tuple[dict[int, npt.NDArray[np.float64]], int]:
    """Checked vectors by id (a sequence gets ids 1..n), and their common length."""
    by_id = dict(inputs) if isinstance(inputs, Mapping) else dict(enumerate(inputs, start=1))
    vectors = {client_id: check_input(vector) for client_id, vector in by_id.items()}
    dimensions = {vector.shape[0] for vector in vectors.values()}
    if len(dimensions) != 1:
        raise ValueError(f"{what} must share one length, got lengths {sorted(dimensions)}")
    (dimension,) = dimensions
    return vectors, dimension


def _identities(
    config: SecAggConfig, ids: Iterable[int], given: Identities | None
) -> Identities | None:
    """None in semi-honest mode; in malicious mode `given`, or fresh ones (id = client/node id)."""
    if config.mode != "malicious":
        if given is not None:
            raise ValueError("identities are for malicious-mode rounds only")
        return None
    return given or fresh_identities(ids)


def run_round(
    config: SecAggConfig,
    inputs: Mapping[int, npt.ArrayLike] | Sequence[npt.ArrayLike],
    *,
    dropout: Mapping[int, Stage] | None = None,
    round_number: int = 0,
    rounding_seed: int | None = None,
    intercept: Intercept | None = None,
    progress: Progress | None = None,
    workers: int = 1,
    identities: Identities | None = None,
) -> RoundResult:
    """Run one round for the given inputs (a sequence gets ids 1..n).

    `dropout[client] = stage` makes the client silent from that stage on. `workers` > 1 hosts
    the clients in that many forked processes (the server stays here). Raises `ProtocolAbort`
    when fewer than t clients remain (or, in malicious mode, fewer than the quorum sign).
    """
    start = time.perf_counter()
    vectors, dimension = _vectors(inputs)
    schedule = dict(dropout or {})
    unknown = set(schedule) - set(vectors)
    if unknown:
        raise ValueError(f"dropout names clients without an input: {sorted(unknown)}")
    keys, manifest = _identities(config, vectors, identities) or ({}, None)
    clients = {
        client_id: SecAggClient(
            client_id,
            config,
            vector,
            rounding_seed=None if rounding_seed is None else rounding_seed + client_id,
            round_number=round_number,
            identity=keys.get(client_id),
            manifest=manifest,
        )
        for client_id, vector in vectors.items()
    }
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    server = SecAggServer(config, dimension, round_number, manifest)
    transcript = Transcript()
    client_errors: dict[int, ProtocolError] = {}
    # Simulation only: the clear encodings the sum is checked against (clients release theirs).
    encoded_inputs = {client_id: client.quantized_input for client_id, client in clients.items()}
    requests: Mapping[int, Message] = server.start(sorted(clients))
    host = _LocalClients(clients) if workers == 1 else _ClientProcesses(clients, workers)
    outcome: Mapping[int, Message] | AggregateResult | None = None
    try:
        for stage in stage_order(config.mode):
            batch: list[tuple[int, bytes]] = []
            for client_id, request in sorted(requests.items()):
                sent = _intercepted(request, transcript, intercept)
                dropped_at = schedule.get(client_id)
                silent = dropped_at is not None and dropped_at.position <= stage.position
                if sent is not None and not silent:
                    batch.append((client_id, sent[1]))
            results = _answer_batch(host, stage, batch, progress)
            responses: dict[int, Message] = {}
            for client_id, result in sorted(results.items()):
                if isinstance(result, ProtocolError):
                    client_errors[client_id] = result
                    continue
                response = parse_message(result)
                received = _intercepted(response, transcript, intercept)
                if received is not None:
                    message, payload = received
                    # An altered message goes through the wire encoding once more.
                    responses[client_id] = (
                        message if message is response else parse_message(payload)
                    )
            outcome = server.receive(stage, responses)
            if not isinstance(outcome, AggregateResult):
                requests = outcome
    finally:
        client_masks = host.close()
    assert isinstance(outcome, AggregateResult)
    survivors = list(outcome.survivors)
    expected_words = np.zeros(dimension, dtype=np.uint32)
    expected_float = np.zeros(dimension, dtype=np.float64)
    for client_id in survivors:
        encoded = encoded_inputs[client_id]
        assert encoded is not None  # every simulated client was built with its input
        np.add(expected_words, encoded, out=expected_words)
        expected_float += np.clip(vectors[client_id], -config.clip, config.clip)
    return RoundResult(
        aggregate=outcome,
        transcript=transcript,
        expected_integer_sum=to_signed(expected_words, config),
        expected_float_sum=expected_float,
        seconds=time.perf_counter() - start,
        client_errors=client_errors,
        masks_expanded=server.masks_expanded + client_masks,
    )


# -- several rounds, as a federation runs them (SPEC.md §9) -----------------------------------


@dataclass
class RoundOutcome:
    """One round of `run_rounds`: its checked sum, or the abort that stopped it."""

    round_number: int
    result: RoundResult | None
    """The sum and its check (None when the round aborted)."""
    abort: ProtocolAbort | None
    """What stopped the round (None when it completed)."""
    transcript: Transcript
    """The round's own messages, in the order sent (its key stages too, if run a round ahead)."""
    messages: list[str]
    """The transport messages of this round's turn, e.g. `masked_input+advertise_keys`."""
    stage_seconds: dict[str, float]
    """The scheduler's timings of the round (`RoundInFlight.seconds`)."""

    @property
    def exact(self) -> bool:
        return self.result is not None and self.result.exact


def run_rounds(
    config: SecAggConfig,
    inputs: Sequence[Mapping[int, npt.ArrayLike] | Sequence[npt.ArrayLike]],
    *,
    pipelined: bool = True,
    dropout: DropoutPlan | None = None,
    rounding_seed: int | None = None,
    persist: bool = False,
    identities: Identities | None = None,
) -> list[RoundOutcome]:
    """Run rounds 1, 2, ... with `inputs[r - 1]` as round r's vectors by node (a sequence gets
    nodes 1..n), whose nodes are round r's cohort.

    `pipelined` runs each round's key stages inside the previous round's messages (SPEC.md §9);
    otherwise each stage is a message of its own. An abort is reported in its round's outcome
    and the other rounds go on. `dropout[r][node] = stage` silences the node in every message
    carrying round r's `stage` or a later stage of round r (`LocalNodes`). In malicious mode
    each node's manifest id is its node id (node ids must then be in [1, 2^32)).
    """
    if not inputs:
        raise ValueError("inputs must hold at least one round")
    rounds = {r: _vectors(vectors, f"round {r}'s inputs") for r, vectors in enumerate(inputs, 1)}
    for r, schedule in (dropout or {}).items():
        unknown = set(schedule) - set(rounds[r][0]) if r in rounds else set(schedule)
        if unknown:
            raise ValueError(
                f"dropout[{r}] names nodes without an input in round {r}: {sorted(unknown)}"
            )
    everyone = {node for vectors, _ in rounds.values() for node in vectors}
    keys, manifest = _identities(config, everyone, identities) or (None, None)
    nodes = LocalNodes(
        {r: vectors for r, (vectors, _) in rounds.items()},
        dropout=dropout,
        rounding_seed=rounding_seed,
        persist=persist,
        identities=keys,
        manifest=manifest,
    )

    def cohort(members: Iterable[int]) -> Cohort:
        ids = {node: node for node in members}  # malicious mode: a node's manifest id is its id
        if manifest is None:
            return Cohort.of(ids, config)
        return Cohort.of(ids, config, manifest=manifest, client_ids=ids)

    scheduler = PipelineScheduler(pipelined)
    outcomes: list[RoundOutcome] = []
    for r, (vectors, dimension) in rounds.items():
        following = cohort(rounds[r + 1][0]) if r + 1 in rounds else None
        start = time.perf_counter()
        round_ = scheduler.run_round(r, cohort(vectors), dimension, nodes, following)
        seconds = time.perf_counter() - start
        result = None
        if round_.outcome is not None:
            result = _checked(round_, round_.outcome, nodes, vectors, seconds)
        messages = nodes.messages.get(r, [])
        outcome = RoundOutcome(
            r, result, round_.aborted, round_.transcript, messages, round_.seconds
        )
        outcomes.append(outcome)
    return outcomes


def _checked(
    round_: RoundInFlight,
    aggregate: AggregateResult,
    nodes: LocalNodes,
    vectors: Mapping[int, npt.NDArray[np.float64]],
    seconds: float,
) -> RoundResult:
    """The round's sum beside the sum of its contributors' inputs, computed in the clear."""
    config = round_.cohort.config
    expected_words = np.zeros(round_.server.dimension, dtype=np.uint32)
    expected_float = np.zeros(round_.server.dimension, dtype=np.float64)
    for node in round_.contributors():
        np.add(expected_words, nodes.encoded[round_.number][node], out=expected_words)
        expected_float += np.clip(vectors[node], -config.clip, config.clip)
    errors = nodes.errors.get(round_.number, {})
    return RoundResult(
        aggregate=aggregate,
        transcript=round_.transcript,
        expected_integer_sum=to_signed(expected_words, config),
        expected_float_sum=expected_float,
        seconds=seconds,
        client_errors={round_.client_of[node]: error for node, error in errors.items()},
        masks_expanded=round_.server.masks_expanded + nodes.masks_expanded.get(round_.number, 0),
    )
