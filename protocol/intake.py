"""How the server takes in one stage's responses, whatever the stage: envelope checks,
retransmissions and duplicates, and the log of what arrived.

`take_in` is the one place every response passes through. It checks each response's envelope
(server_checks.py), lets the stage check its content, and records everything in the stage's
`StageLog`, the raw material of the server's `ServerView` (transcript.py). The stage-specific
rules, and what follows from who answered, stay in `SecAggServer`'s stage methods.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from protocol.errors import DuplicateSender, ProtocolError
from protocol.messages import Message
from protocol.server_checks import check_envelope
from protocol.stages import Stage
from protocol.transcript import DropRecord, ReceivedMessage, StageView

ResponseT = TypeVar("ResponseT", bound=Message)
Responses = Mapping[int, ResponseT] | Iterable[tuple[int, ResponseT]]
"""One stage's responses: client id -> message, or (client id, message) pairs when the
transport may deliver duplicates."""


@dataclass
class StageLog:
    """What one stage received, accepted and dropped."""

    received: list[ReceivedMessage] = field(default_factory=list)
    accepted: list[int] = field(default_factory=list)
    dropped: list[DropRecord] = field(default_factory=list)

    def as_view(self, stage: Stage) -> StageView:
        return StageView(
            stage=stage, received=self.received, accepted=self.accepted, dropped=self.dropped
        )


def received_entry(client_id: int, message: Message) -> tuple[ReceivedMessage, bytes]:
    """The log entry of one response as delivered from `client_id` (not yet accepted), and its
    wire bytes (empty for something that is not a message at all)."""
    is_message = isinstance(message, Message)
    payload = message.to_bytes() if is_message else b""
    entry = ReceivedMessage(
        sender=client_id,
        message_type=type(message).__name__,
        bytes=len(payload),
        sha256=message.wire_sha256() if is_message else hashlib.sha256(b"").hexdigest(),
        accepted=False,
    )
    return entry, payload


def take_in(
    stage: Stage,
    responses: Responses[ResponseT],
    expected: type[ResponseT],
    validate: Callable[[int, ResponseT], None],
    *,
    active: Collection[int],
    round_number: int,
    log: StageLog,
    rejections: list[tuple[int, ProtocolError]],
    drop: Callable[[int, ProtocolError], None],
) -> dict[int, ResponseT]:
    """The responses that pass their envelope and content checks, by sender.

    An identical retransmission changes nothing; two different responses from one id refuse
    both (`DuplicateSender`). Every refusal is appended to `rejections`, and the first one of
    a client still `active` drops it (`drop`, which takes it out of `active`).
    """
    pairs = responses.items() if isinstance(responses, Mapping) else responses
    accepted: dict[int, ResponseT] = {}
    payloads: dict[int, bytes] = {}
    refused: set[int] = set()
    for client_id, message in pairs:
        received, payload = received_entry(client_id, message)
        try:
            if client_id in accepted or client_id in refused:
                if payloads.get(client_id) == payload:
                    log.received.append(received)
                    continue  # an identical retransmission changes nothing
                accepted.pop(client_id, None)
                raise DuplicateSender(f"client {client_id} sent two different {stage} responses")
            check_envelope(client_id, message, stage, expected, active, round_number)
            validate(client_id, message)
        except ProtocolError as error:
            log.received.append(received)
            rejections.append((client_id, error))
            if client_id in active and client_id not in refused:
                refused.add(client_id)
                payloads[client_id] = payload
                drop(client_id, error)
            continue
        log.received.append(received.model_copy(update={"accepted": True}))
        accepted[client_id] = message
        payloads[client_id] = payload
    return accepted
