"""What the coordinator records and says when firms fail (docs/DEPLOY.md, "When things fail").

- `RoundAborted`: a secure round that stopped (fewer than t firms left), with who dropped at
  which stage and why, and the messages the server saw before it stopped;
- transcript events: one `drop` line per dropped firm and one `abort` line per aborted round,
  written to `transcript.jsonl` beside the message lines (lines with an `event` key are events;
  the others are messages, which `protocol.Transcript` reads);
- the one line a run prints when it stops because too few firms are connected, and the line
  it prints when t drops because the group shrank.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clients import records as R
from protocol import ProtocolAbort, Stage
from server.messaging import TooFewNodes

_STAGES = {stage.value for stage in Stage} | {R.IDENTIFY}
"""Where a round can lose a firm: the protocol's stages and, in malicious mode, `identify`."""


class RoundAborted(ProtocolAbort):
    """A `ProtocolAbort` of the current round, with the round's account so far."""

    def __init__(
        self,
        abort: ProtocolAbort,
        dropped: dict[int, str],
        transcript: list[dict[str, Any]],
    ) -> None:
        super().__init__(abort.stage, abort.reason, abort.view)
        self.dropped = dropped
        """Node id -> `stage: why`, for every firm the round lost before it stopped."""
        self.transcript = transcript
        """The round's message entries up to the abort (transcript.jsonl fields)."""

    def __reduce__(self) -> tuple[Any, ...]:
        abort = ProtocolAbort(self.stage, self.reason, self.view)
        return (type(self), (abort, self.dropped, self.transcript))


def split_reason(reason: str) -> tuple[str, str]:
    """`masked_input: no reply within 60 s` -> (`masked_input`, `no reply within 60 s`); a
    reason without a protocol stage in front (plain rounds, evaluation) keeps an empty stage."""
    stage, separator, why = reason.partition(": ")
    return (stage, why) if separator and stage in _STAGES else ("", reason)


def drop_events(round_number: int, dropped: dict[int, str]) -> list[dict[str, Any]]:
    """One transcript event per dropped firm: who, at which stage, why."""
    events = []
    for node, reason in sorted(dropped.items()):
        stage, why = split_reason(reason)
        events.append(
            {"round": round_number, "event": "drop", "stage": stage, "node": node, "reason": why}
        )
    return events


def abort_event(round_number: int, abort: ProtocolAbort) -> dict[str, Any]:
    return {
        "round": round_number,
        "event": "abort",
        "stage": abort.stage.value,
        "reason": abort.reason,
    }


def stopped_line(completed: int, rounds: int, shortage: TooFewNodes, run_dir: Path | None) -> str:
    """One line: what happened, what was kept, how to resume."""
    kept = (
        f"checkpoint and results so far are in {run_dir}"
        if run_dir is not None and completed
        else "nothing to keep"
    )
    return (
        f"stopped after round {completed} of {rounds}: only {shortage.connected} firm(s) "
        f"connected for {shortage.waited:g} s, fewer than min-clients = {shortage.minimum}; "
        f"{kept}. Bring the missing SuperNodes back, then submit the same run config with "
        "resume=true."
    )


def threshold_lowered_line(history: list[dict[str, Any]]) -> str | None:
    """When the last secure round ran with a lower t than the one before it, say so."""
    secure = [r for r in history if "secagg" in r and "threshold" in r["secagg"]]
    if len(secure) < 2:
        return None
    before, now = secure[-2], secure[-1]
    if now is not history[-1] or now["secagg"]["threshold"] >= before["secagg"]["threshold"]:
        return None
    return (
        f"round {now['round']}: t lowered from {before['secagg']['threshold']} to "
        f"{now['secagg']['threshold']}: the group shrank from {before['invited']} to "
        f"{now['invited']} firms (threshold = 0 derives t from the group; set threshold to fix "
        "the lowest t)"
    )
