"""A regime retrained with another training seed: the floor under every tier change.

Same world, same rows, same (tuned) hyperparameters, only the training seed differs (initial
weights and batch order: `clients.streams.retrain_seed`). The share of citizens whose tier
moves between the two is what retraining alone does, so a tier change between regimes means
something only above it. A federated regime is retrained by the in-process FedAvg that a test
shows equal to the federation (`experiments.regimes.tuning.fedavg_model`); a DP regime has no
floor here (its noise is part of the regime, and re-running the federation doubles its cost).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from clients.participant import ModelSpec
from clients.streams import local_model_seed, retrain_seed
from clients.training import predict_default
from experiments.config import ExperimentConfig
from experiments.regimes.standalone import (
    LOCAL_ONLY,
    UNIFIED,
    Holdout,
    RegimeOutput,
    common_features,
    firm_features,
    fit_model,
    score_firm_pairs,
    unified_features,
)
from experiments.regimes.tuning import fedavg_model, tuned_training
from experiments.world.tables import ID, LABEL, World


def _by_pairs(by_id: pd.Series, pairs: pd.DataFrame, rows: np.ndarray | None = None) -> np.ndarray:
    chosen = pairs if rows is None else pairs.loc[rows]
    return by_id.reindex(chosen[ID].to_numpy()).to_numpy()


FederatedFloors = dict[tuple[int, int, float, float], RegimeOutput]
"""Federated floors of one run by (seed, rounds, learning rate, weight decay): every non-DP
federated regime of a seed shares its tuning, so its floor is one and the same model."""


def retrained(
    world: World,
    holdout: Holdout,
    config: ExperimentConfig,
    seed: int,
    output: RegimeOutput,
    federated_floors: FederatedFloors | None = None,
) -> RegimeOutput | None:
    """The regime of `output` retrained with `retrain_seed(seed)`, scored on the same held-out
    and validation pairs; None where there is no floor (no tuning record, or a DP regime).
    A federated floor already in `federated_floors` is reused (and a new one kept there)."""
    tuning = output.info.get("tuning")
    if not isinstance(tuning, dict) or "dp" in output.info:
        return None
    other = retrain_seed(seed)
    if output.name == UNIFIED:
        table, features = unified_features(world, str(tuning.get("design", "blocks")))
        fit = holdout.is_fit(table[ID].to_numpy())
        model = fit_model(
            config,
            features[fit],
            table[LABEL].to_numpy()[fit],
            other,
            tuned_training(config.training, tuning),
        )
        by_id = pd.Series(predict_default(model, features), index=table[ID].to_numpy())
        return RegimeOutput(
            output.name,
            _by_pairs(by_id, holdout.pairs),
            validation_probabilities=_by_pairs(by_id, holdout.validation_pairs),
        )
    test = np.full(len(holdout.pairs), np.nan)
    validation = np.full(len(holdout.validation_pairs), np.nan)
    if output.name == LOCAL_ONLY:
        for index, (firm, table) in enumerate(world.firms.items()):
            if firm not in tuning:  # a base-rate firm: nothing to retrain
                model = output.models[firm]
            else:
                features = firm_features(world, firm, table)
                fit = holdout.is_fit(table[ID].to_numpy())
                model = fit_model(
                    config,
                    features[fit],
                    table[LABEL].to_numpy()[fit],
                    local_model_seed(other, index),
                    tuned_training(config.training, tuning[firm]),
                )
            score_firm_pairs(
                firm, model, firm_features(world, firm, table), table, holdout, test, validation
            )
        return RegimeOutput(output.name, test, validation_probabilities=validation)
    rate, decay = float(tuning["learning_rate"]), float(tuning["weight_decay"])
    key = (seed, int(tuning["passes"]), rate, decay)
    if federated_floors is not None and key in federated_floors:
        floor = federated_floors[key]
        shared = floor.validation_probabilities
        return RegimeOutput(output.name, floor.probabilities, validation_probabilities=shared)
    shards = {}
    for firm, table in world.firms.items():
        fit = holdout.is_fit(table[ID].to_numpy())
        shards[firm] = (common_features(world, firm, table)[fit], table[LABEL].to_numpy()[fit])
    n_features = next(iter(shards.values()))[0].shape[1]
    federation = config.federation.model_copy(update={"rounds": tuning["passes"]})
    model = fedavg_model(
        ModelSpec(config.model.kind, n_features, config.model.hidden, other),
        shards,
        tuned_training(config.training, tuning),
        federation,
        other,
    )
    for firm, table in world.firms.items():
        score_firm_pairs(
            firm, model, common_features(world, firm, table), table, holdout, test, validation
        )
    floor = RegimeOutput(output.name, test, validation_probabilities=validation)
    if federated_floors is not None:
        federated_floors[key] = floor
    return floor
