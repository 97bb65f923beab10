"""`fedscore init-config TABLE`: a first experiment config drafted from a table's columns.

Column roles cannot be read off a table with certainty, so the draft guesses from names and
values and marks every guess `# CHECK:` for the user to confirm: the label and the value that
means default, likely ids and copies of the label (put in `exclude`), quasi-identifiers and
sensitive attributes (by name), the split into firms, and what to do with missing values.
The draft is then checked like any config when it runs.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from experiments.world.checks import (
    LABEL_COPY_AUC,
    MAX_SENSITIVE_LEVELS,
    is_id_like,
    label_association,
    looks_good,
    two_valued,
)
from experiments.world.partitions import slugify

LABEL_NAMES = (
    "default",
    "defaulted",
    "bad",
    "target",
    "label",
    "class",
    "y",
    "outcome",
    "status",
    "loan_status",
    "deny",
    "denied",
    "delinquent",
    "charged_off",
    "creditability",
)
"""Column names that usually hold the outcome, most telling first."""

DEFAULT_VALUES = (
    "bad",
    "default",
    "defaulted",
    "charged off",
    "charged_off",
    "delinquent",
    "late",
    "deny",
    "denied",
    "yes",
    "1",
    "true",
)
"""Label values that usually mean default, most telling first."""

QUASI_IDENTIFIER_WORDS = frozenset(
    {"age", "sex", "gender", "zip", "zipcode", "postcode", "postal", "city", "county", "area"}
    | {"district", "birth", "dob", "birthdate", "marital", "married", "region", "state"}
)
SENSITIVE_WORDS = frozenset(
    {"race", "ethnic", "ethnicity", "religion", "religious", "minority", "afam", "black"}
    | {"hispanic", "foreign", "immigrant", "nationality", "disability", "disabled", "health"}
    | {"pregnant", "caste", "orientation", "political"}
)
PARTITION_WORDS = frozenset(
    {"region", "branch", "state", "province", "bank", "lender", "firm", "company", "store"}
)
MAX_FIRMS = 20
MIN_FIRM_ROWS = 20


def _words(name: str) -> set[str]:
    return {w for w in "".join(c if c.isalnum() else " " for c in name.lower()).split() if w}


def _toml(value: object) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)  # strings and numbers are spelled alike in TOML


@dataclass
class Draft:
    """The guessed roles, each with the reason a user should check."""

    label: str | None = None
    positive: str | int | None = None
    notes: dict[str, str] = field(default_factory=dict)
    exclude: dict[str, str] = field(default_factory=dict)
    sensitive: list[str] = field(default_factory=list)
    quasi_identifiers: list[str] = field(default_factory=list)
    bins: dict[str, list[float]] = field(default_factory=dict)
    partition: str | None = None
    impute: str | None = None


def _guess_label(frame: pd.DataFrame) -> str | None:
    by_name = {c.lower(): c for c in frame.columns}
    for name in LABEL_NAMES:
        column = by_name.get(name)
        if column is not None and frame[column].dropna().nunique() == 2:
            return column
    return None


def _guess_positive(values: pd.Series, draft: Draft, label: str) -> None:
    levels = sorted(map(str, pd.unique(values.dropna())))
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if numeric and set(values.dropna().astype(float)) <= {0.0, 1.0}:
        if looks_good(label):
            draft.positive = 0
            draft.notes["positive"] = f"{label!r} sounds like 1 = good: is 0 the default?"
        return
    lowered = {level.strip().lower(): level for level in levels}
    for word in DEFAULT_VALUES:
        if word in lowered:
            value = lowered[word]
            if looks_good(label) and word in ("yes", "1", "true"):
                value = next(level for level in levels if level != value)
            draft.positive = int(value) if numeric else value
            break
    else:
        draft.positive = levels[0]
    draft.notes["positive"] = f"the value that means default; values: {levels}"


def _guess_roles(frame: pd.DataFrame, draft: Draft) -> None:
    label = two_valued(frame[draft.label]) if draft.label is not None else None
    for column in frame.columns:
        if column == draft.label:
            continue
        values, words = frame[column], _words(str(column))
        if values.isna().all():
            draft.exclude[column] = "every value is missing"
        elif is_id_like(values) or words & {"id", "rownames", "uuid"}:
            draft.exclude[column] = "unique per row, like a row id"
        elif label is not None and (
            (strength := label_association(values[label[1]].reset_index(drop=True), label[0]))
            is not None
            and strength >= LABEL_COPY_AUC
        ):
            draft.exclude[column] = f"alone predicts the label (AUC {strength:.3f}): a copy of it?"
        elif words & SENSITIVE_WORDS:
            draft.sensitive.append(column)
        elif words & PARTITION_WORDS and draft.partition is None and _firm_sized(values):
            draft.partition = column
        elif words & QUASI_IDENTIFIER_WORDS:
            draft.quasi_identifiers.append(column)
    for column in draft.sensitive:
        values = frame[column].dropna()
        numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        if numeric and values.nunique() > 2:
            edges = sorted({float(q) for q in np.quantile(values, (1 / 3, 2 / 3)).round()})
            draft.bins[column] = edges
        elif values.nunique() > MAX_SENSITIVE_LEVELS:
            draft.notes[f"sensitive:{column}"] = f"{column!r} has {values.nunique()} values"


def _firm_sized(values: pd.Series) -> bool:
    counts = values.dropna().astype(str).value_counts()
    names = [slugify(level) for level in counts.index]
    return (
        2 <= len(counts) <= MAX_FIRMS
        and int(counts.min()) >= MIN_FIRM_ROWS
        and not values.isna().any()
        and len(set(names)) == len(names)
        and all(names)
    )


def feature_columns(frame: pd.DataFrame, draft: Draft) -> list[str]:
    """What the default feature list will hold under the drafted roles."""
    taken = {draft.label, draft.partition, *draft.sensitive, *draft.quasi_identifiers}
    return [c for c in frame.columns if c not in taken and c not in draft.exclude]


def _guess_impute(frame: pd.DataFrame, draft: Draft) -> None:
    features = feature_columns(frame, draft)
    missing = {c: int(frame[c].isna().sum()) for c in features if frame[c].isna().any()}
    if draft.label is not None and frame[draft.label].isna().any():
        draft.impute = "drop-rows"
        draft.notes["impute"] = f"the label has {int(frame[draft.label].isna().sum())} missing"
    elif missing:
        draft.impute = "median"
        listing = ", ".join(f"{c} ({n})" for c, n in missing.items())
        draft.notes["impute"] = f"missing values in {listing}"


def draft_roles(frame: pd.DataFrame, label: str | None = None) -> Draft:
    """Every role guessed from `frame`; `label` when the user names the outcome column."""
    draft = Draft(label=label or _guess_label(frame))
    if draft.label is not None:
        _guess_positive(frame[draft.label], draft, draft.label)
    _guess_roles(frame, draft)
    _guess_impute(frame, draft)
    return draft


def _column_table(frame: pd.DataFrame, draft: Draft) -> list[str]:
    """One comment line per column: kind, distinct values, missing, guessed role."""
    roles = {draft.label: "label", draft.partition: "partition (one firm per value)"}
    roles |= {c: "sensitive" for c in draft.sensitive}
    roles |= {c: "quasi-identifier" for c in draft.quasi_identifiers}
    roles |= {c: f"exclude: {why}" for c, why in draft.exclude.items()}
    width = max(len(str(c)) for c in frame.columns)
    lines = [f"# {'column':<{width}}  {'kind':<7} {'values':>7} {'missing':>8}  role (guessed)"]
    for column in frame.columns:
        values = frame[column]
        kind = "number" if pd.api.types.is_numeric_dtype(values) else "text"
        lines.append(
            f"# {column:<{width}}  {kind:<7} {values.nunique():>7} {int(values.isna().sum()):>8}"
            f"  {roles.get(column, 'feature')}"
        )
    return lines


def render_draft(frame: pd.DataFrame, draft: Draft, table: Path, config: Path, name: str) -> str:
    """The config text: every guess on its own line, marked `# CHECK:`."""
    path = os.path.relpath(table.resolve(), config.resolve().parent)
    if path.startswith(".."):  # not beside or below the config: the full path reads better
        path = str(table.resolve())

    def check(line: str, why: str) -> str:
        return f"{line}  # CHECK: {why}"

    rows, columns = frame.shape
    lines = [
        f"# Drafted by `fedscore init-config` from {table.name} ({rows} rows, {columns} columns).",
        "# Lines marked CHECK are guesses from column names and values: confirm or change them.",
        "# Every key is explained in experiments/configs/example_file.toml and in the README",
        '# ("Bring your own data"). The table is checked again, in full, when the run starts.',
        "#",
        *_column_table(frame, draft),
        "",
        "[experiment]",
        f"name = {_toml(name)}",
        "seeds = [0, 1, 2]",
        "test_fraction = 0.25",
        "",
        "[data]",
        'source = "file"',
        f"path = {_toml(path)}",
    ]
    if draft.label is None:
        lines.append(check('label = ""', "no column looks like the outcome: name it"))
    else:
        lines.append(check(f"label = {_toml(draft.label)}", "the outcome column"))
    if draft.positive is not None:
        lines.append(check(f"positive = {_toml(draft.positive)}", draft.notes["positive"]))
    lines.append(
        check(f"sensitive = {_toml(draft.sensitive)}", "attributes no fair score should use")
    )
    lines.append(
        check(
            f"quasi_identifiers = {_toml(draft.quasi_identifiers)}",
            "what an outsider knows (age, sex, area, ...)",
        )
    )
    if draft.exclude:
        lines.append("exclude = [")
        lines += [check(f"    {_toml(c)},", why) for c, why in draft.exclude.items()]
        lines.append("]")
    if draft.impute is not None:
        lines.append(check(f"impute = {_toml(draft.impute)}", draft.notes["impute"]))
    if draft.partition is not None:
        firms = frame[draft.partition].nunique()
        lines.append(check(f"partition = {_toml(draft.partition)}", f"one firm per value: {firms}"))
    else:
        firms = int(np.clip(rows // 200, 2, 8))
        why = "no column names the firms: a label-skew split"
        lines += [check("dirichlet_alpha = 1.0", why), f"firms = {firms}"]
    if draft.bins:
        lines += ["", "[data.bins]"]
        lines += [
            check(f"{c} = {_toml(edges)}", "group edges of a numeric sensitive attribute")
            for c, edges in draft.bins.items()
        ]
    lines += [
        "",
        "[training]",
        "epochs = 10",
        "batch_size = 64",
        "learning_rate = 0.1",
        "",
        "[regimes]",
        "unified = true",
        "local_only = true",
        "federated_secagg = true",
        "",
        "[federation]",
        "rounds = 10",
        "local_epochs = 5",
        "",
    ]
    return "\n".join(lines)


def check_count(text: str) -> int:
    return sum("# CHECK:" in line for line in text.splitlines())
