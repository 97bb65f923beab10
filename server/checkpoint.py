"""Round checkpoints: a killed run resumes after its last completed round, losing none.

One `.npz` per completed round (global weights, optimiser state) plus a JSON sidecar (round,
history, the public DP budget). Each file is written to a temporary name and renamed, so a crash
mid-write leaves the previous checkpoint intact; the JSON is written last and marks the round
as complete.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CHECKPOINT_VERSION = 1


@dataclass
class Checkpoint:
    round_number: int
    weights: np.ndarray
    optimiser_state: dict[str, np.ndarray] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    accountant: dict[str, Any] = field(default_factory=dict)
    """The run's public DP budget (`server.rounds.dp_budget`): no firm's own accounting."""
    settings: dict[str, Any] = field(default_factory=dict)


def _atomic_write(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def save_checkpoint(directory: Path, checkpoint: Checkpoint) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stem = directory / f"round-{checkpoint.round_number:05d}"
    arrays = {
        "weights": checkpoint.weights,
        **{f"opt.{k}": v for k, v in checkpoint.optimiser_state.items()},
    }
    npz = stem.with_suffix(".npz")
    temporary = npz.with_name(npz.name + ".tmp.npz")
    # mypy matches the unpacked str keys against savez's `allow_pickle: bool` parameter too
    np.savez(temporary, **arrays)  # type: ignore[arg-type]
    os.replace(temporary, npz)
    sidecar = {
        "version": CHECKPOINT_VERSION,
        "round": checkpoint.round_number,
        "history": checkpoint.history,
        "accountant": checkpoint.accountant,
        "settings": checkpoint.settings,
    }
    _atomic_write(stem.with_suffix(".json"), json.dumps(sidecar, indent=1, sort_keys=True).encode())
    return stem.with_suffix(".json")


def latest_checkpoint(directory: Path) -> Checkpoint | None:
    """The last round whose JSON sidecar exists (a round is complete only once it is written)."""
    directory = Path(directory)
    sidecars = sorted(directory.glob("round-*.json")) if directory.is_dir() else []
    if not sidecars:
        return None
    sidecar = json.loads(sidecars[-1].read_text())
    if sidecar.get("version") != CHECKPOINT_VERSION:
        raise ValueError(
            f"checkpoint {sidecars[-1]} has version {sidecar.get('version')}, "
            f"expected {CHECKPOINT_VERSION}"
        )
    with np.load(sidecars[-1].with_suffix(".npz")) as arrays:
        weights = arrays["weights"].copy()
        optimiser_state = {
            k.removeprefix("opt."): arrays[k].copy() for k in arrays.files if k.startswith("opt.")
        }
    return Checkpoint(
        round_number=int(sidecar["round"]),
        weights=weights,
        optimiser_state=optimiser_state,
        history=list(sidecar["history"]),
        accountant=dict(sidecar["accountant"]),
        settings=dict(sidecar["settings"]),
    )


def clear_checkpoints(directory: Path) -> int:
    """Remove every round checkpoint in `directory` (a new run must never leave one that a later
    resume would continue); returns the last round that was there, 0 if none."""
    directory = Path(directory)
    if not directory.is_dir():
        return 0
    rounds = [int(p.stem.removeprefix("round-")) for p in directory.glob("round-*.json")]
    for path in directory.glob("round-*"):  # sidecars, arrays and half-written temporaries
        path.unlink()
    return max(rounds, default=0)
