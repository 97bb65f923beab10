"""A firm's side of our secure aggregation over Flower messages: one message per stage.

The firm trains at the masked-input stage (as in Flower's SecAgg+): that request carries the
global weights, the firm trains, quantises its contribution vector (layout in
`clients/participant.py`) and masks it. Before that, it only exchanges keys, so a firm that
drops out early never trains for nothing.

Between stages the `protocol.SecAggClient` state machine is kept in the node's own Context
(`context.state`), which never leaves the node: in the simulation engine a node's messages may
be served by different worker processes, and a SuperNode may run each message in a fresh
ClientApp process, so the state has to be bytes. It holds the round's private keys; they are
pickled only into that node-local record, and dropped once the round is over. The state stays
small (a few kB) because the d-long input does not exist yet between stages 1 and 3: the
simulation engine ships a node's Context with every message, and a 400 kB state would cost
about a second per stage at 100 nodes.

The client is built with the announced dimension only; its input is given with
`SecAggClient.provide_input` at the masked-input stage and released (`release_input`) once
masked and sent, before the state is stored.
"""

from __future__ import annotations

import copyreg
import pickle
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from flwr.app import ConfigRecord, Context, Message, MetricRecord, RecordDict

from clients import records as R
from clients.participant import LocalResult
from protocol import (
    AdvertiseKeysRequest,
    MaskedInputRequest,
    SecAggClient,
    Stage,
    parse_message,
)


def _reduce_x25519(key: X25519PrivateKey) -> tuple[object, tuple[bytes]]:
    return X25519PrivateKey.from_private_bytes, (key.private_bytes_raw(),)


# Private keys pickle as their raw bytes, for the node-local state record only.
copyreg.pickle(type(X25519PrivateKey.generate()), _reduce_x25519)  # type: ignore[arg-type]

_STATE_KEY = "client"
_DIMENSION_KEY = "dimension"


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


def _load_dimension(context: Context) -> int:
    return int(context.state.config_records[R.CLIENT_STATE_RECORD][_DIMENSION_KEY])  # type: ignore[arg-type]


def _store_client(context: Context, client: SecAggClient, dimension: int) -> None:
    if client.next_stage is None:  # round over or aborted: keep no secret around
        context.state.config_records.pop(R.CLIENT_STATE_RECORD, None)
        return
    if client.next_stage is Stage.UNMASK:
        client.release_input()  # masked and sent: the state keeps keys and shares only
    context.state.config_records[R.CLIENT_STATE_RECORD] = ConfigRecord(
        {_STATE_KEY: pickle.dumps(client), _DIMENSION_KEY: dimension}
    )


def answer_stage(msg: Message, context: Context, train: Callable[[], LocalResult]) -> Message:
    """Answer one stage; a ProtocolError propagates, and Flower turns it into an error reply."""
    payload = msg.content.config_records[R.SECAGG_RECORD][R.PAYLOAD]
    if not isinstance(payload, bytes):
        raise TypeError(f"secagg payload must be bytes, got {type(payload).__name__}")
    request = parse_message(payload)
    metrics = MetricRecord()
    if isinstance(request, AdvertiseKeysRequest):
        dimension = request.dimension
        client = SecAggClient(
            request.receiver, request.config, dimension=dimension, round_number=request.round
        )
    else:
        client, dimension = _load_client(context), _load_dimension(context)
    if isinstance(request, MaskedInputRequest) and client.next_stage is Stage.MASKED_INPUT:
        result = train()
        # A repeatable run rounds repeatably; the masks still come from fresh keys.
        client.provide_input(result.contribution, rounding_seed=result.rounding_seed)
        if result.epsilon is not None and result.noise_multiplier is not None:
            metrics["dp-epsilon-spent"] = result.epsilon
            metrics["dp-noise-multiplier"] = result.noise_multiplier
    try:
        response = client.handle(request)  # type: ignore[arg-type]
    finally:
        _store_client(context, client, dimension)
    content = RecordDict(
        {
            R.SECAGG_RECORD: ConfigRecord(
                {R.STAGE: response.stage.value, R.PAYLOAD: response.to_bytes()}
            ),
            R.METRICS_RECORD: metrics,
        }
    )
    return Message(content, reply_to=msg)
