"""Fuzzing the two decoders a node runs on bytes it did not write: only protocol errors come out.

`parse_message` decodes whatever the network delivers; `ClientSessions.from_bytes` decodes the
state a node stored between messages. Both must answer any input with a message/state or a
`ProtocolError` (MalformedMessage), never ValueError, OverflowError, struct.error or a crash,
so a transport can treat every failure the same way: drop the sender, forget the round.
"""

from __future__ import annotations

import contextlib
import json
import struct
from functools import cache
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import (
    MESSAGE_TYPES,
    ClientSessions,
    IdentityManifest,
    Message,
    Mode,
    ProtocolError,
    SecAggClient,
    SecAggConfig,
    SecAggServer,
    Stage,
    generate_identity,
    parse_message,
    stage_order,
)
from protocol.state import SessionsState

_FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


IDENTITIES = {c: generate_identity() for c in (1, 2, 3, 4)}
MANIFEST = IdentityManifest.of("fuzz", IDENTITIES)


@cache
def _real_round(mode: Mode) -> tuple[list[bytes], list[bytes]]:
    """Wire bytes of one message of each type from a real round of `mode`, and the stored
    sessions of one client after each stage (built once: hypothesis reuses them)."""
    config = SecAggConfig(num_clients=4, scale=2.0**10, mode=mode)
    rng = np.random.default_rng(0)
    malicious = mode == "malicious"
    clients = {
        c: SecAggClient(
            c,
            config,
            rng.uniform(-1, 1, 3),
            round_number=5,
            identity=IDENTITIES[c] if malicious else None,
            manifest=MANIFEST if malicious else None,
        )
        for c in (1, 2, 3, 4)
    }
    server = SecAggServer(config, 3, round_number=5, manifest=MANIFEST if malicious else None)
    handlers = {
        Stage.ADVERTISE_KEYS: server.advertise_keys,
        Stage.SHARE_KEYS: server.share_keys,
        Stage.MASKED_INPUT: server.masked_input,
        Stage.CONSISTENCY_CHECK: server.consistency_check,
        Stage.UNMASK: server.unmask,
    }
    messages: list[Message] = []
    states: list[bytes] = []
    requests: Any = server.start(sorted(clients))
    for stage in stage_order(mode):
        responses = {c: clients[c].handle(request) for c, request in requests.items()}
        messages += [*requests.values(), *responses.values()]
        if clients[1].next_stage is not None:
            states.append(
                SessionsState(rounds={5: clients[1].to_state()}).model_dump_json().encode()
            )
        requests = handlers[stage](responses)
    one_per_type = {type(m): m.to_bytes() for m in messages}
    return list(one_per_type.values()), states


def _corpus() -> tuple[list[bytes], list[bytes]]:
    """Messages of both modes (signed and unsigned keys, both unmask forms) and stored states."""
    semi_messages, semi_states = _real_round("semi-honest")
    messages, states = _real_round("malicious")
    return semi_messages + messages, semi_states + states


def _split(data: bytes) -> tuple[Any, bytes]:
    (length,) = struct.unpack_from("<I", data)
    return json.loads(data[4 : 4 + length]), data[4 + length :]


def _join(header: Any, tail: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<I", len(text)) + text + tail


_EDGES = st.sampled_from(
    [1e200, 1.7e308, 1e-320, -1e308, 2**64, 2**64 - 1, 2**32, 2**31, -1, 0, "", "AAAA"]
)
"""Values at the edges of what the fields hold (floats that overflow a product, integers one
past 64 or 32 bits): drawn half the time, since random JSON rarely lands on them."""
_JSON = _EDGES | st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside a JSON document."""
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


def _replace(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copy = dict(document) if isinstance(document, dict) else list(document)
    copy[path[0]] = _replace(document[path[0]], path[1:], value)
    return copy


@st.composite
def _byte_mutations(draw: st.DrawFn, originals: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(originals)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"]))
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[position] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[position:]
        elif kind == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif data:
            del data[position : position + draw(st.integers(1, 8))]
    return bytes(data)


@st.composite
def _json_mutations(draw: st.DrawFn, originals: list[bytes], framed: bool) -> bytes:
    """A valid document with one to three values (anywhere inside it) replaced by arbitrary
    JSON."""
    original = draw(st.sampled_from(originals))
    document, tail = _split(original) if framed else (json.loads(original), b"")
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(document)))
        document = _replace(document, path, draw(_JSON))
    return _join(document, tail) if framed else json.dumps(document).encode()


def _parse_or_protocol_error(data: bytes) -> None:
    """Decode; a ProtocolError is a pass, any other exception fails the test."""
    with contextlib.suppress(ProtocolError):
        parse_message(data)


def _load_or_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        ClientSessions.from_bytes(data)
    with contextlib.suppress(ProtocolError):
        ClientSessions.from_bytes(data, IDENTITIES[1], MANIFEST)


@_FUZZ
@given(data=st.binary(max_size=300))
def test_parse_message_answers_arbitrary_bytes_with_a_protocol_error(data: bytes) -> None:
    # Execute / Assert: anything but a ProtocolError fails the test
    _parse_or_protocol_error(data)


@_FUZZ
@given(data=st.binary(max_size=300))
def test_parse_message_answers_a_framed_arbitrary_header_with_a_protocol_error(
    data: bytes,
) -> None:
    # Execute / Assert
    _parse_or_protocol_error(struct.pack("<I", len(data)) + data)


@_FUZZ
@given(data=st.data())
def test_parse_message_answers_mutated_valid_bytes_with_a_protocol_error(
    data: st.DataObject,
) -> None:
    # Prepare
    messages, _ = _corpus()
    # Execute / Assert
    _parse_or_protocol_error(data.draw(_byte_mutations(messages)))


@_FUZZ
@given(data=st.data())
def test_parse_message_answers_mutated_valid_headers_with_a_protocol_error(
    data: st.DataObject,
) -> None:
    # Prepare
    messages, _ = _corpus()
    # Execute / Assert
    _parse_or_protocol_error(data.draw(_json_mutations(messages, framed=True)))


@_FUZZ
@given(data=st.binary(max_size=300))
def test_sessions_from_bytes_answers_arbitrary_bytes_with_a_protocol_error(data: bytes) -> None:
    # Execute / Assert
    _load_or_protocol_error(data)


@_FUZZ
@given(data=st.data())
def test_sessions_from_bytes_answers_mutated_valid_state_with_a_protocol_error(
    data: st.DataObject,
) -> None:
    # Prepare
    _, states = _corpus()
    # Execute / Assert
    _load_or_protocol_error(data.draw(_byte_mutations(states)))
    _load_or_protocol_error(data.draw(_json_mutations(states, framed=False)))


@pytest.mark.parametrize("mode", ["semi-honest", "malicious"])
def test_the_fuzzed_corpus_is_a_real_round(mode: Mode) -> None:
    # Prepare
    messages, states = _real_round(mode)
    identity = (IDENTITIES[1], MANIFEST) if mode == "malicious" else (None, None)
    # Execute
    parsed = [parse_message(m) for m in messages]
    loaded = [ClientSessions.from_bytes(s, *identity) for s in states]
    # Assert: every stage's messages, and a stored state after every stage but the last
    order = stage_order(mode)
    assert {m.stage for m in parsed} == set(order)
    assert {type(m) for m in parsed} >= {t for t in MESSAGE_TYPES if t.stage in order}
    assert [s.session(5).next_stage for s in loaded] == list(order[1:])  # type: ignore[union-attr]
