"""Attribute inference: how much a released score adds to guessing a sensitive attribute.

The attacker holds auxiliary data (citizens whose quasi-identifiers, score and sensitive
attribute it knows) and learns to predict the attribute twice with the same learner: from
quasi-identifiers only (the imputation baseline anyone with a census table has) and from the
score plus quasi-identifiers. The score's leakage is the difference.

Protocol, on the auxiliary rows:
- Encodings use no attribute labels, so they are fitted once on all rows: every quasi-identifier
  is categorical (age included: one level per year, so no shape is assumed), one-hot for
  logistic regression and one code per column for boosting; the score enters as its normal
  scores (rank-based, so points and probabilities give the same result; a linear term that
  resolves a rare attribute in either tail) plus a cubic B-spline basis on its CDF scale, so a
  score that reveals the attribute only in both tails (non-monotonically) is still caught by a
  linear learner.
- Stratified K-fold cross-validation (default 5, shuffled with `seed`): every row is predicted
  by a model that never saw it. AUC is computed on the pooled out-of-fold probabilities.
- Hard decisions for G-mean and MCC: in each fold, the threshold maximising Youden's J
  (TPR − FPR) on that fold's training rows (in-sample predictions), applied to its held-out rows.
  Youden's J weighs both classes equally whatever the prevalence, which is what G-mean and MCC
  then judge; choosing it on training rows keeps the held-out labels unseen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import sparse
from sklearn.base import ClassifierMixin, clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import matthews_corrcoef, roc_auc_score, roc_curve
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import (
    OneHotEncoder,
    OrdinalEncoder,
    QuantileTransformer,
    SplineTransformer,
)
from threadpoolctl import threadpool_limits

Learner = Literal["logistic", "boosting"]

RARE_PREVALENCE = 0.10
"""Below this prevalence AUC alone flatters an attack (most rows are easy negatives), so the
result is flagged rare and G-mean and MCC of hard decisions are the figures to read."""

SCORE_SPLINE_KNOTS = 5
"""Knots of the score's spline basis on its CDF scale: quintile edges, enough for a U shape."""

_SCORE_QUANTILES = 1_000
_MAX_BOOSTING_LEVELS = 255
"""scikit-learn's histogram boosting bins a categorical feature into at most 255 categories."""


@dataclass(frozen=True)
class AttributeResult:
    """One sensitive attribute attacked through one released score.

    auc_*: out-of-fold AUC; advantage = auc_score_and_qi − auc_qi_only. g_mean_* and mcc_*:
    of the Youden-J hard decisions, computed for every attribute, to be read where `rare`.
    """

    n_rows: int
    prevalence: float
    rare: bool
    learner: Learner
    n_folds: int
    auc_score_and_qi: float
    auc_qi_only: float
    advantage: float
    g_mean_score_and_qi: float
    g_mean_qi_only: float
    mcc_score_and_qi: float
    mcc_qi_only: float

    def to_json(self) -> dict[str, Any]:
        def plain(value: object) -> object:
            if isinstance(value, float):
                return value if math.isfinite(value) else None
            return value

        return {name: plain(getattr(self, name)) for name in self.__dataclass_fields__}


def _learner(kind: Learner, seed: int, n_quasi_identifiers: int) -> ClassifierMixin:
    if kind == "logistic":
        return LogisticRegression(C=1.0, max_iter=2_000)
    if kind == "boosting":
        # QI codes first (native categorical splits), then the score columns (numeric).
        return HistGradientBoostingClassifier(
            categorical_features=list(range(n_quasi_identifiers)), random_state=seed
        )
    raise ValueError(f"learner must be 'logistic' or 'boosting', got {kind!r}")


def _quasi_identifier_text(quasi_identifiers: pd.DataFrame) -> npt.NDArray[np.str_]:
    """Every column read as strings, so categories, integer codes and ages encode alike."""
    return np.asarray(quasi_identifiers.astype(str).to_numpy(), dtype=np.str_)


def score_design(scores: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Normal scores (a linear term resolving both tails) plus a spline basis on the CDF scale."""
    n_quantiles = min(_SCORE_QUANTILES, len(scores))
    as_column = scores[:, None]
    # subsample=None: by default the quantiles come from a random 10,000 rows drawn with the
    # global NumPy RNG (random_state=None), so above 10,000 rows the design, and every figure,
    # changed from one call to the next. All rows: exact quantiles, no randomness.
    normal = QuantileTransformer(
        n_quantiles=n_quantiles, output_distribution="normal", subsample=None
    )
    uniform = QuantileTransformer(
        n_quantiles=n_quantiles, output_distribution="uniform", subsample=None
    )
    basis = SplineTransformer(n_knots=SCORE_SPLINE_KNOTS, degree=3, knots="uniform")
    return np.hstack(
        [
            normal.fit_transform(as_column),
            basis.fit_transform(uniform.fit_transform(as_column)),
        ]
    )


def _designs(
    learner: Learner, quasi_identifiers: pd.DataFrame, scores: npt.NDArray[np.float64]
) -> tuple[Any, Any]:
    """(score + QI, QI only) feature matrices for `learner`.

    Logistic regression gets sparse one-hot QIs; boosting gets one integer code per QI and
    splits on categories natively, which is far faster than splitting dozens of one-hot columns.
    """
    text = _quasi_identifier_text(quasi_identifiers)
    score_columns = score_design(scores)
    if learner == "boosting":
        codes = OrdinalEncoder(dtype=np.float64).fit_transform(text)
        levels = codes.max(axis=0) + 1
        if (levels > _MAX_BOOSTING_LEVELS).any():
            column = quasi_identifiers.columns[int(np.argmax(levels))]
            raise ValueError(
                f"quasi-identifier {column!r} has {int(levels.max())} levels; learner='boosting' "
                f"takes at most {_MAX_BOOSTING_LEVELS}, use learner='logistic'"
            )
        return np.hstack([codes, score_columns]), codes
    one_hot = sparse.csr_matrix(OneHotEncoder(sparse_output=True).fit_transform(text))
    return sparse.hstack([one_hot, sparse.csr_matrix(score_columns)]).tocsr(), one_hot


def _youden_threshold(labels: npt.NDArray[np.int64], probabilities: npt.NDArray[Any]) -> float:
    fpr, tpr, thresholds = roc_curve(labels, probabilities)
    return float(thresholds[np.argmax(tpr - fpr)])


def _g_mean(labels: npt.NDArray[np.int64], decisions: npt.NDArray[np.bool_]) -> float:
    sensitivity = decisions[labels == 1].mean()
    specificity = (~decisions[labels == 0]).mean()
    return float(np.sqrt(sensitivity * specificity))


def _out_of_fold(
    design: sparse.csr_matrix | npt.NDArray[np.float64],
    labels: npt.NDArray[np.int64],
    folds: list[tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]],
    template: ClassifierMixin,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Out-of-fold probabilities (n,) and Youden-thresholded decisions (n,)."""
    probabilities = np.empty(len(labels), dtype=np.float64)
    decisions = np.empty(len(labels), dtype=bool)
    for train, held_out in folds:
        model = clone(template).fit(design[train], labels[train])
        threshold = _youden_threshold(labels[train], model.predict_proba(design[train])[:, 1])
        probabilities[held_out] = model.predict_proba(design[held_out])[:, 1]
        decisions[held_out] = probabilities[held_out] >= threshold
    return probabilities, decisions


def attribute_inference(
    scores: npt.ArrayLike,
    quasi_identifiers: pd.DataFrame,
    attribute: npt.ArrayLike,
    seed: int,
    learner: Learner = "logistic",
    n_folds: int = 5,
) -> AttributeResult:
    """Predict a binary sensitive attribute from (score + QIs) and from QIs alone; compare.

    scores: (n,) released score (probability or points; only its order matters);
    quasi_identifiers: n rows, one column per quasi-identifier; attribute: (n,) in {0, 1}.
    """
    score_values = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(attribute)
    if score_values.ndim != 1 or not np.isfinite(score_values).all():
        raise ValueError(f"scores must be a finite 1-D array (n,), got shape {score_values.shape}")
    if labels.shape != score_values.shape:
        raise ValueError(f"attribute must have the scores' shape {score_values.shape}")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("attribute must be binary, 0 or 1")
    if len(quasi_identifiers) != len(score_values) or quasi_identifiers.shape[1] == 0:
        raise ValueError(
            f"quasi_identifiers must have {len(score_values)} rows and at least one column, "
            f"got shape {quasi_identifiers.shape}"
        )
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    labels = labels.astype(np.int64)
    smaller_class = int(min(labels.sum(), len(labels) - labels.sum()))
    if smaller_class < n_folds:
        raise ValueError(
            f"attribute needs at least n_folds={n_folds} rows of each value, "
            f"its rarer value has {smaller_class}"
        )
    template = _learner(learner, seed, quasi_identifiers.shape[1])
    designs = _designs(learner, quasi_identifiers, score_values)
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    folds = list(splitter.split(np.zeros(len(labels)), labels))

    # One thread per pool: idle OpenMP and BLAS threads busy-wait, and on a 2-core machine that
    # runs other work too, a 2-thread fit of this size was measured 10-30x slower.
    with threadpool_limits(limits=1):
        (full_probabilities, full_decisions), (qi_probabilities, qi_decisions) = (
            _out_of_fold(design, labels, folds, template) for design in designs
        )
    auc_full = float(roc_auc_score(labels, full_probabilities))
    auc_qi = float(roc_auc_score(labels, qi_probabilities))
    prevalence = float(labels.mean())
    return AttributeResult(
        n_rows=len(labels),
        prevalence=prevalence,
        rare=prevalence < RARE_PREVALENCE or prevalence > 1.0 - RARE_PREVALENCE,
        learner=learner,
        n_folds=n_folds,
        auc_score_and_qi=auc_full,
        auc_qi_only=auc_qi,
        advantage=auc_full - auc_qi,
        g_mean_score_and_qi=_g_mean(labels, full_decisions),
        g_mean_qi_only=_g_mean(labels, qi_decisions),
        mcc_score_and_qi=float(matthews_corrcoef(labels, full_decisions)),
        mcc_qi_only=float(matthews_corrcoef(labels, qi_decisions)),
    )
