"""The federated limit: one central model on every firm's rows, with the common columns only.

This is the model FedAvg approximates: the same rows and the same features as the federation,
with no federation in between. It is a reference, not a regime (no one would release it): the
gap from the federated score to it is what federating costs, and the gap from the unified
score to it is what the national join adds beyond pooling. It is tuned, validated and scored
exactly as the regimes are (`tuned_fit`, the validation and held-out pairs of the seed).
"""

from __future__ import annotations

import numpy as np

from experiments.config import ExperimentConfig
from experiments.paired import FEDERATED_LIMIT
from experiments.regimes.standalone import (
    Holdout,
    RegimeOutput,
    common_features,
    score_firm_pairs,
    tuned_fit,
)
from experiments.world.tables import ID, LABEL, World

__all__ = ["FEDERATED_LIMIT", "run_federated_limit"]


def run_federated_limit(
    world: World, holdout: Holdout, config: ExperimentConfig, seed: int
) -> RegimeOutput:
    """The central model on the stacked (firm, citizen) rows of every firm's common columns,
    scored on each held-out and validation pair with that firm's own columns."""
    features = {firm: common_features(world, firm, table) for firm, table in world.firms.items()}
    ids = {firm: table[ID].to_numpy() for firm, table in world.firms.items()}
    stacked = np.concatenate(list(features.values()))
    labels = np.concatenate([table[LABEL].to_numpy() for table in world.firms.values()])
    every_id = np.concatenate(list(ids.values()))
    model, tuning = tuned_fit(
        config,
        stacked,
        labels,
        holdout.is_fit(every_id),
        holdout.is_validation(every_id),
        seed,
    )
    test = np.full(len(holdout.pairs), np.nan)
    validation = np.full(len(holdout.validation_pairs), np.nan)
    for firm, table in world.firms.items():
        score_firm_pairs(firm, model, features[firm], table, holdout, test, validation)
    return RegimeOutput(
        FEDERATED_LIMIT,
        test,
        validation_probabilities=validation,
        models={"pooled": model},
        info={} if tuning is None else {"tuning": tuning},
    )
