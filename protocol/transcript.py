"""What crossed the wire, and what the server saw: both as plain data a reviewer can export.

`Transcript` holds one entry per message (round, stage, sender, receiver, type, size, SHA-256
of the exact bytes) and round-trips through JSONL. `ServerView` is the server's own account of a
round: per stage, what it received and from whom, whom it dropped and why, and how it ended.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from protocol.config import SecAggConfig
from protocol.messages import SERVER_ID, Message
from protocol.stages import DropReason, Stage


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class TranscriptEntry(_Record):
    """One message as it crossed the wire."""

    round: int
    """Round number."""
    stage: Stage
    """Stage the message belongs to."""
    sender: int
    """Sending party (0 is the server)."""
    receiver: int
    """Receiving party (0 is the server)."""
    message_type: str
    """Name of the message class."""
    bytes: int
    """Size of the wire encoding."""
    sha256: str
    """Hex SHA-256 of the wire encoding."""


class Transcript:
    """Every message of a round, in the order it was sent."""

    def __init__(self, entries: Iterable[TranscriptEntry] = ()) -> None:
        self.entries: list[TranscriptEntry] = list(entries)

    def record(self, message: Message, payload: bytes) -> TranscriptEntry:
        """Log one message given its exact wire bytes."""
        entry = TranscriptEntry(
            round=message.round,
            stage=message.stage,
            sender=message.sender,
            receiver=message.receiver,
            message_type=type(message).__name__,
            bytes=len(payload),
            sha256=message.wire_sha256()
            if payload is message.to_bytes()
            else hashlib.sha256(payload).hexdigest(),
        )
        self.entries.append(entry)
        return entry

    def to_jsonl(self, path: Path | None = None) -> str:
        """One JSON object per line; written to `path` when given."""
        text = "".join(entry.model_dump_json() + "\n" for entry in self.entries)
        if path is not None:
            path.write_text(text)
        return text

    @classmethod
    def from_jsonl(cls, text: str) -> Transcript:
        """Parse `to_jsonl` output (blank lines ignored)."""
        return cls(
            TranscriptEntry.model_validate_json(line) for line in text.splitlines() if line.strip()
        )

    def bytes_sent_by(self, party: int) -> int:
        return sum(entry.bytes for entry in self.entries if entry.sender == party)

    def bytes_received_by(self, party: int) -> int:
        return sum(entry.bytes for entry in self.entries if entry.receiver == party)

    def received_by_server(self) -> dict[Stage, list[TranscriptEntry]]:
        """Messages the server received, grouped by stage in protocol order."""
        grouped: dict[Stage, list[TranscriptEntry]] = {}
        for entry in sorted(
            (e for e in self.entries if e.receiver == SERVER_ID), key=lambda e: e.stage.position
        ):
            grouped.setdefault(entry.stage, []).append(entry)
        return grouped


class ReceivedMessage(_Record):
    """One response the server received."""

    sender: int
    """Client the transport delivered it from."""
    message_type: str
    """Name of the message class."""
    bytes: int
    """Size of its wire encoding."""
    sha256: str
    """Hex SHA-256 of its wire encoding."""
    accepted: bool
    """False when the server rejected it (the sender is then dropped)."""


class DropRecord(_Record):
    """Why and when the server stopped counting a client."""

    client_id: int
    """The client dropped."""
    stage: Stage
    """Stage at which it was dropped."""
    reason: DropReason
    """Why."""
    detail: str = ""
    """The error message, when a named error caused the drop."""


class StageView(_Record):
    """Everything the server learnt in one stage."""

    stage: Stage
    """The stage."""
    received: list[ReceivedMessage] = Field(default_factory=list)
    """Responses received, in arrival order."""
    accepted: list[int] = Field(default_factory=list)
    """Clients whose response was accepted (the stage's survivor set)."""
    dropped: list[DropRecord] = Field(default_factory=list)
    """Clients dropped in this stage."""


class ServerView(_Record):
    """The server's account of a round, enough to audit what it could have learnt."""

    round: int
    """Round number."""
    config: SecAggConfig
    """Public parameters."""
    dimension: int
    """Vector length d."""
    invited: list[int]
    """Clients invited to the round."""
    stages: list[StageView]
    """One entry per stage reached."""
    outcome: str
    """'running', 'completed' or 'aborted'."""
    abort_reason: str | None = None
    """The ProtocolAbort message, when the round aborted."""
    revealed_self_mask_shares: dict[int, int] = Field(default_factory=dict)
    """Client id -> number of self-mask shares of it the server received."""
    revealed_masking_key_shares: dict[int, int] = Field(default_factory=dict)
    """Client id -> number of masking-key shares of it the server received."""
    aggregate_sha256: str | None = None
    """Hex SHA-256 of the unmasked integer sum (the only vector the server learns)."""

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2)
