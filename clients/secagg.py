"""A firm's side of our secure aggregation over Flower messages: one message per stage.

The first stage (advertise keys) also carries the global weights: the firm trains, fixes its
contribution vector (layout in `clients/participant.py`) as the protocol input, and answers.
Between stages the `protocol.SecAggClient` state machine is kept in the node's own Context
(`context.state`), which never leaves the node: in the simulation engine a node's messages may
be served by different worker processes, and a SuperNode may run each message in a fresh
ClientApp process, so the state has to be bytes. It holds the round's private keys; they are
pickled only into that node-local record, and dropped once the round is over.
"""

from __future__ import annotations

import copyreg
import pickle
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from flwr.app import ConfigRecord, Context, Message, MetricRecord, RecordDict

from clients import records as R
from clients.participant import LocalResult
from protocol import AdvertiseKeysRequest, SecAggClient, parse_message


def _reduce_x25519(key: X25519PrivateKey) -> tuple[object, tuple[bytes]]:
    return X25519PrivateKey.from_private_bytes, (key.private_bytes_raw(),)


# Private keys pickle as their raw bytes, for the node-local state record only.
copyreg.pickle(type(X25519PrivateKey.generate()), _reduce_x25519)  # type: ignore[arg-type]

_STATE_KEY = "client"


def _load_client(context: Context) -> SecAggClient:
    record = context.state.config_records.get(R.CLIENT_STATE_RECORD)
    if record is None or _STATE_KEY not in record:
        raise RuntimeError(
            "no secure-aggregation round in progress at this node: a later stage arrived "
            "before advertise_keys"
        )
    client = pickle.loads(bytes(record[_STATE_KEY]))  # type: ignore[arg-type]
    if not isinstance(client, SecAggClient):
        raise RuntimeError(f"node state holds a {type(client).__name__}, not a SecAggClient")
    return client


def _store_client(context: Context, client: SecAggClient) -> None:
    if client.next_stage is None:  # round over or aborted: keep no secret around
        context.state.config_records.pop(R.CLIENT_STATE_RECORD, None)
        return
    context.state.config_records[R.CLIENT_STATE_RECORD] = ConfigRecord(
        {_STATE_KEY: pickle.dumps(client)}
    )


def answer_stage(msg: Message, context: Context, train: Callable[[], LocalResult]) -> Message:
    """Answer one stage; a ProtocolError propagates, and Flower turns it into an error reply."""
    payload = msg.content.config_records[R.SECAGG_RECORD][R.PAYLOAD]
    if not isinstance(payload, bytes):
        raise TypeError(f"secagg payload must be bytes, got {type(payload).__name__}")
    request = parse_message(payload)
    metrics = MetricRecord()
    if isinstance(request, AdvertiseKeysRequest):
        result = train()
        client = SecAggClient(
            request.receiver, request.config, result.contribution, round_number=request.round
        )
        if result.epsilon is not None and result.noise_multiplier is not None:
            metrics["dp-epsilon-spent"] = result.epsilon
            metrics["dp-noise-multiplier"] = result.noise_multiplier
    else:
        client = _load_client(context)
    try:
        response = client.handle(request)  # type: ignore[arg-type]
    finally:
        _store_client(context, client)
    content = RecordDict(
        {
            R.SECAGG_RECORD: ConfigRecord(
                {R.STAGE: response.stage.value, R.PAYLOAD: response.to_bytes()}
            ),
            R.METRICS_RECORD: metrics,
        }
    )
    return Message(content, reply_to=msg)
