"""Platt scaling on the validation pairs: monotone, and it repairs a mis-scaled PD."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments.metrics import expected_calibration_error
from experiments.regimes.calibration import PlattCalibrator


def _squeezed(seed: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """True PDs, and a score that squeezes them toward the mean (an under-trained model)."""
    rng = np.random.default_rng(seed)
    logit = rng.normal(-2.6, 1.2, rows)
    labels = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    squeezed = 1 / (1 + np.exp(-(0.4 * logit - 1.2)))
    return squeezed, labels


def test_calibration_repairs_a_squeezed_score_on_fresh_rows() -> None:
    # Prepare
    validation, validation_labels = _squeezed(0, 5_000)
    test, test_labels = _squeezed(1, 5_000)
    # Execute
    calibrator = PlattCalibrator.fit(validation, validation_labels)
    # Assert: the slope undoes the squeeze; ECE falls on rows it never saw
    assert 2.0 < calibrator.slope < 3.2
    before = expected_calibration_error(test_labels, test)
    after = expected_calibration_error(test_labels, calibrator(test))
    assert after < before / 2


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_calibration_keeps_the_ranking(seed: int) -> None:
    # Prepare
    scores, labels = _squeezed(seed, 400)
    # Execute
    calibrated = PlattCalibrator.fit(scores, labels)(scores)
    # Assert: a monotone map (ties stay ties), inside (0, 1)
    order = np.argsort(scores, kind="stable")
    assert np.all(np.diff(calibrated[order]) >= 0)
    assert np.all((calibrated > 0) & (calibrated < 1))


def test_one_class_validation_leaves_the_score_alone() -> None:
    # Prepare
    scores = np.array([0.1, 0.2, 0.3])
    # Execute
    calibrator = PlattCalibrator.fit(scores, np.zeros(3))
    # Assert
    assert np.allclose(calibrator(scores), scores)
