"""Play a whole round in one process, through the same state machines and wire encoding.

Every message is encoded with `to_bytes`, logged in the transcript, and decoded again on the
other side, exactly as a network transport would; a dropout schedule says which client stays
silent from which stage on. Nothing here is a shortcut the federation would not take.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from protocol.client import SecAggClient
from protocol.config import SecAggConfig
from protocol.errors import ProtocolError
from protocol.messages import Message, parse_message
from protocol.quantize import check_input, to_signed
from protocol.server import AggregateResult, SecAggServer
from protocol.stages import STAGE_ORDER, Stage
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


def _deliver(
    message: Message, transcript: Transcript, intercept: Intercept | None
) -> Message | None:
    if intercept is not None:
        altered = intercept(message)
        if altered is None:
            return None
        message = altered
    payload = message.to_bytes()
    transcript.record(message, payload)
    return parse_message(payload)


def run_round(
    config: SecAggConfig,
    inputs: Mapping[int, npt.ArrayLike] | Sequence[npt.ArrayLike],
    *,
    dropout: Mapping[int, Stage] | None = None,
    round_number: int = 0,
    rounding_seed: int | None = None,
    intercept: Intercept | None = None,
    progress: Progress | None = None,
) -> RoundResult:
    """Run one round for the given inputs (a sequence gets ids 1..n).

    `dropout[client] = stage` makes the client silent from that stage on. Raises
    `ProtocolAbort` when fewer than t clients remain.
    """
    start = time.perf_counter()
    by_id = dict(inputs) if isinstance(inputs, Mapping) else dict(enumerate(inputs, start=1))
    vectors = {client_id: check_input(vector) for client_id, vector in by_id.items()}
    dimensions = {vector.shape[0] for vector in vectors.values()}
    if len(dimensions) != 1:
        raise ValueError(f"inputs must share one length, got lengths {sorted(dimensions)}")
    (dimension,) = dimensions
    schedule = dict(dropout or {})
    unknown = set(schedule) - set(vectors)
    if unknown:
        raise ValueError(f"dropout names clients without an input: {sorted(unknown)}")
    clients = {
        client_id: SecAggClient(
            client_id,
            config,
            vector,
            rounding_seed=None if rounding_seed is None else rounding_seed + client_id,
            round_number=round_number,
        )
        for client_id, vector in vectors.items()
    }
    server = SecAggServer(config, dimension, round_number)
    transcript = Transcript()
    client_errors: dict[int, ProtocolError] = {}
    stage_methods: dict[Stage, Callable[..., object]] = {
        Stage.ADVERTISE_KEYS: server.advertise_keys,
        Stage.SHARE_KEYS: server.share_keys,
        Stage.MASKED_INPUT: server.masked_input,
        Stage.UNMASK: server.unmask,
    }
    requests: Mapping[int, Message] = server.start(sorted(clients))
    outcome: object = None
    for stage in STAGE_ORDER:
        responses: dict[int, Message] = {}
        for done, (client_id, request) in enumerate(sorted(requests.items()), start=1):
            if progress is not None:
                progress(stage, done, len(requests))
            delivered = _deliver(request, transcript, intercept)
            dropped_at = schedule.get(client_id)
            if delivered is None or (
                dropped_at is not None and dropped_at.position <= stage.position
            ):
                continue
            try:
                response = clients[client_id].handle(delivered)  # type: ignore[arg-type]
            except ProtocolError as error:
                client_errors[client_id] = error
                continue
            received = _deliver(response, transcript, intercept)
            if received is not None:
                responses[client_id] = received
        outcome = stage_methods[stage](responses)
        if stage is not Stage.UNMASK:
            assert isinstance(outcome, dict)
            requests = outcome
    assert isinstance(outcome, AggregateResult)
    survivors = list(outcome.survivors)
    expected_words = np.zeros(dimension, dtype=np.uint32)
    expected_float = np.zeros(dimension, dtype=np.float64)
    for client_id in survivors:
        np.add(expected_words, clients[client_id].quantized_input, out=expected_words)
        expected_float += np.clip(vectors[client_id], -config.clip, config.clip)
    return RoundResult(
        aggregate=outcome,
        transcript=transcript,
        expected_integer_sum=to_signed(expected_words, config),
        expected_float_sum=expected_float,
        seconds=time.perf_counter() - start,
        client_errors=client_errors,
        masks_expanded=server.masks_expanded
        + sum(client.masks_expanded for client in clients.values()),
    )
