"""The shape every data source takes: a `World` of firm tables, government records and the truth.

The synthetic generator and the real-data adapters both return a `World`, so every regime and
every metric runs unchanged on either. A firm table holds only that firm's customers; `truth` is
read by the harness alone (to score attacks), never by a client.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from clients.data import (
    FEATURE_ROLES,
    ID,
    LABEL,
    ColumnInfo,
    Kind,
    Role,
    load_firm_table,
    read_manifest,
)

__all__ = [
    "FEATURE_ROLES",
    "ID",
    "LABEL",
    "ColumnInfo",
    "Kind",
    "Role",
    "World",
    "load_firm_table",
    "load_world",
    "read_manifest",
    "write_world",
]


@dataclass
class World:
    """Firm tables, government records and the ground truth, plus the manifest that describes them.

    truth: one row per citizen (ID, quasi-identifiers, sensitive attributes, latent traits, LABEL).
    government: one row per citizen (ID + records only the national database holds); may have
        no columns but ID for real datasets.
    firms: firm name -> that firm's customers (ID, its columns, LABEL).
    columns: every column of every table with its role.
    meta: source, seed, generator version, coverage, overlap, anything else worth recording.
    """

    truth: pd.DataFrame
    government: pd.DataFrame
    firms: dict[str, pd.DataFrame]
    columns: list[ColumnInfo]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def firm_names(self) -> list[str]:
        return list(self.firms)

    def columns_of(
        self, table: str, roles: frozenset[str] | set[str] | None = None
    ) -> list[ColumnInfo]:
        """Columns of `table` (a firm name, "government" or "truth") in table order."""
        return [c for c in self.columns if c.table == table and (roles is None or c.role in roles)]

    def feature_columns(self, table: str) -> list[ColumnInfo]:
        """What a model trained at `table` may use: common, domain and sensitive-proxy columns."""
        return self.columns_of(table, FEATURE_ROLES)

    def manifest(self) -> dict[str, Any]:
        return {
            **self.meta,
            "firms": self.firm_names,
            "rows": {
                "truth": len(self.truth),
                "government": len(self.government),
                **{f: len(t) for f, t in self.firms.items()},
            },
            "columns": [c.to_json() for c in self.columns],
        }


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    """Write without pandas metadata or timestamps, so the same frame gives the same bytes."""
    table = pa.Table.from_pandas(df, preserve_index=False).replace_schema_metadata(None)
    pq.write_table(table, path, compression="zstd", write_statistics=False, store_schema=False)


def write_world(world: World, out: Path) -> None:
    """Write `firms/<firm>.parquet`, `government.parquet`, `truth.parquet` and `world.json`."""
    out = Path(out)
    (out / "firms").mkdir(parents=True, exist_ok=True)
    for firm, table in world.firms.items():
        _write_parquet(table, out / "firms" / f"{firm}.parquet")
    _write_parquet(world.government, out / "government.parquet")
    _write_parquet(world.truth, out / "truth.parquet")
    (out / "world.json").write_text(json.dumps(world.manifest(), indent=2, sort_keys=True) + "\n")


def load_world(world_dir: Path) -> World:
    """What the harness reads: everything, including the truth."""
    world_dir = Path(world_dir)
    manifest = read_manifest(world_dir)
    columns = [ColumnInfo.from_json(c) for c in manifest["columns"]]
    meta = {k: v for k, v in manifest.items() if k not in {"firms", "rows", "columns"}}
    return World(
        truth=pd.read_parquet(world_dir / "truth.parquet"),
        government=pd.read_parquet(world_dir / "government.parquet"),
        firms={f: load_firm_table(world_dir, f) for f in manifest["firms"]},
        columns=columns,
        meta=meta,
    )
