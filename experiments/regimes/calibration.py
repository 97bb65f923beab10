"""Each regime's PD calibrated on the validation citizens before it becomes points and tiers.

A score trained to a validation-loss minimum can still be off in level or spread (an
under-trained model squeezes PDs toward the mean; a penalised one flattens them), and the
tiers sit at fixed PDs, so an uncalibrated score moves citizens across tiers for reasons that
have nothing to do with the regime. Platt scaling (a logistic regression of the label on the
PD's logit, fitted on the validation pairs, which no model trained on) is monotone, so it
changes no ranking metric (AUC, KS) and only the level and spread that decisions read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression

from experiments.metrics import expected_calibration_error

_EDGE = 1e-6
"""PDs are clipped to [edge, 1 - edge] before their logit is taken."""


def _logit(probabilities: np.ndarray) -> np.ndarray:
    p = np.clip(probabilities, _EDGE, 1 - _EDGE)
    logits: np.ndarray = np.log(p / (1 - p))
    return logits


@dataclass(frozen=True)
class PlattCalibrator:
    """calibrated PD = sigmoid(slope * logit(PD) + intercept)."""

    slope: float
    intercept: float

    @classmethod
    def fit(cls, probabilities: np.ndarray, labels: np.ndarray) -> PlattCalibrator:
        """Fitted on the validation pairs; a one-class validation set leaves the PD as it is."""
        if len(np.unique(labels)) < 2:
            return cls(1.0, 0.0)
        model = LogisticRegression(C=1e6, max_iter=1000)  # (near) unpenalised, deterministic
        model.fit(_logit(probabilities)[:, None], labels.astype(int))
        return cls(float(model.coef_[0, 0]), float(model.intercept_[0]))

    def __call__(self, probabilities: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.slope * _logit(probabilities) + self.intercept)))


def calibration_figures(
    calibrator: PlattCalibrator, labels: np.ndarray, raw: np.ndarray, calibrated: np.ndarray
) -> dict[str, float]:
    """ECE on the held-out pairs before and after, and the fitted map."""
    return {
        "ece_before": expected_calibration_error(labels, raw),
        "ece_after": expected_calibration_error(labels, calibrated),
        "mean_pd_before": float(np.mean(raw)),
        "mean_pd_after": float(np.mean(calibrated)),
        "slope": calibrator.slope,
        "intercept": calibrator.intercept,
    }
