"""A firm's side of our secure aggregation over Flower messages.

A message carries one protocol request per round: one stage of one round, or, when the server
pipelines (SPEC.md §9), a stage of round r with a key stage of round r+1. `protocol.ClientSessions`
routes each request to its round's state machine.

The firm trains at the masked-input stage (as in Flower's SecAgg+): that request carries the
global weights, the firm trains, quantises its contribution vector (layout in
`clients/participant.py`) and masks it. Before that, it only exchanges keys, so a firm that
drops out early never trains for nothing.

Between messages the sessions are kept in the node's own Context (`context.state`), which never
leaves the node: in the simulation engine a node's messages may be served by different worker
processes, and a SuperNode may run each message in a fresh ClientApp process, so the state has
to be bytes. It is `protocol.SessionsState` as JSON (protocol/state.py lists every secret in
it: the open rounds' private keys and held shares), never a pickle, and a round's part is
dropped once the round is over. The state stays small (a few kB per open round) because a
round's d-long input exists only while it is being masked: the simulation engine ships a node's
Context with every message, and a 400 kB state would cost about a second per stage at 100 nodes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeGuard

from flwr.app import ConfigRecord, Context, Message, RecordDict

from clients import records as R
from clients.participant import LocalResult
from protocol import ClientSessions, SecAggClient, parse_message
from protocol.sessions import ConfigPolicy

_STATE_KEY = "sessions"


def load_sessions(context: Context, policy: ConfigPolicy | None = None) -> ClientSessions:
    """This node's open rounds (none if it has never taken part), under the node's `policy`
    (`clients/policy.py`: the rounds it accepts)."""
    record = context.state.config_records.get(R.CLIENT_STATE_RECORD)
    if record is None or _STATE_KEY not in record:
        return ClientSessions(policy=policy)
    stored = record[_STATE_KEY]
    if not isinstance(stored, bytes):
        raise TypeError(f"node state must hold bytes, got {type(stored).__name__}")
    return ClientSessions.from_bytes(stored, policy=policy)


def _store_sessions(context: Context, sessions: ClientSessions) -> None:
    if not sessions.open_rounds:  # nothing in progress: keep no secret around
        context.state.config_records.pop(R.CLIENT_STATE_RECORD, None)
        return
    context.state.config_records[R.CLIENT_STATE_RECORD] = ConfigRecord(
        {_STATE_KEY: sessions.to_bytes()}
    )


def _is_bytes_list(value: object) -> TypeGuard[list[bytes]]:
    return isinstance(value, list) and all(isinstance(p, bytes) for p in value)


def answer_stage(
    msg: Message,
    context: Context,
    train: Callable[[], LocalResult],
    policy: ConfigPolicy | None = None,
) -> Message:
    """Answer one message's requests; a ProtocolError (a config `policy` refuses, too)
    propagates, and Flower turns it into an error reply (the server then counts this firm as
    dropped from every round in the message)."""
    payloads = msg.content.config_records[R.SECAGG_RECORD][R.PAYLOADS]
    if not _is_bytes_list(payloads):
        raise TypeError(f"secagg payloads must be a list of bytes, got {type(payloads).__name__}")
    requests = [parse_message(payload) for payload in payloads]

    def provide_input(client: SecAggClient) -> None:
        result = train()
        # A repeatable run rounds repeatably; the masks still come from fresh keys.
        client.provide_input(result.contribution, rounding_seed=result.rounding_seed)

    sessions = load_sessions(context, policy)
    try:
        responses = sessions.handle_batch(requests, provide_input)  # type: ignore[arg-type]
    finally:
        _store_sessions(context, sessions)
    content = RecordDict(
        {
            R.SECAGG_RECORD: ConfigRecord(
                {
                    R.STAGE: "+".join(response.stage.value for response in responses),
                    R.PAYLOADS: [response.to_bytes() for response in responses],
                }
            ),  # and nothing else: no metric leaves the node beside the masked vector
        }
    )
    return Message(content, reply_to=msg)
