"""`secagg = "ours"`: one round's sum through our secure aggregation, one Flower message per stage.

Each protocol stage is a single `send_and_receive` to the nodes still in the round, driving
`protocol.SecAggServer`: the server state machine produces the requests, the replies go back
into it, and the next stage goes only to the clients it kept. A node that answers with an error,
answers garbage or stays silent past the timeout is a dropout the round survives while at
least t clients remain (below t, `ProtocolAbort`: the round stops and nothing is revealed). The
masked-input request also carries the global weights and training config: a firm trains then,
once its keys are shared, and masks its contribution vector (layout in
`clients/participant.py`).

Node ids (64-bit) map to protocol client ids 1..n per round, in sorted node order: the protocol
uses them as Shamir x-coordinates.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from flwr.app import ConfigRecord, RecordDict
from flwr.serverapp import Grid
from pydantic import ValidationError

from clients import records as R
from protocol import (
    STAGE_ORDER,
    AggregateResult,
    ProtocolError,
    SecAggConfig,
    SecAggServer,
    Stage,
    Transcript,
    parse_message,
)
from server.federation import RoundAggregate
from server.messaging import exchange
from server.settings import FederationSettings


def secagg_config(settings: FederationSettings, num_clients: int) -> SecAggConfig:
    """The round's public parameters from the run config (0 means the protocol's default)."""
    return SecAggConfig(
        num_clients=num_clients,
        threshold=settings.threshold or None,
        neighbors=settings.neighbours or None,
        clip=settings.clip,
        scale=float(2**settings.scale_bits),
    )


def aggregate_securely(
    grid: Grid,
    nodes: list[int],
    content: RecordDict,
    round_number: int,
    settings: FederationSettings,
    dimension: int,
) -> RoundAggregate:
    client_of = {node: index for index, node in enumerate(sorted(nodes), start=1)}
    node_of = {index: node for node, index in client_of.items()}
    server = SecAggServer(secagg_config(settings, len(nodes)), dimension, round_number)
    transcript = Transcript()
    stage_handlers = {
        "advertise_keys": server.advertise_keys,
        "share_keys": server.share_keys,
        "masked_input": server.masked_input,
        "unmask": server.unmask,
    }
    requests: Any = server.start(client_of.values())
    transport_drops: dict[int, str] = {}
    public_metrics: dict[int, dict[str, float]] = {}
    outcome: AggregateResult | None = None
    seconds: dict[str, float] = {}
    for stage in STAGE_ORDER:
        contents: dict[int, RecordDict] = {}
        for client_id, request in requests.items():
            payload = request.to_bytes()
            transcript.record(request, payload)
            record = RecordDict(
                {R.SECAGG_RECORD: ConfigRecord({R.STAGE: stage.value, R.PAYLOAD: payload})}
            )
            if stage is Stage.MASKED_INPUT:  # firms train now, then mask (clients/secagg.py)
                record[R.GLOBAL_RECORD] = content.array_records[R.GLOBAL_RECORD]
                record[R.CONFIG_RECORD] = content.config_records[R.CONFIG_RECORD]
            contents[node_of[client_id]] = record
        started = time.perf_counter()
        replies = exchange(
            grid, contents, R.SECAGG_MESSAGE_TYPE, str(round_number), settings.timeout
        )
        seconds[f"{stage.value}.exchange"] = time.perf_counter() - started
        started = time.perf_counter()
        for node, reason in replies.dropped.items():
            transport_drops.setdefault(node, f"{stage.value}: {reason}")
        responses = {}
        for node, reply in replies.replies.items():
            try:
                payload = reply.content.config_records[R.SECAGG_RECORD][R.PAYLOAD]
                response = parse_message(payload)  # type: ignore[arg-type]
            except (KeyError, TypeError, ValueError, ValidationError, ProtocolError) as error:
                transport_drops.setdefault(node, f"{stage.value}: unreadable reply ({error})")
                continue
            transcript.record(response, payload)  # type: ignore[arg-type]
            responses[client_of[node]] = response
            if stage is Stage.MASKED_INPUT and R.METRICS_RECORD in reply.content.metric_records:
                public_metrics[node] = {
                    k: float(v)  # type: ignore[arg-type]
                    for k, v in reply.content.metric_records[R.METRICS_RECORD].items()
                }
        result = stage_handlers[stage.value](responses)
        seconds[f"{stage.value}.server"] = time.perf_counter() - started
        if isinstance(result, AggregateResult):
            outcome = result
        else:
            requests = result
    assert outcome is not None  # the last stage always returns the aggregate or raises
    contributors = [node_of[c] for c in outcome.survivors]
    dropped = {
        node_of[c]: f"{record.stage.value}: {record.reason.value} {record.detail}".strip()
        for c, record in server.drops.items()
    }
    for node, reason in transport_drops.items():
        dropped[node] = reason
    return RoundAggregate(
        total=np.asarray(outcome.float_sum, dtype=np.float64),
        contributors=contributors,
        dropped=dropped,
        public_metrics={n: m for n, m in public_metrics.items() if n in contributors},
        transcript=[entry.model_dump(mode="json") for entry in transcript.entries],
        info={
            "secagg": {
                "threshold": server.threshold,
                "masks_expanded": server.masks_expanded,
                "seconds": seconds,
            }
        },
    )
