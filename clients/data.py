"""The data contract a pilot firm relies on: the column roles, the manifest, its own table.

A client reads its own firm's table and the public manifest (column roles and schema-declared
ranges), nothing else; this module is all it needs for that, so `clients/` never imports the
experiment harness.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

ID = "national_id"
"""Real-name registration: the same citizen id at every firm and in the national database."""
LABEL = "default_12m"
"""The 12-month default outcome (0/1), per citizen."""

Role = Literal[
    "id",
    "common",
    "domain",
    "sensitive-proxy",
    "quasi-identifier",
    "sensitive",
    "latent",
    "government",
    "label",
]
Kind = Literal["continuous", "count", "binary", "categorical"]

FEATURE_ROLES: frozenset[str] = frozenset({"common", "domain", "sensitive-proxy"})
"""Roles a firm's score model may train on."""


@dataclass(frozen=True)
class ColumnInfo:
    """One column of one table, as declared in the manifest.

    `low`/`high` are schema-declared ranges: public knowledge, so every party can scale a
    feature the same way without sharing statistics.
    """

    name: str
    table: str
    role: Role
    kind: Kind
    description: str
    low: float | None = None
    high: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "table": self.table,
            "role": self.role,
            "kind": self.kind,
            "low": self.low,
            "high": self.high,
            "description": self.description,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ColumnInfo:
        return cls(
            name=d["name"],
            table=d["table"],
            role=d["role"],
            kind=d["kind"],
            description=d["description"],
            low=d.get("low"),
            high=d.get("high"),
        )


def read_manifest(world_dir: Path) -> dict[str, Any]:
    path = Path(world_dir) / "world.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"no world manifest at {path}; create one with `fedscore world --out {world_dir}`"
        )
    manifest: dict[str, Any] = json.loads(path.read_text())
    return manifest


def load_firm_table(world_dir: Path, firm: str) -> pd.DataFrame:
    """What a client reads: its own firm's table and nothing else."""
    path = Path(world_dir) / "firms" / f"{firm}.parquet"
    if not path.is_file():
        known = sorted(p.stem for p in (Path(world_dir) / "firms").glob("*.parquet"))
        raise FileNotFoundError(f"firm {firm!r} has no table at {path}; known firms: {known}")
    return pd.read_parquet(path)


def firm_columns(manifest: dict[str, Any], firm: str) -> list[ColumnInfo]:
    """The feature columns a model at `firm` may use, from the public manifest."""
    if firm not in manifest["firms"]:
        raise KeyError(f"firm {firm!r} is not in the manifest; known firms: {manifest['firms']}")
    return [
        ColumnInfo.from_json(c)
        for c in manifest["columns"]
        if c["table"] == firm and c["role"] in FEATURE_ROLES
    ]
