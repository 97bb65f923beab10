"""What each party can infer about a citizen's sensitive attributes and scrutinized profession.

The fear behind a national database is less what it stores than what its operator can infer
from it. For each party this module measures the cross-validated AUC of inferring every
sensitive attribute and every scrutinized profession from what the party holds, beside the
same learner on the quasi-identifiers (QIs) alone, and the precision of the party's top-1 %
list (a "watch list"). The parties:

- `central_operator`: the national database, every firm's columns for each citizen (what the
  unified score trains on), the government records and the population register;
- `firm:<name>`: a firm's own table, over its own customers;
- `colluding_pair:max` / `colluding_pair:median`: two firms joining their tables on the
  national ID, over the union of their customers (every pair, or a seeded sample of
  `[inference] max_pairs`): the pair that infers a target best, and the median over pairs;
- `coordinating_server`: see `server_inference`;
- a score consumer, who sees released scores and QIs: per regime,
  `experiments.leakage.parties.consumer_figures`.

Every party that holds national IDs is also given the QIs (a register or a census table joined
on the ID), so its advantage is what its own data adds. A profession is inferred without the
occupation QI (it is the answer). Professions are rare: read their watch-list precision.

The learner is ridge regression on every target at once (a linear probability score), with
counts and amounts also entered as log(1 + x), non-customers as zeros plus a presence flag.
Each target's penalty is chosen by generalised cross-validation on the training folds, the
party's own columns with a penalty of their own (so a party whose data adds nothing falls back
to its baseline's fit). All of it follows from one eigendecomposition per fold and penalty
scale, with no pass over the rows beyond the cross-products. It is a linear attacker, a lower
bound on what a party could infer, chosen because it costs seconds per seed where a learner
per target and party would cost minutes (on pilot8's seed 0 it finds the central operator's
political-expression AUC 0.93 against 0.70 for the QIs, as the issue's boosting run found
0.90 against 0.71). Rows: up to `[inference] rows` citizens per party, drawn with a seeded
permutation of the population; rows of a party's own columns are standardised over its whole
table (no label is read).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.stats import rankdata
from sklearn.model_selection import KFold
from threadpoolctl import threadpool_limits

from experiments.leakage.decisions import protected_groups
from experiments.world.tables import ID, ColumnInfo, World

Matrix = npt.NDArray[np.float64]
Folds = list[tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]]

WATCH_LIST_SHARE = 0.01
"""The watch list: the top 1 % of a party's citizens by inferred score."""
PENALTIES = np.logspace(-1, 5, 13)
"""The ridge penalties tried per target (columns are standardised or 0/1 indicators, so a
penalty near the number of rows shrinks a column by about half)."""
OWN_SCALES = (0.0, 0.3, 1.0)
"""Scales of a party's own columns tried beside each penalty (0: its baseline's fit; 0.3: ten
times the penalty on its own columns)."""
WIDE_RANGE = 2.0
"""A numeric column whose declared range is wider than this also enters as log(1 + x)."""
MAX_LEVELS = 20
"""A numeric QI with more values is binned into this many quantiles: ridge on 62 one-year
age columns fits noise where 20 bins keep the shape."""
OCCUPATION = "occupation"
"""The QI left out when the target is a profession."""


def is_profession(target: str) -> bool:
    """A target whose answer is the occupation QI itself (`decisions.protected_groups` names)."""
    return target == "scrutinized_profession" or target.startswith(f"{OCCUPATION}=")


@dataclass(frozen=True)
class InferenceFigure:
    """One party (or score consumer) inferring one target, against a baseline on the same rows.

    auc: from the party's data plus its baseline knowledge; auc_baseline: from the baseline
    knowledge alone (the QIs, or the consumer's knowledge level); watch-list precision: share
    of the top 1 % by score who are in the group (ties split evenly); at random it is the
    prevalence.
    """

    n_rows: int
    prevalence: float
    auc: float
    auc_baseline: float
    advantage: float
    watch_list_precision: float
    watch_list_precision_baseline: float

    def to_json(self) -> dict[str, Any]:
        def plain(value: float | int) -> float | int | None:
            return value if not isinstance(value, float) or math.isfinite(value) else None

        return {f.name: plain(getattr(self, f.name)) for f in fields(self)}


Model = tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], int]
"""(design columns, target columns, own): one ridge fit of those targets on those columns,
whose last `own` columns are the party's own data (0 for a baseline)."""


def _gcv_path(
    gram: Matrix, cross: Matrix, squares: Matrix, n: int
) -> tuple[Matrix, Matrix, Matrix]:
    """Every penalty of `PENALTIES` at once: (GCV (P, T), eigenvectors (d, d), coefficients in
    the eigenbasis (P, d, T)).

    gram: (d, d) X'X; cross: (d, T) X'y; squares: (T,) y'y; all centred, over n rows. From one
    eigendecomposition of the gram each penalty's fit, residual and degrees of freedom follow
    in closed form, without another pass over the rows.
    """
    eigenvalues, vectors = np.linalg.eigh(gram)
    eigenvalues = np.clip(eigenvalues, 0.0, None)
    rotated = vectors.T @ cross  # (d, T)
    shrink = 1.0 / (eigenvalues[None, :] + PENALTIES[:, None])  # (P, d)
    energy = rotated**2
    fitted_dot_y = shrink @ energy  # (P, T): y'ŷ
    fitted_squares = (eigenvalues * shrink**2) @ energy  # ŷ'ŷ
    residual = squares[None, :] - 2.0 * fitted_dot_y + fitted_squares
    freedom = (eigenvalues * shrink).sum(axis=1)  # (P,): trace of the hat matrix
    gcv = residual / np.maximum(n - freedom, 1.0)[:, None] ** 2
    return gcv, vectors, shrink[:, :, None] * rotated[None, :, :]


def _ridge_gcv(gram: Matrix, cross: Matrix, squares: Matrix, n: int, own: int) -> Matrix:
    """Ridge coefficients (d, T) from centred cross-products, each target's penalty chosen by
    generalised cross-validation (Golub, Heath & Wahba 1979).

    The last `own` columns (the party's own data) get a penalty of their own: they are scaled
    by each of `OWN_SCALES` in turn, 0 included, so a party whose data adds nothing falls back
    to its baseline's fit instead of paying for noise columns with a shrunken baseline.
    """
    scales = OWN_SCALES if own else (1.0,)
    best_gcv = np.full(cross.shape[1], np.inf)
    coefficients = np.zeros(cross.shape)
    for scale in scales:
        factor = np.ones(len(gram))
        factor[len(gram) - own :] = scale
        gcv, vectors, path = _gcv_path(
            gram * np.outer(factor, factor), cross * factor[:, None], squares, n
        )
        choice = np.argmin(gcv, axis=0)  # (T,)
        targets = np.arange(cross.shape[1])
        lowest = gcv[choice, targets]
        better = lowest < best_gcv
        if better.any():
            fitted = factor[:, None] * (vectors @ path[choice, :, targets].T)  # (d, T)
            coefficients[:, better] = fitted[:, better]
            best_gcv[better] = lowest[better]
    return coefficients


def out_of_fold_scores(
    design: Matrix, targets: Matrix, folds: Folds, models: Sequence[Model]
) -> list[Matrix]:
    """Ridge scores of each model's targets from its columns, each row from a fit on the
    other folds (penalty per target by GCV on the training rows); one (n, len(target columns))
    matrix per model.

    design: (n, d); targets: (n, T). A model with no columns scores each fold's training mean.
    The cross-products are computed once over all rows and each fold subtracts its held-out
    rows, so the cost is about two passes over the design whatever the number of folds and
    models.
    """
    gram, cross = design.T @ design, design.T @ targets
    x_sum, y_sum, y_squares = design.sum(axis=0), targets.sum(axis=0), (targets**2).sum(axis=0)
    out = [np.empty((len(design), len(t))) for _, t, _ in models]
    for train, held_out in folds:
        x_out, y_out = design[held_out], targets[held_out]
        n = len(train)
        x_mean, y_mean = (x_sum - x_out.sum(axis=0)) / n, (y_sum - y_out.sum(axis=0)) / n
        fold_gram = gram - x_out.T @ x_out - n * np.outer(x_mean, x_mean)
        fold_cross = cross - x_out.T @ y_out - n * np.outer(x_mean, y_mean)
        fold_squares = y_squares - (y_out**2).sum(axis=0) - n * y_mean**2
        for (columns, target_columns, own), scores in zip(models, out, strict=True):
            scores[held_out] = y_mean[target_columns]
            if not len(columns):
                continue
            coefficients = _ridge_gcv(
                fold_gram[np.ix_(columns, columns)],
                fold_cross[np.ix_(columns, target_columns)],
                fold_squares[target_columns],
                n,
                own,
            )
            scores[held_out] += (x_out[:, columns] - x_mean[columns]) @ coefficients
    return out


def watch_list_precision(labels: npt.NDArray[Any], scores: npt.NDArray[Any]) -> float:
    """Share of group members among the top `WATCH_LIST_SHARE` of rows by score (at least one
    row); rows tied at the cut count by their mean, so a constant score gives the prevalence."""
    k = max(1, round(WATCH_LIST_SHARE * len(labels)))
    cut = np.sort(scores)[-k]
    above = scores > cut
    tied = scores == cut
    hits = labels[above].sum() + (k - above.sum()) * labels[tied].mean()
    return float(hits / k)


def auc(labels: npt.NDArray[Any], scores: npt.NDArray[Any]) -> float:
    """Mann-Whitney AUC, ties counting one half (roc_auc_score's value, without its checks,
    which cost more than the fits here); NaN without both classes."""
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if not positives or not negatives:
        return math.nan
    ranks = rankdata(scores)
    return float(
        (ranks[labels == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives)
    )


def figures(targets: Matrix, scores: Matrix, baseline: Matrix) -> list[InferenceFigure]:
    """One figure per target column; NaN targets (attribute unknown) are left out of its rows.

    targets, scores, baseline: (n, T)."""
    out = []
    for column in range(targets.shape[1]):
        known = ~np.isnan(targets[:, column])
        labels = targets[known, column]
        party, base = scores[known, column], baseline[known, column]
        party_auc, base_auc = auc(labels, party), auc(labels, base)
        empty = not len(labels)
        out.append(
            InferenceFigure(
                n_rows=int(known.sum()),
                prevalence=math.nan if empty else float(labels.mean()),
                auc=party_auc,
                auc_baseline=base_auc,
                advantage=party_auc - base_auc,
                watch_list_precision=math.nan if empty else watch_list_precision(labels, party),
                watch_list_precision_baseline=(
                    math.nan if empty else watch_list_precision(labels, base)
                ),
            )
        )
    return out


def kfold(n: int, n_folds: int, seed: int) -> Folds:
    """Shuffled folds of n rows; none when there are fewer than two rows per fold (a party
    with a handful of customers), which `infer` reports as figures it could not compute."""
    if n < 2 * n_folds:
        return []
    return list(KFold(n_splits=n_folds, shuffle=True, random_state=seed).split(np.zeros(n)))


def one_hot(frame: pd.DataFrame) -> Matrix:
    """0/1 indicator columns, one per level of every column (read as text); a numeric column
    with more than `MAX_LEVELS` values (age in years) one per quantile bin instead."""
    parts = []
    for name in frame.columns:
        values = frame[name]
        if pd.api.types.is_numeric_dtype(values) and values.nunique() > MAX_LEVELS:
            values = pd.qcut(values, MAX_LEVELS, labels=False, duplicates="drop")
        codes, levels = pd.factorize(values.astype(str), sort=True)
        parts.append(np.eye(len(levels))[codes])
    return np.hstack(parts) if parts else np.zeros((len(frame), 0))


def numeric_block(table: pd.DataFrame, columns: Sequence[ColumnInfo]) -> Matrix:
    """A party's columns as a standardised design: numeric columns as themselves and, when
    their range is wide (counts, amounts), as log(1 + x − low) too; categorical ones one-hot."""
    parts: list[Matrix] = []
    for column in columns:
        if column.kind == "categorical":
            parts.append(one_hot(table[[column.name]]))
            continue
        values = pd.to_numeric(table[column.name], errors="coerce").to_numpy(np.float64)
        parts.append(values[:, None])
        low, high = column.low, column.high
        if low is not None and high is not None and high - low > WIDE_RANGE:
            parts.append(np.log1p(np.clip(values - low, 0.0, None))[:, None])
    if not parts:
        return np.zeros((len(table), 0))
    block = np.hstack(parts)
    block = np.where(np.isnan(block), np.nanmean(block, axis=0), block)
    spread = block.std(axis=0)
    standardised: Matrix = (block - block.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    return standardised


@dataclass(frozen=True)
class Holding:
    """One source of a party's columns (a firm's table, the government records), laid out by
    citizen: `rows[i]` is citizen i's row in `design`, or -1 when the source lacks them."""

    design: Matrix
    rows: npt.NDArray[np.intp]

    @classmethod
    def of(
        cls, table: pd.DataFrame, columns: Sequence[ColumnInfo], ids: npt.NDArray[Any]
    ) -> Holding:
        position = pd.Series(np.arange(len(table)), index=table[ID].to_numpy())
        rows = position.reindex(ids).fillna(-1).to_numpy(np.intp)
        return cls(numeric_block(table, columns), rows)

    @property
    def holds(self) -> npt.NDArray[np.bool_]:
        held: npt.NDArray[np.bool_] = self.rows >= 0
        return held

    def at(self, citizens: npt.NDArray[np.intp]) -> Matrix:
        """(len(citizens), d + 1): the source's columns (zeros where it lacks the citizen) and
        a presence flag."""
        rows = self.rows[citizens]
        present = rows >= 0
        out = np.zeros((len(citizens), self.design.shape[1] + 1))
        out[present, :-1] = self.design[rows[present]]
        out[:, -1] = present
        return out


@dataclass(frozen=True)
class Population:
    """The targets and QIs of every citizen, in the truth table's order."""

    targets: Matrix  # (citizens, T): 1 in the group, 0 not, NaN unknown
    names: list[str]  # the T targets, `decisions.protected_groups` names
    qi_without_occupation: Matrix  # (citizens, q) one-hot QIs but the occupation
    occupation: Matrix  # (citizens, o) one-hot occupation (no column where there is none)

    @classmethod
    def of(cls, world: World) -> Population:
        ids = world.truth[ID].to_numpy()
        groups = protected_groups(world, ids)
        names = list(groups)
        columns = [np.asarray(groups[n], dtype=np.float64) for n in names]
        targets = np.stack(columns, axis=1) if columns else np.zeros((len(ids), 0))
        qi_names = [c.name for c in world.columns_of("truth", {"quasi-identifier"})]
        return cls(
            targets=targets,
            names=names,
            qi_without_occupation=one_hot(world.truth[[q for q in qi_names if q != OCCUPATION]]),
            occupation=one_hot(world.truth[[q for q in qi_names if q == OCCUPATION]]),
        )

    def knowledge(self, citizens: npt.NDArray[np.intp]) -> tuple[Matrix, Matrix]:
        """(QIs but the occupation, the occupation) of `citizens`: `infer`'s knowledge."""
        return self.qi_without_occupation[citizens], self.occupation[citizens]

    @property
    def professions(self) -> npt.NDArray[np.bool_]:
        return np.array([is_profession(n) for n in self.names], dtype=bool)


def infer(
    targets: Matrix,
    professions: npt.NDArray[np.bool_],
    knowledge: tuple[Matrix, Matrix],
    held: Matrix,
    folds: Folds,
) -> list[InferenceFigure]:
    """Every target inferred from `held` plus the baseline knowledge, against the knowledge
    alone; one figure per target column, in order.

    targets: (n, T), NaN where unknown (fitted as 0, never scored); knowledge: (shared, extra),
    (n, q) and (n, o): a target knows both, except a profession (`professions`, (T,)), whose
    answer `extra` (the occupation) would be; held: (n, d), the party's own columns.
    """
    if not folds:
        nothing = np.full(targets.shape, np.nan)
        return figures(np.full(targets.shape, np.nan), nothing, nothing)
    shared, extra = knowledge
    design = np.hstack([shared, extra, held])
    q, o = shared.shape[1], extra.shape[1]
    own = np.arange(q + o, design.shape[1])
    models: list[Model] = []
    for subset, known in ((~professions, np.arange(q + o)), (professions, np.arange(q))):
        wanted = np.flatnonzero(subset)
        if len(wanted):
            models += [(np.concatenate([known, own]), wanted, len(own)), (known, wanted, 0)]
    with threadpool_limits(limits=1):
        scores = out_of_fold_scores(design, np.nan_to_num(targets), folds, models)
    out: list[InferenceFigure | None] = [None] * targets.shape[1]
    for (_, wanted, _), party, baseline in zip(models[::2], scores[::2], scores[1::2], strict=True):
        computed = figures(targets[:, wanted], party, baseline)
        for index, figure in zip(wanted, computed, strict=True):
            out[index] = figure
    return [f for f in out if f is not None]


def server_inference(targets: Matrix, central: list[InferenceFigure]) -> list[InferenceFigure]:
    """The coordinating server's inference about each citizen, from what it actually receives.

    Per round it receives the secure-aggregation sum of the firms' updates: the global model
    and aggregate statistics. No row of that belongs to a citizen, and it holds no identifier
    or QI to apply the model to, so its best guess about any citizen is the same for everyone:
    the population prevalence (granting it that). Computed, not assumed: a constant score on
    the central operator's rows `targets` (n, T), whose baseline (the QIs, which the server
    does not hold) it shows beside.
    """
    constant = np.broadcast_to(np.nanmean(targets, axis=0), targets.shape).copy()
    own = figures(targets, constant, constant)
    return [
        InferenceFigure(
            n_rows=mine.n_rows,
            prevalence=mine.prevalence,
            auc=mine.auc,
            auc_baseline=theirs.auc_baseline,
            advantage=mine.auc - theirs.auc_baseline,
            watch_list_precision=mine.watch_list_precision,
            watch_list_precision_baseline=theirs.watch_list_precision_baseline,
        )
        for mine, theirs in zip(own, central, strict=True)
    ]
