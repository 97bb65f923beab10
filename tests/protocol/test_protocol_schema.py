"""JSON Schema export: one self-describing schema per wire model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from protocol import MESSAGE_TYPES, SecAggConfig, run_round
from protocol.schema import SCHEMA_MODELS, export_schemas


def test_export_writes_a_parsable_schema_per_model(tmp_path: Path) -> None:
    # Execute
    written = export_schemas(tmp_path / "schemas")
    # Assert
    assert len(written) == len(SCHEMA_MODELS)
    for path in written:
        schema = json.loads(path.read_text())
        assert schema["$id"].endswith(path.name)
        assert schema["type"] == "object"
    names = {path.name.removesuffix(".schema.json") for path in written}
    assert {message.__name__ for message in MESSAGE_TYPES} <= names


def test_message_schemas_carry_version_and_kind(tmp_path: Path) -> None:
    # Prepare
    export_schemas(tmp_path)
    # Execute
    schema = json.loads((tmp_path / "UnmaskResponse.schema.json").read_text())
    # Assert
    assert schema["properties"]["version"]["const"] == 1
    assert schema["properties"]["kind"]["const"] == "unmask_response"
    assert "discriminator" in json.dumps(schema)  # the either/or share is a tagged union


def test_transcript_byte_totals_agree_in_both_directions() -> None:
    # Prepare
    result = run_round(SecAggConfig(num_clients=4), [np.ones(5)] * 4)
    transcript = result.transcript
    parties = {e.sender for e in transcript.entries} | {e.receiver for e in transcript.entries}
    # Execute
    sent = sum(transcript.bytes_sent_by(party) for party in parties)
    received = sum(transcript.bytes_received_by(party) for party in parties)
    # Assert
    assert sent == received == sum(e.bytes for e in transcript.entries)
    assert transcript.bytes_received_by(0) == sum(
        transcript.bytes_sent_by(client) for client in range(1, 5)
    )
