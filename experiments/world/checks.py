"""Checks of a table of one's own before anything trains, every problem found in one pass.

A wrong column role or an unclear label does not crash a run: it trains, and the result is
silently wrong (a label where 1 means *good*, an id column or a copy of the label among the
features, a 0/1 attribute whose missing values count as 0). So `load_table` runs `check_table`
first and refuses the table with all its problems at once, each naming the `[data]` key, the
column and what would be accepted; `experiments/world/remedies.py` then applies the declared
remedies (imputation, dropped rows, bins). The firms' training rows depend on each seed's
split and held-out draw and are checked by `firm_problems` before the first seed trains.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from experiments.world.partitions import RESERVED_TABLES, slugify

Impute = Literal["median", "mode", "drop-rows"]

LABEL_COPY_AUC = 0.97
"""A feature that alone orders the label this well (AUC, either direction) is taken for a copy
of the label (e.g. an `approve` column beside a `deny` label). Single credit features reach 0.6
to 0.8; a feature above this is a decision made with the outcome known."""

LABEL_COPY_MAX_LEVELS = 20
"""Above this many levels a text column's in-sample level rates overfit, so it is not tested."""

MAX_SENSITIVE_LEVELS = 20
"""More groups than this are too small to report a gap or an inference figure on."""

GOOD_LABEL_WORDS = ("approv", "accept", "good", "paid", "repaid", "grant", "success", "pass")
"""Label names that suggest 1 = good: such a 0/1 label needs `positive` to say what 1 means."""


class DataError(ValueError):
    """A table that cannot be run as configured; the message lists every problem found."""

    def __init__(self, source: str | Path, problems: Sequence[str]) -> None:
        self.source = str(source)
        self.problems = list(problems)
        if len(self.problems) == 1:
            super().__init__(f"data file {self.source}: {self.problems[0]}")
            return
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"data file {self.source}: {len(self.problems)} problems, found before any "
            f"training:\n{lines}"
        )


@dataclass(frozen=True)
class TableSpec:
    """The column roles and remedies declared for one table (the `[data]` keys of a file source)."""

    label: str
    positive: str | int | None = None
    sensitive: Sequence[str] = ()
    quasi_identifiers: Sequence[str] = ()
    features: Sequence[str] | None = None
    exclude: Sequence[str] = ()
    partition: str | None = None
    dirichlet_alpha: float | None = None
    n_firms: int = 8
    impute: Impute | None = None
    bins: Mapping[str, Sequence[float]] = field(default_factory=dict)


def _names(columns: Sequence[str]) -> str:
    return ", ".join(repr(c) for c in columns)


def is_numeric(values: pd.Series) -> bool:
    """A number column (booleans excluded: they are categories)."""
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _missing_column(frame: pd.DataFrame, key: str, name: str) -> str:
    close = difflib.get_close_matches(name, [str(c) for c in frame.columns], n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    shown = [str(c) for c in frame.columns]
    available = _names(shown[:30]) + (f" and {len(shown) - 30} more" if len(shown) > 30 else "")
    return f"[data] {key}: column {name!r} is not in the table{hint} available columns: {available}"


def default_features(columns: Sequence[str], spec: TableSpec) -> list[str]:
    """Every column that has no other role and is not excluded."""
    taken = {spec.label, spec.partition, *spec.sensitive, *spec.quasi_identifiers, *spec.exclude}
    return [c for c in columns if c not in taken]


def _role_problems(frame: pd.DataFrame, spec: TableSpec) -> list[str]:
    """Columns that exist, one role each, and the declarations that need each other."""
    problems: list[str] = []
    lists: dict[str, Sequence[str]] = {
        "sensitive": spec.sensitive,
        "quasi_identifiers": spec.quasi_identifiers,
        "features": spec.features or (),
        "exclude": spec.exclude,
    }
    singles = {"label": spec.label, "partition": spec.partition}
    for key, name in singles.items():
        if name is not None and name not in frame.columns:
            problems.append(_missing_column(frame, key, name))
    for key, names in lists.items():
        problems += [_missing_column(frame, key, n) for n in dict.fromkeys(names) if n not in frame]
        repeated = sorted({n for n in names if list(names).count(n) > 1})
        if repeated:
            problems.append(f"[data] {key} lists {_names(repeated)} more than once")
    for key, names in lists.items():
        if spec.label in names:
            problems.append(
                f"[data] {key}: {spec.label!r} is the label; the label cannot take another role"
            )
    if spec.partition is not None and spec.partition == spec.label:
        problems.append(f"[data] partition: {spec.label!r} is the label; split by another column")
    both = [c for c in spec.sensitive if c in spec.quasi_identifiers]
    if both:
        problems.append(
            f"[data] sensitive and quasi_identifiers both list {_names(both)}; a column is "
            "either an attribute no score should use (sensitive) or one an outsider knows "
            "(quasi-identifier), not both"
        )
    contradicted = [c for c in spec.exclude if c in (spec.features or ())]
    if contradicted:
        problems.append(f"[data] features and exclude both list {_names(contradicted)}")
    if spec.sensitive and not spec.quasi_identifiers:
        problems.append(
            f"[data] sensitive = [{_names(spec.sensitive)}] needs quasi_identifiers, what an "
            "outsider knows (age, sex, region, ...): attribute inference measures what the "
            "score adds to them"
        )
    stray_bins = [c for c in spec.bins if c not in spec.sensitive]
    if stray_bins:
        problems.append(
            f"[data.bins] {_names(stray_bins)}: bins are for numeric sensitive attributes; "
            f"sensitive = [{_names(spec.sensitive)}]"
        )
    if (spec.partition is None) == (spec.dirichlet_alpha is None):
        problems.append(
            "[data] give exactly one of partition (a column naming the firms) or dirichlet_alpha "
            f"(a label-skew split); got partition={spec.partition!r}, "
            f"dirichlet_alpha={spec.dirichlet_alpha!r}"
        )
    return problems


def encode_label(values: pd.Series, positive: str | int | None) -> np.ndarray | None:
    """1 = default per non-missing row, or None when the label's meaning is unclear."""
    known = values.dropna()
    if positive is None:
        if not (is_numeric(known) or pd.api.types.is_bool_dtype(known)):
            return None
        as_float = known.astype(float)
        return as_float.to_numpy().astype(np.int8) if set(as_float) <= {0.0, 1.0} else None
    if is_numeric(known) and not isinstance(positive, str):
        return (known == positive).to_numpy().astype(np.int8)
    return (known.astype(str) == str(positive)).to_numpy().astype(np.int8)


def looks_good(label: str) -> bool:
    """A label name that suggests 1 = good (approved, paid), the opposite of fedscore's 1."""
    return any(word in label.lower() for word in GOOD_LABEL_WORDS)


def _label_problems(values: pd.Series, spec: TableSpec) -> list[str]:
    """Binary, with an explicit meaning: which value is the default."""
    label, positive = spec.label, spec.positive
    known = values.dropna()
    levels = sorted(map(str, pd.unique(known)))
    if known.empty:
        return [f"[data] label: column {label!r} is empty (every value is missing)"]
    if len(levels) > 2:
        shown = levels if len(levels) <= 8 else [*levels[:8], "..."]
        return [
            f"[data] label: column {label!r} holds {len(levels)} values {shown}; a label must be "
            "binary (default or not): map it to two values first"
        ]
    if len(levels) < 2:
        return [f"[data] label: column {label!r} holds one value only ({levels[0]!r})"]
    if positive is None:
        if encode_label(values, None) is None:
            return [
                f"[data] label: label column {label!r} holds {levels}; set [data] positive to the "
                f"value that means default (e.g. positive = {levels[0]!r}), or use a 0/1 column"
            ]
        if looks_good(label):
            return [
                f"[data] label = {label!r} sounds like 1 = good (approved, paid), but fedscore "
                "reads 1 as default; set [data] positive = 0 if 0 means default here, or "
                "positive = 1 to confirm that 1 means default"
            ]
        return []
    encoded = encode_label(values, positive)
    if encoded is None or not encoded.any():
        return [
            f"[data] positive = {positive!r} never occurs in label column {label!r}; values "
            f"found: {levels}"
        ]
    return []


def is_id_like(values: pd.Series) -> bool:
    """Unique per row, and not a measurement: integers, whole numbers or text."""
    if len(values) < 2 or values.isna().any() or values.nunique() != len(values):
        return False
    if pd.api.types.is_float_dtype(values):
        return bool(np.all(np.mod(values.to_numpy(), 1.0) == 0))
    return True


def label_association(values: pd.Series, labels: np.ndarray) -> float | None:
    """How well one column alone orders the label: AUC in [0.5, 1], None when untestable.

    values and labels align row by row (labels: 0/1, NaN-free). Numbers with many values are
    ranked as they are; other columns by their levels' default rates in this table.
    """
    known = values.notna().to_numpy()
    y = labels[known]
    if len(np.unique(y)) < 2:
        return None
    column = values[known]
    if is_numeric(column) and column.nunique() > 10:
        score = column.to_numpy(dtype=np.float64)
    elif column.nunique() <= LABEL_COPY_MAX_LEVELS:
        text = column.astype(str).to_numpy()
        rates = pd.Series(y).groupby(text).mean()
        score = rates.reindex(text).to_numpy()
    else:
        return None
    auc = float(roc_auc_score(y, score))
    return max(auc, 1.0 - auc)


def two_valued(values: pd.Series) -> tuple[np.ndarray, np.ndarray] | None:
    """A two-valued column as 0/1 on its non-missing rows, and which rows those are.

    An association does not depend on which value is the default, so copies of the label are
    found even while `positive` is still unset or wrong.
    """
    known = values.notna().to_numpy()
    levels = sorted(map(str, pd.unique(values.dropna())))
    if len(levels) != 2:
        return None
    return (values[known].astype(str) == levels[1]).to_numpy().astype(np.int8), known


def _feature_problems(
    frame: pd.DataFrame, features: Sequence[str], explicit: bool, spec: TableSpec
) -> list[str]:
    problems: list[str] = []
    label = two_valued(frame[spec.label]) if spec.label in frame else None
    for column in features:
        values = frame[column]
        if values.isna().all():
            fix = "remove it from [data] features" if explicit else "add it to [data] exclude"
            problems.append(
                f"[data] features: column {column!r} is empty (every value is missing); {fix}"
            )
            continue
        if explicit:
            continue  # listed by hand: the user has vouched for it
        if is_id_like(values):
            problems.append(
                f"[data] features: column {column!r} is unique per row, like a row id; add it "
                "to [data] exclude (or list the features yourself in [data] features)"
            )
            continue
        if label is None:
            continue
        labels, label_known = label
        strength = label_association(values[label_known].reset_index(drop=True), labels)
        if strength is not None and strength >= LABEL_COPY_AUC:
            problems.append(
                f"[data] features: column {column!r} alone predicts the label {spec.label!r} "
                f"(AUC {strength:.3f}), like a copy of it or a decision taken with the outcome "
                "known; add it to [data] exclude (or list it in [data] features to keep it)"
            )
    return problems


def _sensitive_problems(frame: pd.DataFrame, spec: TableSpec) -> list[str]:
    """Binary or categorical; numbers need bins; missing values are allowed (kept as missing)."""
    problems: list[str] = []
    for column in dict.fromkeys(spec.sensitive):
        if column not in frame:
            continue
        values = frame[column].dropna()
        if values.empty:
            problems.append(f"[data] sensitive: column {column!r} is empty (every value missing)")
            continue
        levels = values.nunique()
        if column in spec.bins:
            if not is_numeric(values):
                problems.append(
                    f"[data.bins] {column}: bins cut a numeric column, but {column!r} holds text"
                )
            continue
        if levels < 2:
            problems.append(
                f"[data] sensitive: column {column!r} holds one value only "
                f"({values.iloc[0]!r}); it defines no group"
            )
        elif is_numeric(values) and levels > 2:
            edges = sorted({float(q) for q in np.quantile(values, (1 / 3, 2 / 3)).round()})
            example = ", ".join(f"{e:g}" for e in edges)
            problems.append(
                f"[data] sensitive: column {column!r} is numeric with {levels} values, one group "
                f"each; give group edges in [data.bins], e.g. {column} = [{example}]"
            )
        elif levels > MAX_SENSITIVE_LEVELS:
            problems.append(
                f"[data] sensitive: column {column!r} has {levels} values; at most "
                f"{MAX_SENSITIVE_LEVELS} groups are reported: merge levels first"
            )
    return problems


def _empty_role_problems(frame: pd.DataFrame, spec: TableSpec) -> list[str]:
    roles = {"quasi_identifiers": spec.quasi_identifiers, "partition": [spec.partition]}
    return [
        f"[data] {key}: column {c!r} is empty (every value is missing)"
        for key, columns in roles.items()
        for c in columns
        if c is not None and c in frame and frame[c].isna().all()
    ]


def _missing_problems(frame: pd.DataFrame, features: Sequence[str], spec: TableSpec) -> list[str]:
    """Every column whose missing values need a decision, in one problem."""
    must_drop = [c for c in (spec.label, spec.partition) if c is not None and c in frame]
    affected = [
        (c, int(frame[c].isna().sum()))
        for c in [*must_drop, *features]
        if frame[c].isna().any() and not frame[c].isna().all()
    ]
    if not affected:
        return []
    rows = len(frame)
    listing = ", ".join(f"{c!r} ({n} of {rows} rows)" for c, n in affected)
    if spec.impute is None:
        return [
            f"missing values in {len(affected)} column{'s' if len(affected) > 1 else ''}: "
            f'{listing}; set [data] impute = "median" (numbers take the column\'s median, '
            'text a "missing" level), "mode" (the most frequent value) or "drop-rows" '
            "(rows with a missing value go)"
        ]
    undroppable = [c for c, _ in affected if c in must_drop]
    if undroppable and spec.impute != "drop-rows":
        return [
            f"missing values in {_names(undroppable)} (label or partition): impute = "
            f'"{spec.impute}" fills features only; use impute = "drop-rows" or fill them'
        ]
    return []


def _partition_problems(frame: pd.DataFrame, spec: TableSpec) -> list[str]:
    if spec.partition is None or spec.partition not in frame:
        return []
    levels = sorted(map(str, pd.unique(frame[spec.partition].dropna())))
    names = [slugify(level) for level in levels]
    if len(levels) < 2:
        return [f"[data] partition: column {spec.partition!r} gives one firm; a federation needs 2"]
    if len(set(names)) < len(names) or not all(names) or RESERVED_TABLES & set(names):
        return [
            f"[data] partition: column {spec.partition!r} values {levels} do not give distinct "
            f"firm names (got {names}; names may not be empty or one of {sorted(RESERVED_TABLES)})"
        ]
    return []


def check_table(frame: pd.DataFrame, spec: TableSpec) -> list[str]:
    """Every problem with `frame` under `spec`, as lines naming key, column and the fix."""
    problems = _role_problems(frame, spec)
    explicit = spec.features is not None
    listed = list(spec.features) if spec.features is not None else None
    chosen = listed if listed is not None else default_features(list(frame.columns), spec)
    features = [c for c in chosen if c in frame]
    if spec.label in frame:
        problems += _label_problems(frame[spec.label], spec)
    if not features and (explicit or spec.label in frame):
        problems.append(
            "[data] features: no column is left to score with (every column has another role "
            "or is excluded); list the model's inputs in [data] features"
        )
    problems += _feature_problems(frame, features, explicit, spec)
    problems += _sensitive_problems(frame, spec)
    problems += _empty_role_problems(frame, spec)
    non_empty = [c for c in features if not frame[c].isna().all()]
    problems += _missing_problems(frame, non_empty, spec)
    problems += _partition_problems(frame, spec)
    if spec.dirichlet_alpha is not None and len(frame) < spec.n_firms:
        problems.append(f"[data] firms = {spec.n_firms}: the table has only {len(frame)} rows")
    return problems


def firm_problems(
    train_labels: Mapping[str, np.ndarray],
    min_rows: int,
    seed: int,
    split: str,
    advice: str,
    two_classes: bool = True,
) -> list[str]:
    """Firms too small, or with one class, to train on: named, with the split that made them.

    train_labels: firm -> its training rows' 0/1 labels (held-out rows removed) for `seed`;
    `advice` says how to change the split. `two_classes=False` lets a one-class firm through
    (it is then scored by its base rate).
    """
    problems = []
    for firm, labels in train_labels.items():
        where = f"firm {firm!r} (seed {seed}, {split})"
        if len(labels) < min_rows:
            problems.append(
                f"{where} has {len(labels)} training rows, fewer than {min_rows}; {advice}"
            )
        elif two_classes and len(np.unique(labels)) < 2:
            only = "defaults" if labels.all() else "non-defaults"
            problems.append(
                f"{where} has only {only} among its {len(labels)} training rows, nothing to "
                f"learn a score from; {advice}"
            )
    return problems
