"""Wire format: every message round-trips, the masked vector travels raw, junk is refused."""

from __future__ import annotations

import json
import struct
from typing import TYPE_CHECKING

import numpy as np
import pytest

from protocol import (
    MESSAGE_TYPES,
    AdvertiseKeysResponse,
    MalformedMessage,
    MaskedInputResponse,
    SecAggClient,
    SecAggConfig,
    SecAggServer,
    UnmaskResponse,
    parse_message,
    run_round,
)

if TYPE_CHECKING:
    from conftest import ManualRound


def test_every_message_of_a_real_round_round_trips(manual_round: type[ManualRound]) -> None:
    # Prepare
    round_ = manual_round(num_clients=3, config=SecAggConfig(num_clients=3, mode="malicious"))
    round_.play_all()
    messages = [m for by_stage in round_.requests.values() for m in by_stage.values()]
    messages += [m for by_stage in round_.responses.values() for m in by_stage.values()]
    # Execute
    decoded = [type(m).from_bytes(m.to_bytes()) for m in messages]
    # Assert
    assert {type(m) for m in messages} == set(MESSAGE_TYPES)
    assert decoded == messages
    assert [parse_message(m.to_bytes()) for m in messages] == messages


def test_masked_vector_costs_four_bytes_a_word() -> None:
    # Prepare
    words = np.arange(100_000, dtype=np.uint32)
    message = MaskedInputResponse(
        round=3,
        sender=7,
        receiver=0,
        mask_peers=[],
        binding=bytes(32),
        masked_vector=words.tobytes(),
    )
    # Execute
    payload = message.to_bytes()
    decoded = MaskedInputResponse.from_bytes(payload)
    # Assert
    assert 400_000 < len(payload) < 400_200
    np.testing.assert_array_equal(decoded.vector(), words)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x05\x00\x00\x00{}",
        b"\x02\x00\x00\x00{}",
        b"\x02\x00\x00\x00[]",
        b"\x0b\x00\x00\x00not json!!",
        b'\x1a\x00\x00\x00{"kind": "no_such_message"}',
    ],
)
def test_junk_bytes_raise_malformed_message(payload: bytes) -> None:
    # Execute / Assert
    with pytest.raises(MalformedMessage):
        parse_message(payload)


def test_trailing_bytes_after_a_json_only_message_are_refused() -> None:
    # Prepare
    message = UnmaskResponse(round=0, sender=1, receiver=0, shares=[])
    # Execute / Assert
    with pytest.raises(MalformedMessage, match="unexpected bytes"):
        parse_message(message.to_bytes() + b"\x00")


def test_from_bytes_refuses_another_message_type() -> None:
    # Prepare
    payload = UnmaskResponse(round=0, sender=1, receiver=0, shares=[]).to_bytes()
    # Execute / Assert
    with pytest.raises(MalformedMessage, match="expected AdvertiseKeysResponse"):
        AdvertiseKeysResponse.from_bytes(payload)


def test_short_public_key_is_refused_at_parse_time() -> None:
    # Prepare
    good = AdvertiseKeysResponse(
        round=0, sender=1, receiver=0, encryption_public_key=b"a" * 32, masking_public_key=b"b" * 32
    )
    payload = good.to_bytes().replace(b'"YWFh', b'"YWF', 1)
    # Execute / Assert
    with pytest.raises(MalformedMessage):
        parse_message(payload)


def test_masked_vector_with_a_partial_word_is_refused() -> None:
    # Prepare
    message = MaskedInputResponse(
        round=0, sender=1, receiver=0, mask_peers=[], binding=bytes(32), masked_vector=b"\x00" * 5
    )
    # Execute / Assert
    with pytest.raises(MalformedMessage, match="whole uint32 words"):
        message.vector()


@pytest.mark.parametrize("message_type", MESSAGE_TYPES)
def test_every_field_is_documented_in_the_schema(message_type: type) -> None:
    # Execute
    schema = message_type.model_json_schema()
    # Assert
    assert schema["properties"]
    for name, field in schema["properties"].items():
        assert field.get("description"), f"{message_type.__name__}.{name} has no description"


def test_a_parsed_message_keeps_its_bytes_and_an_edited_copy_does_not() -> None:
    # Prepare
    original = UnmaskResponse(round=2, sender=1, receiver=0, shares=[])
    payload = original.to_bytes()
    parsed = parse_message(payload)
    # Execute
    edited = parsed.model_copy(update={"round": 3})
    # Assert
    assert parsed.to_bytes() is not None and parsed.to_bytes() == payload
    assert parse_message(edited.to_bytes()).round == 3


def _advertise_request_bytes(round_number: int, **config: object) -> bytes:
    """A well-formed advertise-keys request, with the fields given written straight into the JSON
    (as a faulty or hostile sender could), bypassing the models' validation."""
    header = {
        "version": 1,
        "round": round_number,
        "sender": 0,
        "receiver": 1,
        "kind": "advertise_keys_request",
        "config": {"version": 1, "num_clients": 3, **config},
        "dimension": 4,
    }
    text = json.dumps(header).encode()
    return struct.pack("<I", len(text)) + text


def test_a_config_overflowing_clip_times_scale_is_a_malformed_message() -> None:
    # Prepare
    payload = _advertise_request_bytes(1, clip=1e200, scale=1e200)
    # Execute / Assert: it used to raise OverflowError (issue 15, defect 5)
    with pytest.raises(MalformedMessage, match=r"clip \* scale"):
        parse_message(payload)


@pytest.mark.parametrize("round_number", [2**64, 2**64 + 5, 10**30])
def test_a_round_number_of_64_bits_or_more_is_a_malformed_message(round_number: int) -> None:
    # Prepare
    payload = _advertise_request_bytes(round_number)
    # Execute / Assert: it used to parse, then crash with struct.error in graph.py
    with pytest.raises(MalformedMessage, match="round"):
        parse_message(payload)


def test_the_largest_round_number_still_runs_a_round() -> None:
    # Prepare
    config = SecAggConfig(num_clients=3, scale=2.0**10)
    # Execute
    result = run_round(config, [np.full(2, 0.25)] * 3, round_number=2**64 - 1)
    # Assert
    assert result.exact


@pytest.mark.parametrize("round_number", [2**64, -1])
def test_server_and_client_refuse_a_round_number_outside_64_bits(round_number: int) -> None:
    # Prepare
    config = SecAggConfig(num_clients=3)
    # Execute / Assert: the server used to accept 2^64, then crash in advertise_keys
    with pytest.raises(ValueError, match="round_number"):
        SecAggServer(config, dimension=2, round_number=round_number)
    with pytest.raises(ValueError, match="round_number"):
        SecAggClient(1, config, np.zeros(2), round_number=round_number)
