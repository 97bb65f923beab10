"""One regime's figures for one seed, on the held-out pairs every regime shares.

Utility (pooled, per firm, within firm), decisions read after calibration on the validation
pairs (tiers and group gaps, against unified, the true PD's tier and the regime's retraining
floor), a reference model's utility, and what a DP regime spent.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from experiments.config import ExperimentConfig
from experiments.leakage.citizens import citizen_privacy
from experiments.leakage.decisions import decision_metrics
from experiments.metrics import utility
from experiments.regimes.standalone import Holdout, RegimeOutput
from experiments.world.tables import ID, LABEL, World


def evaluate(
    world: World,
    holdout: Holdout,
    output: RegimeOutput,
    config: ExperimentConfig,
    groups: dict[str, np.ndarray],
    reference: RegimeOutput | None,
    retrained: RegimeOutput | None = None,
) -> dict[str, Any]:
    """One regime's figures for one seed, all on the same held-out pairs.

    utility over every pair and per firm over its own held-out customers; decisions (tiers and
    group gaps), with tier changes against `reference` (the unified score) when there is one,
    against the true PD's tier and against `retrained` (the regime's retraining noise floor).
    Decisions read each score after calibration on the validation pairs (`calibrated`).
    """
    labels = holdout.pairs[LABEL].to_numpy()
    firms = holdout.pairs["firm"].to_numpy()
    per_firm = {
        firm: utility(labels[firms == firm], output.probabilities[firms == firm])
        for firm in dict.fromkeys(firms)
    }
    decided, calibration = calibrated(holdout, output)
    decisions = decision_metrics(
        holdout.pairs,
        decided,
        groups,
        config.scorecard,
        reference_probabilities=None if reference is None else calibrated(holdout, reference)[0],
        truth_probabilities=true_default_probabilities(world, holdout),
        retrained_probabilities=None if retrained is None else calibrated(holdout, retrained)[0],
    )
    figures = reference_figures(holdout, output) | {"per_firm": per_firm, "decisions": decisions}
    if calibration is not None:
        figures["calibration"] = calibration
    return figures


def reference_figures(holdout: Holdout, output: RegimeOutput) -> dict[str, Any]:
    """A reference model's utility on the held-out pairs (it is not released: no attacks)."""
    labels = holdout.pairs[LABEL].to_numpy()
    firms = holdout.pairs["firm"].to_numpy()
    return {
        "utility": utility(labels, output.probabilities),
        "within_firm_auc": within_firm_auc(labels, output.probabilities, firms),
    }


def within_firm_auc(labels: np.ndarray, probabilities: np.ndarray, firms: np.ndarray) -> float:
    """Each firm's AUC over its own held-out customers, averaged weighted by their number:
    what a score ranks within a firm, which firm identity cannot help with (NaN if no firm
    has both classes)."""
    aucs, weights = [], []
    for firm in dict.fromkeys(firms):
        rows = firms == firm
        if len(np.unique(labels[rows])) == 2:
            aucs.append(utility(labels[rows], probabilities[rows])["auc"])
            weights.append(rows.sum())
    return float(np.average(aucs, weights=weights)) if aucs else float("nan")


TRUE_PD = "default_probability"
"""The truth column holding each citizen's true PD (synthetic worlds only)."""


def true_default_probabilities(world: World, holdout: Holdout) -> np.ndarray | None:
    """The true PD of every held-out pair, where the world knows it."""
    if TRUE_PD not in world.truth.columns:
        return None
    by_id = world.truth.set_index(ID)[TRUE_PD].astype(np.float64)
    return by_id.reindex(holdout.pairs[ID].to_numpy()).to_numpy()


def score_points(probabilities: np.ndarray, config: ExperimentConfig) -> np.ndarray:
    """The released score: each PD on the experiment's scorecard."""
    from clients.scorecard import score_from_default_probability

    card = config.scorecard
    return score_from_default_probability(probabilities, card.base_score, card.base_odds, card.pdo)


def calibrated(
    holdout: Holdout, output: RegimeOutput
) -> tuple[np.ndarray, dict[str, float] | None]:
    """The PDs decisions read: Platt-calibrated on the validation pairs when there are any
    (with the before/after figures), else the raw ones."""
    validation = output.validation_probabilities
    if validation is None or len(validation) == 0:
        return output.probabilities, None
    from experiments.regimes.calibration import PlattCalibrator, calibration_figures

    calibrator = PlattCalibrator.fit(validation, holdout.validation_pairs[LABEL].to_numpy())
    decided = calibrator(output.probabilities)
    labels = holdout.pairs[LABEL].to_numpy()
    return decided, calibration_figures(calibrator, labels, output.probabilities, decided)


def privacy_spent(
    dp: dict[str, Any], world: World, holdout: Holdout, config: ExperimentConfig
) -> dict[str, float | str]:
    """The largest ε any firm spent (its guarantee is the weakest), with the target, δ and where
    the noise came from; then ε per citizen, composed over the firms each one is in."""
    spent = [float(firm["epsilon"]) for firm in dp["per_firm"].values() if firm.get("epsilon")]
    firm_ids = {
        firm: table[ID].to_numpy()[holdout.is_fit(table[ID].to_numpy())]
        for firm, table in world.firms.items()
    }
    citizens = citizen_privacy(
        firm_ids,
        dp["per_firm"],
        config.training.batch_size,
        config.federation.local_epochs,
        float(dp["delta"]),
    )
    return {
        "target_epsilon": float(dp["target_epsilon"]),
        "epsilon": max(spent) if spent else float("nan"),
        **citizens,
        "delta": float(dp["delta"]),
        "noise": str(dp["noise"]),
    }
