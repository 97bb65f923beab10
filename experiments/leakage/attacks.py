"""The attacks on each regime's released score: membership inference and attribute inference.

Membership: the candidates are citizens (`experiments.leakage.citizens`): training citizens
(members, every row at every firm trained on) and held-out citizens (non-members, none), matched
on their row profile so both sides default equally often. The loss attack reads the released
model's loss, online LiRA compares it with shadow models trained by the same recipe on the rows
of the citizens outside the pool plus every row of a random half of the pool's citizens. Each
attack is scored per row (the candidates' rows, each on its own) and per citizen (a citizen's
rows together). The k shadows of a recipe train side by side (`experiments.leakage.shadows`),
and regimes whose recipes coincide (every non-DP federated regime: see `federated_surface`)
share them, so the costly part runs once per seed; a DP regime's shadows train with its DP.

Attribute: one held-out row per citizen, the released score plus the quasi-identifiers an
outsider knows, against the quasi-identifiers alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from clients.participant import ModelSpec
from clients.settings import TrainSettings
from clients.streams import Stream, generator
from clients.training import predict_default
from experiments.config import ExperimentConfig
from experiments.leakage.attribute import attribute_inference
from experiments.leakage.citizens import CitizenPool, citizen_pool, per_citizen, per_citizen_mean
from experiments.leakage.decisions import inside_and_outside, protected_groups
from experiments.leakage.membership import (
    attack_scores_loss,
    binary_cross_entropy,
    lira_from_shadows,
    roc_summary,
    shadow_membership,
)
from experiments.leakage.shadows import (
    FirmShard,
    StackedDP,
    fedavg_stacked,
    predict_stacked,
    shadow_models,
    train_stacked,
)
from experiments.regimes.standalone import (
    LOCAL_ONLY,
    UNIFIED,
    Holdout,
    RegimeOutput,
    common_features,
    firm_features,
    unified_features,
)
from experiments.regimes.tuning import tuned_training
from experiments.world.tables import ID, LABEL, World

ShadowBatch = Callable[[np.ndarray], np.ndarray]
"""`train_all(membership (pool rows, k) bool) -> (pool rows, k)`: k shadows of the recipe, model
j on the rest rows plus the pool rows where membership[:, j], each predicting the pool rows."""


@dataclass
class MembershipSurface:
    """A released model laid open for membership inference on a pool of candidate citizens.

    labels, is_member, target_probabilities: (pool rows,), the rows of the pool's citizens
    (`citizens.rows`, in that order). `recipe` names the training procedure: surfaces with the
    same recipe draw the same pool and share their shadow models. `shadow_dp` is the DP-SGD the
    shadows train with, one per firm in world order (None: no DP).
    """

    labels: np.ndarray
    is_member: np.ndarray
    target_probabilities: np.ndarray
    train_all: ShadowBatch
    recipe: str
    citizens: CitizenPool
    shadow_dp: tuple[StackedDP, ...] | None = None


def _include(rest: np.ndarray, membership: np.ndarray) -> np.ndarray:
    """(rest + pool, k) training masks: every shadow has the rest, each its half of the pool."""
    return np.vstack([np.ones((len(rest), membership.shape[1]), dtype=bool), membership])


def _spec(config: ExperimentConfig, n_features: int, seed: int) -> ModelSpec:
    return ModelSpec(config.model.kind, n_features, config.model.hidden, seed)


def unified_surface(
    world: World,
    holdout: Holdout,
    config: ExperimentConfig,
    seed: int,
    model: nn.Module,
    design: str = "blocks",
) -> MembershipSurface:
    """Candidates are citizens of the national database; the recipe is one central fit."""
    table, features = unified_features(world, design)
    labels = table[LABEL].to_numpy().astype(np.float32)
    ids = table[ID].to_numpy()
    train = holdout.is_fit(ids)
    citizens = citizen_pool(
        ids, labels, train, config.membership.pool, generator(Stream.POOL_UNIFIED, seed)
    )
    pool, rest = citizens.rows, citizens.rest

    def train_all(membership: np.ndarray) -> np.ndarray:
        rows = np.concatenate([rest, pool])
        shadows = shadow_models(_spec(config, features.shape[1], seed), membership.shape[1], seed)
        train_stacked(
            shadows,
            features[rows],
            labels[rows],
            _include(rest, membership),
            config.training,
            seed,
        )
        return predict_stacked(shadows, features[pool])

    return MembershipSurface(
        labels=labels[pool],
        is_member=train[pool],
        target_probabilities=predict_default(model, features[pool]),
        train_all=train_all,
        recipe=UNIFIED,
        citizens=citizens,
    )


@dataclass(frozen=True)
class _FirmRows:
    """All rows of all firms, flattened firm after firm: features, labels, member or not."""

    firm: np.ndarray  # (rows,) firm index
    ids: np.ndarray  # (rows,) national id
    features: list[np.ndarray]  # per firm (firm rows, d)
    offsets: np.ndarray  # first flat row of each firm
    labels: np.ndarray  # (rows,)
    train: np.ndarray  # (rows,) bool

    def of(self, flat: np.ndarray, firm: int) -> np.ndarray:
        """The firm's own row numbers of the flat rows in `flat` that belong to it."""
        rows: np.ndarray = flat[self.firm[flat] == firm] - self.offsets[firm]
        return rows


def _firm_rows(
    world: World, holdout: Holdout, featurise: Callable[[World, str, pd.DataFrame], np.ndarray]
) -> _FirmRows:
    features = [featurise(world, f, t) for f, t in world.firms.items()]
    sizes = np.array([len(t) for t in world.firms.values()])
    return _FirmRows(
        firm=np.repeat(np.arange(len(sizes)), sizes),
        ids=np.concatenate([t[ID].to_numpy() for t in world.firms.values()]),
        features=features,
        offsets=np.concatenate([[0], np.cumsum(sizes)[:-1]]),
        labels=np.concatenate([t[LABEL].to_numpy() for t in world.firms.values()]).astype(
            np.float32
        ),
        train=np.concatenate([holdout.is_fit(t[ID].to_numpy()) for t in world.firms.values()]),
    )


def _citizen_pool(rows: _FirmRows, size: int, stream: Stream, seed: int) -> CitizenPool:
    return citizen_pool(rows.ids, rows.labels, rows.train, size, generator(stream, seed))


def _firm_shards(
    rows: _FirmRows, rest: np.ndarray, pool: np.ndarray, membership: np.ndarray
) -> list[FirmShard]:
    """Each firm's training rows for k shadows: its rest rows, and its pool rows where chosen."""
    shards = []
    for firm in range(len(rows.features)):
        own_rest, own_pool = rows.of(rest, firm), rows.of(pool, firm)
        local = np.concatenate([own_rest, own_pool])
        shards.append(
            FirmShard(
                features=rows.features[firm][local],
                labels=rows.labels[rows.offsets[firm] + local],
                include=_include(own_rest, membership[rows.firm[pool] == firm]),
            )
        )
    return shards


def local_surface(
    world: World,
    holdout: Holdout,
    config: ExperimentConfig,
    seed: int,
    models: dict[str, nn.Module],
    per_firm: dict[str, TrainSettings] | None = None,
) -> MembershipSurface:
    """Candidates are (firm, citizen) rows; each firm's own model is attacked on its own rows.

    `per_firm` holds a firm's tuned recipe where it differs from `[training]`."""
    rows = _firm_rows(world, holdout, firm_features)
    citizens = _citizen_pool(rows, config.membership.pool, Stream.POOL_LOCAL, seed)
    pool, rest = citizens.rows, citizens.rest
    firms = list(world.firms)
    in_firm = [rows.firm[pool] == index for index in range(len(firms))]

    def train_all(membership: np.ndarray) -> np.ndarray:
        out = np.empty(membership.shape)
        for index, shard in enumerate(_firm_shards(rows, rest, pool, membership)):
            pool_x = rows.features[index][rows.of(pool, index)]
            if len(np.unique(shard.labels)) < 2:  # as the regime: the base rate of its rows
                counts = shard.include.sum(0)
                out[in_firm[index]] = (shard.labels @ shard.include + 1.0) / (counts + 2.0)
                continue
            spec = _spec(config, shard.features.shape[1], seed + index)
            shadows = shadow_models(spec, membership.shape[1], seed + index)
            train_stacked(
                shadows,
                shard.features,
                shard.labels,
                shard.include,
                (per_firm or {}).get(firms[index], config.training),
                seed + index,
            )
            out[in_firm[index]] = predict_stacked(shadows, pool_x)
        return out

    target = np.empty(len(pool))
    for index, firm in enumerate(firms):
        target[in_firm[index]] = predict_default(
            models[firm], rows.features[index][rows.of(pool, index)]
        )
    return MembershipSurface(
        labels=rows.labels[pool],
        is_member=rows.train[pool],
        target_probabilities=target,
        train_all=train_all,
        recipe=LOCAL_ONLY,
        citizens=citizens,
    )


def federated_surface(
    world: World,
    holdout: Holdout,
    config: ExperimentConfig,
    seed: int,
    model: nn.Module,
    dp: tuple[StackedDP, ...] | None = None,
    recipe: str = "federated",
) -> MembershipSurface:
    """Candidates are citizens with their (firm, citizen) rows; the recipe is FedAvg over the
    firms' common columns.

    Every non-DP federated regime shares this recipe's shadows (secure aggregation returns the
    same sum). A DP regime's shadows train as its firms did, with `dp` (one per firm: the noise
    multiplier its own accountant chose, and the clipping norm), under a recipe of their own.
    """
    rows = _firm_rows(world, holdout, common_features)
    citizens = _citizen_pool(rows, config.membership.pool, Stream.POOL_FEDERATED, seed)
    pool, rest = citizens.rows, citizens.rest
    # Flat rows are grouped by firm in firm order, so a sorted pool concatenates per firm.
    pool_x = np.concatenate([rows.features[i][rows.of(pool, i)] for i in range(len(world.firms))])
    f = config.federation

    def train_all(membership: np.ndarray) -> np.ndarray:
        shadows = fedavg_stacked(
            _firm_shards(rows, rest, pool, membership),
            _spec(config, pool_x.shape[1], seed),
            membership.shape[1],
            settings=f.local_training(config.training),
            federation=f,
            seed=seed,
            dp=dp,
        )
        return predict_stacked(shadows, pool_x)

    return MembershipSurface(
        labels=rows.labels[pool],
        is_member=rows.train[pool],
        target_probabilities=predict_default(model, pool_x),
        train_all=train_all,
        recipe=recipe,
        citizens=citizens,
        shadow_dp=dp,
    )


def membership_figures(
    surface: MembershipSurface,
    config: ExperimentConfig,
    seed: int,
    cache: dict[str, np.ndarray],
) -> dict[str, Any]:
    """The loss attack and online LiRA on one surface, scored against the known membership,
    per row (`loss`, `lira`) and per citizen (`citizen_loss`: a citizen's mean row loss;
    `citizen_lira`: the sum of their rows' log-likelihood ratios).

    `cache` lives for one seed and maps a recipe to its shadows' (pool rows, k) predictions, so
    a second surface of the same recipe trains none.
    """
    citizens = surface.citizens
    n = len(citizens.citizens)
    losses = binary_cross_entropy(surface.labels, surface.target_probabilities)
    results = {"loss": roc_summary(attack_scores_loss(losses), surface.is_member).to_json()}
    citizen_loss = per_citizen_mean(losses, citizens.citizen_of_row, n)
    citizen_results = {
        "citizen_loss": roc_summary(attack_scores_loss(citizen_loss), citizens.is_member).to_json()
    }
    k = config.membership.shadows
    if k:
        membership = citizens.row_membership(shadow_membership(n, k, seed))
        if surface.recipe not in cache:
            cache[surface.recipe] = surface.train_all(membership)
        predictions = cache[surface.recipe]
        if predictions.shape != membership.shape:
            raise RuntimeError(
                f"the shadows of recipe {surface.recipe!r} predict {predictions.shape}, "
                f"not this pool's {membership.shape}"
            )
        lira = lira_from_shadows(
            surface.labels, surface.target_probabilities, predictions, membership
        )
        results["lira"] = roc_summary(lira.scores, surface.is_member).to_json()
        citizen_lira = per_citizen(lira.scores, citizens.citizen_of_row, n)
        citizen_results["citizen_lira"] = roc_summary(citizen_lira, citizens.is_member).to_json()
    return results | citizen_results


def membership_surface(
    world: World, holdout: Holdout, config: ExperimentConfig, seed: int, output: RegimeOutput
) -> MembershipSurface:
    """The surface of a regime's released model(s), by regime; the shadows follow the regime's
    own (tuned) recipe, as an attacker who knows the recipe would train them."""
    tuning = output.info.get("tuning")
    if output.name == UNIFIED:
        if isinstance(tuning, dict):
            config = config.model_copy(update={"training": tuned_training(config.training, tuning)})
        design = tuning.get("design", "blocks") if isinstance(tuning, dict) else "blocks"
        return unified_surface(world, holdout, config, seed, output.models["national"], design)
    if output.name == LOCAL_ONLY:
        per_firm = {
            firm: tuned_training(config.training, record)
            for firm, record in (tuning if isinstance(tuning, dict) else {}).items()
        }
        return local_surface(world, holdout, config, seed, output.models, per_firm)
    if isinstance(tuning, dict):
        config = config.model_copy(
            update={
                "training": tuned_training(config.training, tuning),
                "federation": config.federation.model_copy(update={"rounds": tuning["passes"]}),
            }
        )
    dp = output.info.get("dp")
    if isinstance(dp, dict):  # its firms' noise, from their own accountants (ledgers)
        ledgers = dp["per_firm"]
        missing = [firm for firm in world.firms if firm not in ledgers]
        if missing:
            raise RuntimeError(f"{output.name}: no DP ledger for firms {missing}")
        clip = config.federation.dp_max_grad_norm
        firm_dp = tuple(
            StackedDP(float(ledgers[firm]["noise_multiplier"]), clip) for firm in world.firms
        )
        return federated_surface(
            world, holdout, config, seed, output.models["global"], firm_dp, output.name
        )
    return federated_surface(world, holdout, config, seed, output.models["global"])


def attribute_figures(
    world: World, holdout: Holdout, output: RegimeOutput, seed: int
) -> dict[str, Any]:
    """Each sensitive attribute from (released probability + QIs) vs QIs alone.

    One held-out row per citizen (drawn at random among the firms that score them), so no
    citizen sits in two cross-validation folds.
    """
    rng = generator(Stream.ATTRIBUTE_ROWS, seed)
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
        inside, outside = inside_and_outside(mask)
        known = inside | outside  # a missing attribute is no answer to score the attack on
        if min(inside.sum(), outside.sum()) < 5:
            continue  # too few in one class to cross-validate; left out rather than guessed
        results[name] = attribute_inference(
            output.probabilities[first][known],
            quasi_identifiers[known].reset_index(drop=True),
            inside[known].astype(np.int64),
            seed,
        ).to_json()
    return results
