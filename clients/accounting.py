"""A DP firm's own privacy ledger: what it spent, kept on its own disk and never sent.

The noise multiplier a firm calibrates and the ε it has spent after each round both depend on
its number of training rows (the sample rate is 1 / batches per epoch), so a firm that reported
them would tell the server its size. The server needs neither: the budget is the public target
ε over all rounds, which each firm's calibration guarantees (`clients/training.py`), so that is
all the server records. A firm whose node config names a `dp-ledger` directory appends one line
per round it trains in to `<dp-ledger>/<firm>.jsonl`; an experiment that plays every firm reads
the ledgers back (`read_ledgers`) to report the worst firm's ε.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote, unquote

_SUFFIX = ".jsonl"


@dataclass(frozen=True)
class LedgerEntry:
    """One round of a firm's DP-SGD, as its own accountant saw it."""

    round: int
    epsilon: float
    """ε spent over every round up to and including this one (Opacus RDP accountant)."""
    delta: float
    noise_multiplier: float


def ledger_file(directory: Path, firm: str) -> Path:
    """`<directory>/<firm>.jsonl`, the name percent-encoded so any firm name is one file."""
    return Path(directory) / (quote(firm, safe="") + _SUFFIX)


def append_entry(directory: Path, firm: str, entry: LedgerEntry) -> None:
    """Add one round to the firm's ledger (the directory is created if missing)."""
    path = ledger_file(directory, firm)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        handle.write(json.dumps(asdict(entry), sort_keys=True) + "\n")


def read_ledgers(directory: Path) -> dict[str, LedgerEntry]:
    """Each firm's latest round in `directory` (a resumed round may appear twice: the later
    line wins); {} when there is no ledger."""
    latest: dict[str, LedgerEntry] = {}
    for path in sorted(Path(directory).glob("*" + _SUFFIX)):
        firm = unquote(path.name.removesuffix(_SUFFIX))
        for line in path.read_text().splitlines():
            entry = LedgerEntry(**json.loads(line))
            if firm not in latest or entry.round >= latest[firm].round:
                latest[firm] = entry
    return latest
