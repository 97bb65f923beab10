"""How a real table's rows become firms: one firm per value of a partition column, a
Dirichlet split over the levels of a covariate, or (only when asked for) a Dirichlet
label-skew split computed from the training rows alone.

A split drawn from the label itself makes firm identity a predictor of default: a held-out
applicant's firm then tells a model their label. The label-skew split therefore deals only
the training rows by label; held-out rows join firms in proportion to the firms' sizes,
whatever their label, so firm identity says nothing about a held-out label.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from clients.streams import Stream, generator

RESERVED_TABLES = frozenset({"truth", "government"})


def slugify(text: str) -> str:
    """A file- and column-safe name: comparisons spelled out, other symbols collapsed to '_'."""
    spelled = (
        text.replace(">=", " ge ").replace("<=", " le ").replace("<", " lt ").replace(">", " gt ")
    )
    return re.sub(r"[^0-9a-z]+", "_", spelled.lower()).strip("_")


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


def firms_from_partition(values: pd.Series, column: str) -> tuple[np.ndarray, list[str]]:
    """Firm index per row and firm names: one firm per distinct value, in sorted order."""
    if values.isna().any():
        raise ValueError(
            f"partition column {column!r} has {int(values.isna().sum())} missing values"
        )
    levels, firm_of_row = np.unique(values.astype(str).to_numpy(), return_inverse=True)
    names = [slugify(str(level)) for level in levels]
    if len(set(names)) < len(names) or not all(names) or RESERVED_TABLES & set(names):
        raise ValueError(
            f"partition column {column!r} values {levels.tolist()} do not give distinct firm names "
            f"(got {names}; names may not be empty or one of {sorted(RESERVED_TABLES)})"
        )
    return firm_of_row.astype(np.int64), names


COVARIATE_BINS = 5
"""A numeric covariate with more levels than this is cut at its quantiles into this many."""


def heldout_rows(n_rows: int, fraction: float, seed: int) -> np.ndarray:
    """The rows `Holdout.draw` holds out of a world of `n_rows` citizens in table order: the
    one draw both use, so a split can avoid reading held-out labels."""
    return generator(Stream.HOLDOUT, seed).random(n_rows) < fraction


def covariate_codes(values: pd.Series) -> np.ndarray:
    """A level index per row: the covariate's levels, or quantile bins of a numeric one."""
    if values.isna().any():
        raise ValueError(f"covariate {values.name!r} has {int(values.isna().sum())} missing values")
    if pd.api.types.is_numeric_dtype(values) and values.nunique() > COVARIATE_BINS:
        return pd.qcut(values, COVARIATE_BINS, labels=False, duplicates="drop").to_numpy()
    return np.unique(values.astype(str).to_numpy(), return_inverse=True)[1]


def covariate_dirichlet_split(
    values: pd.Series, n_firms: int, alpha: float, rng: np.random.Generator
) -> np.ndarray:
    """Firm per row from a Dirichlet draw per covariate level: firms differ in their mix of
    that covariate (a market segment), and the label plays no part."""
    return dirichlet_split(covariate_codes(values), n_firms, alpha, rng)


def label_skew_split(
    labels: np.ndarray,
    held_out: np.ndarray,
    n_firms: int,
    alpha: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """The label-skew split of the training rows; each held-out row joins a firm drawn in
    proportion to the firms' training sizes, independently of its label."""
    firm_of_row = np.empty(len(labels), dtype=np.int64)
    firm_of_row[~held_out] = dirichlet_split(labels[~held_out], n_firms, alpha, rng)
    sizes = np.bincount(firm_of_row[~held_out], minlength=n_firms)
    firm_of_row[held_out] = rng.choice(n_firms, int(held_out.sum()), p=sizes / sizes.sum())
    return firm_of_row
