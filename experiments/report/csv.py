"""results.csv: every summarised metric of results.json in long form, for spreadsheets or pandas."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _leaves(
    tree: dict[str, Any], path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    """Every summarised metric (a dict with "per_seed") under `tree`, with its key path."""
    for key, value in tree.items():
        if isinstance(value, dict) and "per_seed" in value:
            yield (*path, key), value
        elif isinstance(value, dict):
            yield from _leaves(value, (*path, key))


def write_csv(results: dict[str, Any], path: Path) -> None:
    """Long form: one row per (scope, metric, seed, value); scope is a regime or a section."""
    seeds = results["seeds"]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["scope", "metric", "seed", "value"])
        scopes = dict(results["regimes"])
        for section in ("exposure", "server_view", "inference", "data"):
            if section in results:
                scopes[section] = results[section]
        for scope, tree in scopes.items():
            for metric_path, summary in _leaves(tree):
                for seed, value in zip(seeds, summary["per_seed"], strict=True):
                    writer.writerow(
                        [scope, ".".join(metric_path), seed, "" if value is None else repr(value)]
                    )
