"""Wire format: every message round-trips, the masked vector travels raw, junk is refused."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

from protocol import (
    MESSAGE_TYPES,
    AdvertiseKeysResponse,
    MalformedMessage,
    MaskedInputResponse,
    Stage,
    UnmaskResponse,
    parse_message,
)

if TYPE_CHECKING:
    from conftest import ManualRound


def test_every_message_of_a_real_round_round_trips(manual_round: type[ManualRound]) -> None:
    # Prepare
    round_ = manual_round(num_clients=3)
    for stage in Stage:
        round_.play(stage)
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
    message = MaskedInputResponse(round=3, sender=7, receiver=0, masked_vector=words.tobytes())
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
    message = MaskedInputResponse(round=0, sender=1, receiver=0, masked_vector=b"\x00" * 5)
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
