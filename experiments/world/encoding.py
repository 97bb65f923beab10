"""From a source table and its declared schema to a `World`: the one code path behind every
real-data adapter (`world_from_frame`).

Label to 0/1, features encoded with schema-declared ranges, rows split into firms by a partition
column or a Dirichlet label skew (`experiments/world/partitions.py`). A real dataset has one
schema, so every feature is a "common" column, present at every firm.

Ranges are *schema-declared*: computed once from the whole public file (never per firm) and
recorded in each `ColumnInfo`, so every firm scales a column the same way without sharing any
statistic. Numeric columns get the 1st-99th percentile range (integer counts widened to whole
numbers; min-max where the percentiles coincide) and are clipped into it; heavy-tailed amounts are
replaced by `log_<name>` = ln(1 + value) first. Categorical columns become one 0/1 column per
category of a declared list (`<column>__<category>`); a value outside the list is an error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from experiments.world.partitions import (
    covariate_dirichlet_split,
    dirichlet_split,
    firms_from_partition,
    label_skew_split,
    slugify,
)
from experiments.world.tables import ID, LABEL, ColumnInfo, Kind, Role, World

ADAPTER_VERSION = 1
"""Bumped whenever an adapter would produce different tables from the same file and seed."""

RANGE_QUANTILES = (0.01, 0.99)
"""Robust declared range: outliers beyond these quantiles of the full file are clipped."""

MISSING_CATEGORY = "missing"
"""The level an absent categorical value takes when the category list is inferred from the file."""


@dataclass(frozen=True)
class Schema:
    """What a caller (or a built-in adapter) declares about a source table's columns."""

    source: str
    label: str
    positive: str | int | None
    sensitive: Sequence[str] = ()
    quasi_identifiers: Sequence[str] = ()
    features: Sequence[str] | None = None
    categories: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Declared category lists (public schema); other categorical columns take the file's levels."""
    log_columns: frozenset[str] = frozenset()
    """Heavy-tailed amounts that become `log_<name>` = ln(1 + value) before their range is set."""
    kinds: Mapping[str, Kind] = field(default_factory=dict)
    """Kind overrides for numeric columns (otherwise integer -> count, float -> continuous)."""
    descriptions: Mapping[str, str] = field(default_factory=dict)


def _require_columns(frame: pd.DataFrame, names: Sequence[str], field_name: str) -> None:
    available = list(frame.columns)
    for name in names:
        if name not in frame.columns:
            raise ValueError(
                f"{field_name}: column {name!r} is not in the table; available columns: {available}"
            )


def _binary_labels(values: pd.Series, positive: str | int | None, label: str) -> np.ndarray:
    """1 = bad/default. Without `positive` the column must already hold only 0 and 1."""
    if values.isna().any():
        raise ValueError(f"label column {label!r} has {int(values.isna().sum())} missing values")
    found = sorted(map(str, pd.unique(values)))
    if positive is None:
        if not (
            pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)
        ) or not set(pd.unique(values.astype(float))) <= {0.0, 1.0}:
            raise ValueError(
                f"label column {label!r} holds {found}; give positive=<the value meaning default> "
                "or use a 0/1 column"
            )
        return values.to_numpy(dtype=np.int8)
    numeric_match = _is_numeric(values) and not isinstance(positive, str)
    matches = values == positive if numeric_match else values.astype(str) == str(positive)
    is_positive = matches.to_numpy(dtype=bool)
    if not is_positive.any():
        raise ValueError(
            f"positive={positive!r} never occurs in label column {label!r}; values found: {found}"
        )
    return is_positive.astype(np.int8)


def _is_numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _numeric_kind(values: np.ndarray, declared: Kind | None, integer_dtype: bool) -> Kind:
    if declared is not None:
        return declared
    if set(np.unique(values)) <= {0.0, 1.0}:
        return "binary"
    return "count" if integer_dtype else "continuous"


def _declared_range(values: np.ndarray, kind: Kind) -> tuple[float, float]:
    """Robust range of the whole public column: quantiles, whole numbers for counts, never empty."""
    if kind == "binary":
        return 0.0, 1.0
    low, high = (float(q) for q in np.quantile(values, RANGE_QUANTILES))
    if kind == "count":
        low, high = math.floor(low), math.ceil(high)
    if high <= low:
        low, high = float(values.min()), float(values.max())
    if high <= low:  # a constant column: any non-empty range scales it to 0
        high = low + 1.0
    return float(low), float(high)


@dataclass(frozen=True)
class _Encoded:
    name: str
    values: np.ndarray
    kind: Kind
    low: float
    high: float
    description: str
    source_column: str


def _encode_numeric(values: pd.Series, column: str, schema: Schema) -> list[_Encoded]:
    if values.isna().any():
        raise ValueError(
            f"feature column {column!r} has {int(values.isna().sum())} missing values; "
            "fill or drop them before loading"
        )
    raw = values.to_numpy(dtype=np.float64)
    what = schema.descriptions.get(column, f"{column} from {schema.source}")
    kind: Kind
    if column in schema.log_columns:
        if (raw < 0).any():
            raise ValueError(f"log column {column!r} has negative values; ln(1 + x) needs x >= 0")
        raw = np.log1p(raw)
        name, kind, what = f"log_{column}", "continuous", f"ln(1 + {column}): {what}"
    else:
        integer = pd.api.types.is_integer_dtype(values)
        name, kind = column, _numeric_kind(raw, schema.kinds.get(column), integer)
    low, high = _declared_range(raw, kind)
    description = f"{what}; declared range [{low:g}, {high:g}] from the full public file, clipped"
    return [_Encoded(name, np.clip(raw, low, high), kind, low, high, description, column)]


def _encode_categorical(values: pd.Series, column: str, schema: Schema) -> list[_Encoded]:
    """One 0/1 column per category; the category list is declared or taken from the whole file."""
    strings = values.astype("string")
    if column in schema.categories:
        categories = [str(c) for c in schema.categories[column]]
    else:
        categories = sorted(strings.dropna().unique().tolist())
        strings = strings.fillna(MISSING_CATEGORY)
        if MISSING_CATEGORY in set(strings) and MISSING_CATEGORY not in categories:
            categories.append(MISSING_CATEGORY)
    codes = pd.Categorical(strings, categories=categories).codes
    if (codes < 0).any():
        unexpected = sorted(set(strings[codes < 0].fillna("<NA>")))
        raise ValueError(
            f"column {column!r} has values {unexpected} outside its declared categories "
            f"{categories}"
        )
    slugs = [slugify(c) for c in categories]
    if len(set(slugs)) < len(slugs) or not all(slugs):
        slugs = [str(i) for i in range(len(categories))]
    one_hot = (codes[:, None] == np.arange(len(categories))[None, :]).astype(np.int8)
    what = schema.descriptions.get(column, f"{column} from {schema.source}")
    return [
        _Encoded(
            f"{column}__{slug}",
            one_hot[:, i],
            "binary",
            0.0,
            1.0,
            f"1 if {column} is {category!r} ({what}); one-hot over the declared categories",
            column,
        )
        for i, (slug, category) in enumerate(zip(slugs, categories, strict=True))
    ]


def _encode_features(frame: pd.DataFrame, names: Sequence[str], schema: Schema) -> list[_Encoded]:
    encoded: list[_Encoded] = []
    for column in names:
        values = frame[column]
        is_number = _is_numeric(values) and column not in schema.categories
        encoder = _encode_numeric if is_number else _encode_categorical
        encoded.extend(encoder(values, column, schema))
    reserved = {ID, LABEL}
    seen: set[str] = set()
    for e in encoded:
        if e.name in reserved or e.name in seen:
            raise ValueError(
                f"feature column {e.name!r} (from {e.source_column!r}) clashes with "
                f"{'a reserved column' if e.name in reserved else 'another feature'}; rename it"
            )
        seen.add(e.name)
    return encoded


def _truth_kind(values: pd.Series) -> Kind:
    if pd.api.types.is_bool_dtype(values):
        return "binary"
    if _is_numeric(values):
        raw = values.dropna().to_numpy(dtype=np.float64)
        return _numeric_kind(raw, None, pd.api.types.is_integer_dtype(values))
    return "categorical"


def world_from_frame(
    frame: pd.DataFrame,
    schema: Schema,
    *,
    partition: str | None,
    dirichlet_alpha: float | None,
    n_firms: int,
    seed: int,
    extra_meta: Mapping[str, Any] | None = None,
    dirichlet_column: str | None = None,
    held_out: np.ndarray | None = None,
) -> World:
    """The one code path behind every adapter: validate, label, encode, split, assemble.

    A Dirichlet split is over the levels of `dirichlet_column` when one is named (no label
    involved); without one it is the label-skew split, flagged as such, and computed from the
    training rows alone when `held_out` (the rows `Holdout.draw` will hold out) is given.
    """
    if (partition is None) == (dirichlet_alpha is None):
        raise ValueError(
            "give exactly one of partition (a column naming the firms) or dirichlet_alpha "
            f"(a label-skew split); got partition={partition!r}, "
            f"dirichlet_alpha={dirichlet_alpha!r}"
        )
    _require_columns(frame, [schema.label], "label")
    _require_columns(frame, schema.sensitive, "sensitive")
    _require_columns(frame, schema.quasi_identifiers, "quasi_identifiers")
    if partition is not None:
        _require_columns(frame, [partition], "partition")
    if schema.features is not None:
        _require_columns(frame, schema.features, "features")
        feature_names = list(schema.features)
    else:
        excluded = {schema.label, partition, *schema.sensitive, *schema.quasi_identifiers}
        feature_names = [c for c in frame.columns if c not in excluded]
    if schema.label in feature_names:
        raise ValueError(f"features: the label column {schema.label!r} cannot also be a feature")
    if len(frame) == 0:
        raise ValueError(f"{schema.source}: the table has no rows")

    labels = _binary_labels(frame[schema.label], schema.positive, schema.label)
    encoded = _encode_features(frame, feature_names, schema)
    if partition is not None:
        firm_of_row, firm_names = firms_from_partition(frame[partition], partition)
        split: dict[str, Any] = {"method": "column", "column": partition}
    else:
        assert dirichlet_alpha is not None
        rng = np.random.default_rng(seed)
        firm_names = [f"firm_{i}" for i in range(n_firms)]
        split = {
            "alpha": float(dirichlet_alpha),
            "n_firms": n_firms,
            "non_empty": "an empty firm takes one random row of the largest firm",
        }
        if dirichlet_column is not None:
            if dirichlet_column not in frame.columns or dirichlet_column == schema.label:
                raise ValueError(
                    f"[data] dirichlet_column: {dirichlet_column!r} must be a column of the table"
                    f" other than the label {schema.label!r}"
                )
            firm_of_row = covariate_dirichlet_split(
                frame[dirichlet_column], n_firms, dirichlet_alpha, rng
            )
            split |= {"method": "dirichlet-covariate", "column": dirichlet_column}
            split["label_skew"] = False
        elif held_out is not None:
            firm_of_row = label_skew_split(labels, held_out, n_firms, dirichlet_alpha, rng)
            split |= {"method": "dirichlet-label-skew", "label_skew": True}
            split["from_training_rows"] = True
        else:
            firm_of_row = dirichlet_split(labels, n_firms, dirichlet_alpha, rng)
            split |= {"method": "dirichlet-label-skew", "label_skew": True}
            split["from_training_rows"] = False

    national_id = np.arange(len(frame), dtype=np.int64)
    sensitive_set = set(schema.sensitive)
    features = pd.DataFrame({e.name: e.values for e in encoded})
    firms: dict[str, pd.DataFrame] = {}
    columns: list[ColumnInfo] = []
    for index, firm in enumerate(firm_names):
        rows = firm_of_row == index
        firms[firm] = pd.concat(
            [
                pd.DataFrame({ID: national_id[rows]}),
                features.loc[rows].reset_index(drop=True),
                pd.DataFrame({LABEL: labels[rows]}),
            ],
            axis=1,
        )
        columns.append(ColumnInfo(ID, firm, "id", "categorical", "row id of the source table"))
        for e in encoded:
            role: Role = "sensitive-proxy" if e.source_column in sensitive_set else "common"
            columns.append(ColumnInfo(e.name, firm, role, e.kind, e.description, e.low, e.high))
        columns.append(
            ColumnInfo(LABEL, firm, "label", "binary", _label_description(schema), 0.0, 1.0)
        )

    truth_roles: list[tuple[str, Role]] = [
        (c, "quasi-identifier") for c in schema.quasi_identifiers
    ]
    truth_roles += [(c, "sensitive") for c in schema.sensitive if c not in schema.quasi_identifiers]
    truth = pd.DataFrame({ID: national_id})
    columns.append(ColumnInfo(ID, "truth", "id", "categorical", "row id of the source table"))
    for column, role in truth_roles:
        truth[column] = frame[column].to_numpy()
        description = schema.descriptions.get(column, f"{column} from {schema.source}")
        columns.append(ColumnInfo(column, "truth", role, _truth_kind(frame[column]), description))
    truth[LABEL] = labels
    columns.append(
        ColumnInfo(LABEL, "truth", "label", "binary", _label_description(schema), 0.0, 1.0)
    )
    government = pd.DataFrame({ID: national_id})
    columns.append(
        ColumnInfo(
            ID, "government", "id", "categorical", "row id; a real dataset has no state records"
        )
    )

    meta: dict[str, Any] = {
        "source": schema.source,
        "adapter_version": ADAPTER_VERSION,
        "seed": seed,
        "partition": split,
        "label": {"column": schema.label, "positive": schema.positive},
        "sensitive": list(schema.sensitive),
        "quasi_identifiers": list(schema.quasi_identifiers),
        "range_rule": (
            f"quantiles {RANGE_QUANTILES} of the full public file (counts widened to whole "
            "numbers, min-max if they coincide), values clipped; log_<x> = ln(1 + x)"
        ),
        "default_rate": float(labels.mean()),
        "firm_rows": {f: len(t) for f, t in firms.items()},
        "firm_default_rate": {f: float(t[LABEL].mean()) for f, t in firms.items()},
        **(extra_meta or {}),
    }
    return World(truth=truth, government=government, firms=firms, columns=columns, meta=meta)


def _label_description(schema: Schema) -> str:
    rule = f"{schema.label} == {schema.positive!r}" if schema.positive is not None else schema.label
    return f"1 = bad/default ({rule} in {schema.source})"
