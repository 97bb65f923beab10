"""What a run's results record about its data: where the table came from, how it was split,
each firm's size and default rate, and every firm scored without a model.

A result on a table of one's own is only as good as the reader's view of that table: a 6-row
firm's per-firm AUC of 1.000 on 2 held-out rows is noise, and a firm scored by its base rate
carries no model at all. So results.json keeps this beside the figures (`data`, `fallbacks`)
and the report shows it first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from experiments.regimes.standalone import Holdout, RegimeOutput
from experiments.world.tables import ID, LABEL, World

PROVENANCE_KEYS = (
    "source",
    "file_name",
    "path",
    "sha256",
    "label",
    "sensitive",
    "quasi_identifiers",
    "features",
    "excluded",
    "rows_read",
    "rows_used",
    "rows_dropped",
    "impute",
    "bins",
    "partition",
)


def describe_data(world: World) -> dict[str, Any]:
    """The table's provenance and split, from the world's manifest; the same for every seed
    except a Dirichlet split's draw, which `firm_figures` records per seed."""
    meta = world.meta
    record = {key: meta[key] for key in PROVENANCE_KEYS if key in meta}
    path = meta.get("path")
    if path and "sha256" not in record and Path(path).is_file():
        from experiments.world.datasets import file_digest

        record["sha256"] = file_digest(Path(path))
        record["file_name"] = Path(path).name
    record["rows"] = len(world.truth)
    return record


def firm_figures(world: World, holdout: Holdout) -> dict[str, dict[str, float]]:
    """Per firm for one seed: rows, default rate, held-out rows and held-out defaults (the n
    behind its per-firm figures)."""
    figures = {}
    for firm, table in world.firms.items():
        labels = table[LABEL].to_numpy()
        test = holdout.is_test(table[ID].to_numpy())
        figures[firm] = {
            "rows": float(len(table)),
            "default_rate": float(labels.mean()) if len(labels) else float("nan"),
            "heldout": float(test.sum()),
            "heldout_defaults": float(labels[test].sum()),
        }
    return figures


def fallbacks(output: RegimeOutput, seed: int) -> list[dict[str, Any]]:
    """Firms the regime scored by their base rate because their training rows hold one class."""
    firms = output.info.get("base_rate_only", [])
    assert isinstance(firms, list)
    return [
        {
            "regime": output.name,
            "seed": seed,
            "firm": firm,
            "kind": "base-rate",
            "reason": "its training rows hold one class: nothing to learn a score from",
        }
        for firm in firms
    ]
