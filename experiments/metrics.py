"""Utility metrics of a default prediction, and summaries over seeds.

Pure functions over arrays; sklearn does the ROC and Brier work.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats
from sklearn.metrics import brier_score_loss, roc_auc_score, roc_curve


def ks_statistic(labels: np.ndarray, scores: np.ndarray) -> float:
    """Kolmogorov–Smirnov: the largest gap between the score CDFs of defaulters and others."""
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(np.max(tpr - fpr))


def expected_calibration_error(
    labels: np.ndarray, probabilities: np.ndarray, bins: int = 10
) -> float:
    """Mean |observed rate − predicted probability| over equal-mass bins, weighted by bin size."""
    order = np.argsort(probabilities, kind="stable")
    chunks = np.array_split(order, min(bins, len(order)))
    gaps = [abs(labels[c].mean() - probabilities[c].mean()) * len(c) for c in chunks if len(c)]
    return float(sum(gaps) / len(labels))


def utility(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """AUC, KS, Brier and ECE of predicted default probabilities; labels (rows,) in {0, 1}."""
    labels = np.asarray(labels).astype(np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if labels.shape != probabilities.shape:
        raise ValueError(f"labels {labels.shape} and probabilities {probabilities.shape} differ")
    if len(np.unique(labels)) < 2:
        nan = float("nan")
        return {
            "auc": nan,
            "ks": nan,
            "brier": float(brier_score_loss(labels, probabilities)),
            "ece": nan,
        }
    return {
        "auc": float(roc_auc_score(labels, probabilities)),
        "ks": ks_statistic(labels, probabilities),
        "brier": float(brier_score_loss(labels, probabilities)),
        "ece": expected_calibration_error(labels, probabilities),
    }


def summarise(
    per_seed: Sequence[float],
    confidence: float = 0.95,
    bounds: tuple[float, float] | None = None,
) -> dict[str, object]:
    """Mean, Student-t interval over seeds, and the per-seed values themselves.

    One seed gives an interval of [mean, mean]: there is no spread to estimate, and saying so
    beats inventing one. A metric with `bounds` (an AUC in [0, 1], a difference of two in
    [-1, 1]) gets its interval clipped to them: a t interval over three seeds can otherwise
    run past 1.
    """
    values = np.asarray(per_seed, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return {"mean": None, "ci95": [None, None], "per_seed": [None] * len(values)}
    mean = float(finite.mean())
    if finite.size > 1:
        half = float(
            stats.t.ppf(0.5 + confidence / 2, finite.size - 1)
            * finite.std(ddof=1)
            / math.sqrt(finite.size)
        )
    else:
        half = 0.0
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return {
        "mean": mean,
        "ci95": [low, high],
        "per_seed": [float(v) if math.isfinite(v) else None for v in values],
    }
