"""The remedies a `[data]` section declares, applied to a table that passed its checks
(`experiments/world/checks.py`): imputation, dropped rows, bins for a numeric sensitive
attribute. Each is recorded, so results.json says what was done to the data.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from experiments.world.checks import TableSpec, default_features, is_numeric


def _bin_labels(edges: Sequence[float]) -> list[str]:
    cut = [f"{e:g}" for e in edges]
    middle = [f"{low} to <{high}" for low, high in itertools.pairwise(cut)]
    return [f"<{cut[0]}", *middle, f">={cut[-1]}"]


def prepare_table(frame: pd.DataFrame, spec: TableSpec) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The checked table with the declared remedies applied, and a record of what they did.

    Missing sensitive values stay missing. `median` fills numeric features with the column's
    median and leaves text to the encoder's "missing" level; `mode` fills every feature with its
    most frequent value; `drop-rows` drops rows missing the label, the partition or a feature.
    """
    features = (
        list(spec.features)
        if spec.features is not None
        else default_features(list(frame.columns), spec)
    )
    notes: dict[str, Any] = {"rows_read": len(frame)}
    frame = frame.copy()
    missing = {c: int(frame[c].isna().sum()) for c in features if frame[c].isna().any()}
    if spec.impute == "drop-rows":
        needed = [c for c in (spec.label, spec.partition) if c is not None]
        keep = frame[[*needed, *features]].notna().all(axis=1)
        frame = frame[keep].reset_index(drop=True)
        notes["rows_dropped"] = int((~keep).sum())
    elif spec.impute is not None:
        for column in missing:
            values = frame[column]
            if spec.impute == "median" and not is_numeric(values):
                continue  # text keeps an explicit "missing" level
            fill = values.median() if spec.impute == "median" else values.mode().iloc[0]
            filled = values.fillna(fill)
            whole = is_numeric(filled) and np.all(np.mod(filled.to_numpy(), 1.0) == 0)
            frame[column] = filled.astype(np.int64) if whole else filled
    if spec.impute is not None and missing:
        notes["impute"] = {"method": spec.impute, "missing_per_column": missing}
    for column, edges in spec.bins.items():
        values = frame[column]
        bounds = [-np.inf, *edges, np.inf]
        binned = pd.cut(values, bounds, right=False, labels=_bin_labels(edges))
        frame[column] = binned.astype(object).where(values.notna(), None)
    if spec.bins:
        notes["bins"] = {c: list(map(float, e)) for c, e in spec.bins.items()}
    if spec.exclude:
        notes["excluded"] = list(spec.exclude)
    notes["rows_used"] = len(frame)
    return frame, notes
