"""The attacks on each regime's released score: membership inference and attribute inference.

Membership: the candidates are training rows (members) and held-out rows (non-members) of the
regime; the loss attack reads the released model's loss, online LiRA compares it with shadow
models trained by the same recipe on the rows outside the pool plus a random half of it.
Regimes whose recipes coincide (federated with and without secure aggregation: the sum is the
same) share their shadows, so the costly part runs once.

Attribute: one held-out row per citizen, the released score plus the quasi-identifiers an
outsider knows, against the quasi-identifiers alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from clients.model import BaseRateScore, get_weights, set_weights, unflatten_weights
from clients.participant import FirmData, ModelSpec, local_round, read_contribution_sum
from clients.training import DPSettings, predict_default
from experiments.config import ExperimentConfig
from experiments.leakage.attribute import attribute_inference
from experiments.leakage.decisions import protected_groups
from experiments.leakage.membership import (
    attack_scores_loss,
    binary_cross_entropy,
    lira_online,
    roc_summary,
)
from experiments.regimes import (
    LOCAL_ONLY,
    UNIFIED,
    Holdout,
    RegimeOutput,
    common_features,
    firm_features,
    fit_model,
    national_database,
    scaler_for,
    settings_of,
)
from experiments.tables import ID, LABEL, World
from server.optimiser import FedAdam, FedAvg

ShadowTrainer = Callable[[np.ndarray, int], np.ndarray]


@dataclass
class MembershipSurface:
    """A released model laid open for membership inference on a pool of candidate rows.

    labels, is_member, target_probabilities: (pool,). `recipe` names the training procedure:
    surfaces with the same recipe (and pool) can share shadow models.
    """

    labels: np.ndarray
    is_member: np.ndarray
    target_probabilities: np.ndarray
    train_and_score: ShadowTrainer
    recipe: str


def _pool(is_member_universe: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of a balanced pool: up to size/2 members and as many non-members."""
    members = np.flatnonzero(is_member_universe)
    others = np.flatnonzero(~is_member_universe)
    half = min(size // 2, len(members), len(others))
    return np.sort(
        np.concatenate(
            [rng.choice(members, half, replace=False), rng.choice(others, half, replace=False)]
        )
    )


def _fit_predict(
    config: ExperimentConfig,
    features: np.ndarray,
    labels: np.ndarray,
    pool_x: np.ndarray,
    seed: int,
) -> np.ndarray:
    return predict_default(fit_model(config, features, labels, seed), pool_x)


def unified_surface(
    world: World, holdout: Holdout, config: ExperimentConfig, seed: int, model: nn.Module
) -> MembershipSurface:
    """Candidates are citizens of the national database; the recipe is one central fit."""
    table, columns = national_database(world)
    features = scaler_for(columns, table).transform(table)
    labels = table[LABEL].to_numpy().astype(np.float32)
    train = ~holdout.is_test(table[ID].to_numpy())
    pool = _pool(train, config.membership.pool, np.random.default_rng([seed, 0x3E3B]))
    rest = np.setdiff1d(np.flatnonzero(train), pool)

    def train_and_score(mask: np.ndarray, shadow: int) -> np.ndarray:
        rows = np.concatenate([rest, pool[mask]])
        return _fit_predict(
            config, features[rows], labels[rows], features[pool], seed + 7919 * (shadow + 1)
        )

    return MembershipSurface(
        labels=labels[pool],
        is_member=train[pool],
        target_probabilities=predict_default(model, features[pool]),
        train_and_score=train_and_score,
        recipe=UNIFIED,
    )


@dataclass(frozen=True)
class _FirmRows:
    """All rows of all firms, flattened: which firm, which features, member or not."""

    firm: np.ndarray  # (rows,) firm index
    features: list[np.ndarray]  # per firm (firm rows, d)
    offsets: np.ndarray  # first flat row of each firm
    labels: np.ndarray  # (rows,)
    train: np.ndarray  # (rows,) bool


def _firm_rows(
    world: World, holdout: Holdout, featurise: Callable[[World, str, pd.DataFrame], np.ndarray]
) -> _FirmRows:
    features = [featurise(world, f, t) for f, t in world.firms.items()]
    sizes = np.array([len(t) for t in world.firms.values()])
    return _FirmRows(
        firm=np.repeat(np.arange(len(sizes)), sizes),
        features=features,
        offsets=np.concatenate([[0], np.cumsum(sizes)[:-1]]),
        labels=np.concatenate([t[LABEL].to_numpy() for t in world.firms.values()]).astype(
            np.float32
        ),
        train=np.concatenate([~holdout.is_test(t[ID].to_numpy()) for t in world.firms.values()]),
    )


def _rows_of(rows: _FirmRows, flat: np.ndarray, firm: int) -> np.ndarray:
    return flat[rows.firm[flat] == firm] - rows.offsets[firm]


def local_surface(
    world: World,
    holdout: Holdout,
    config: ExperimentConfig,
    seed: int,
    models: dict[str, nn.Module],
) -> MembershipSurface:
    """Candidates are (firm, citizen) rows; each firm's own model is attacked on its own rows."""
    rows = _firm_rows(world, holdout, firm_features)
    pool = _pool(rows.train, config.membership.pool, np.random.default_rng([seed, 0x10CA]))
    rest = np.setdiff1d(np.flatnonzero(rows.train), pool)
    firms = list(world.firms)

    def predict_pool(predict: Callable[[int, np.ndarray], np.ndarray]) -> np.ndarray:
        out = np.empty(len(pool))
        for index in range(len(firms)):
            in_firm = rows.firm[pool] == index
            out[in_firm] = predict(index, rows.features[index][pool[in_firm] - rows.offsets[index]])
        return out

    def train_and_score(mask: np.ndarray, shadow: int) -> np.ndarray:
        chosen = np.concatenate([rest, pool[mask]])
        shadows: dict[int, nn.Module] = {}
        for index in range(len(firms)):
            local = _rows_of(rows, chosen, index)
            y = rows.labels[rows.offsets[index] + local]
            if len(np.unique(y)) < 2:
                shadows[index] = BaseRateScore((y.sum() + 1.0) / (len(y) + 2.0))
            else:
                shadows[index] = fit_model(
                    config, rows.features[index][local], y, seed + 104729 * (shadow + 1) + index
                )
        return predict_pool(lambda i, x: predict_default(shadows[i], x))

    return MembershipSurface(
        labels=rows.labels[pool],
        is_member=rows.train[pool],
        target_probabilities=predict_pool(lambda i, x: predict_default(models[firms[i]], x)),
        train_and_score=train_and_score,
        recipe=LOCAL_ONLY,
    )


def fedavg_in_process(
    firm_data: list[FirmData],
    spec: ModelSpec,
    config: ExperimentConfig,
    seed: int,
    dp_epsilon: float = 0.0,
) -> np.ndarray:
    """FedAvg with the federation's settings, without a transport: for shadow models only.

    Secure aggregation returns the same sum (up to quantisation), so one recipe serves the
    regimes with and without it.
    """
    f = config.federation
    settings = replace(settings_of(config), epochs=f.local_epochs)
    optimiser: FedAvg | FedAdam = (
        FedAvg(f.server_learning_rate)
        if f.optimiser == "fedavg"
        else FedAdam(f.server_learning_rate)
    )
    dp = (
        DPSettings(dp_epsilon, f.dp_delta, f.dp_max_grad_norm, f.rounds) if dp_epsilon > 0 else None
    )
    weights = spec.initial_weights()
    for round_number in range(f.rounds):
        total = sum(
            local_round(
                data,
                spec,
                weights,
                settings,
                f.weight_scale,
                seed=seed + 1009 * round_number + index,
                dp=dp,
                completed_rounds=round_number,
            ).contribution
            for index, data in enumerate(firm_data)
        )
        weights = optimiser.step(weights, read_contribution_sum(total, f.weight_scale).mean_update)
    return weights


def federated_surface(
    world: World,
    holdout: Holdout,
    config: ExperimentConfig,
    seed: int,
    model: nn.Module,
    dp_epsilon: float,
) -> MembershipSurface:
    """Candidates are (firm, citizen) rows; the recipe is FedAvg over the firms' common columns."""
    rows = _firm_rows(world, holdout, common_features)
    pool = _pool(rows.train, config.membership.pool, np.random.default_rng([seed, 0xFEDA]))
    rest = np.setdiff1d(np.flatnonzero(rows.train), pool)
    firms = list(world.firms)
    spec = ModelSpec(config.model.kind, rows.features[0].shape[1], config.model.hidden, seed)
    # Flat rows are grouped by firm in firm order, so a sorted pool concatenates per firm.
    pool_x = np.concatenate([rows.features[i][_rows_of(rows, pool, i)] for i in range(len(firms))])

    def train_and_score(mask: np.ndarray, shadow: int) -> np.ndarray:
        chosen = np.concatenate([rest, pool[mask]])
        data = []
        for index, firm in enumerate(firms):
            local = _rows_of(rows, chosen, index)
            if len(local) == 0:
                continue
            x, y = rows.features[index][local], rows.labels[rows.offsets[index] + local]
            data.append(FirmData(firm, (), x, y, x, y))
        weights = fedavg_in_process(data, spec, config, seed + 15485863 * (shadow + 1), dp_epsilon)
        shadow_model = spec.build()
        set_weights(shadow_model, unflatten_weights(weights, get_weights(shadow_model)))
        return predict_default(shadow_model, pool_x)

    return MembershipSurface(
        labels=rows.labels[pool],
        is_member=rows.train[pool],
        target_probabilities=predict_default(model, pool_x),
        train_and_score=train_and_score,
        recipe=f"federated_dp_eps{dp_epsilon:g}" if dp_epsilon > 0 else "federated",
    )


def _cached(surface: MembershipSurface, cache: dict[tuple[str, int], np.ndarray]) -> ShadowTrainer:
    """Shadow predictions by (recipe, shadow index): equal recipes draw the same pool and halves."""

    def trainer(mask: np.ndarray, shadow: int) -> np.ndarray:
        key = (surface.recipe, shadow)
        if key not in cache:
            cache[key] = np.asarray(surface.train_and_score(mask, shadow))
        return cache[key]

    return trainer


def membership_figures(
    surface: MembershipSurface,
    config: ExperimentConfig,
    seed: int,
    cache: dict[tuple[str, int], np.ndarray],
) -> dict[str, Any]:
    """The loss attack and online LiRA on one surface, scored against the known membership.

    `cache` lives for one seed: a second surface with the same recipe reuses its shadows.
    """
    losses = binary_cross_entropy(surface.labels, surface.target_probabilities)
    results = {"loss": roc_summary(attack_scores_loss(losses), surface.is_member).to_json()}
    if config.membership.shadows:
        lira = lira_online(
            surface.labels,
            surface.target_probabilities,
            _cached(surface, cache),
            n_shadows=config.membership.shadows,
            seed=seed,
        )
        results["lira"] = roc_summary(lira.scores, surface.is_member).to_json()
    return results


def membership_surface(
    world: World, holdout: Holdout, config: ExperimentConfig, seed: int, output: RegimeOutput
) -> MembershipSurface:
    """The surface of a regime's released model(s), by regime."""
    if output.name == UNIFIED:
        return unified_surface(world, holdout, config, seed, output.models["national"])
    if output.name == LOCAL_ONLY:
        return local_surface(world, holdout, config, seed, output.models)
    epsilon = float(output.info.get("dp", {}).get("target_epsilon", 0.0))
    return federated_surface(world, holdout, config, seed, output.models["global"], epsilon)


def attribute_figures(
    world: World, holdout: Holdout, output: RegimeOutput, seed: int
) -> dict[str, Any]:
    """Each sensitive attribute from (released probability + QIs) vs QIs alone.

    One held-out row per citizen (drawn at random among the firms that score them), so no
    citizen sits in two cross-validation folds.
    """
    rng = np.random.default_rng([seed, 0xA771])
    order = rng.permutation(len(holdout.pairs))
    first = np.sort(order[~holdout.pairs[ID].iloc[order].duplicated().to_numpy()])
    ids = holdout.pairs[ID].to_numpy()[first]
    qi_names = [c.name for c in world.columns_of("truth", {"quasi-identifier"})]
    quasi_identifiers = world.truth.set_index(ID).loc[ids, qi_names].reset_index(drop=True)
    sensitive = {c.name for c in world.columns_of("truth", {"sensitive"})}
    groups = {
        name: mask
        for name, mask in protected_groups(world, ids).items()
        if name.split("=")[0] in sensitive
    }
    results = {}
    for name, mask in groups.items():
        if min(mask.sum(), (~mask).sum()) < 5:
            continue  # too few in one class to cross-validate; left out rather than guessed
        results[name] = attribute_inference(
            output.probabilities[first], quasi_identifiers, mask.astype(np.int64), seed
        ).to_json()
    return results
