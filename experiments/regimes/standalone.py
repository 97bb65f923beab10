"""The scoring regimes, trained and evaluated on the same held-out citizens.

The unit of evaluation is a held-out (firm, citizen) pair: the score a firm would use for one of
its customers. Every regime gives a default probability for every pair (the unified score is the
same for a citizen at every firm), so regimes are compared on exactly the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from torch import nn

from clients.model import BaseRateScore, make_model
from clients.participant import ModelSpec
from clients.scaling import FeatureScaler
from clients.settings import TrainSettings
from clients.streams import Stream, generator, local_model_seed
from clients.training import predict_default, train_model
from experiments.config import ExperimentConfig
from experiments.world.partitions import heldout_rows
from experiments.world.tables import ID, LABEL, ColumnInfo, World

UNIFIED = "unified"
LOCAL_ONLY = "local_only"


def _pairs(world: World, ids: np.ndarray) -> pd.DataFrame:
    """(firm, citizen, label) for every firm's customers among `ids`, firm after firm."""
    pairs = [
        pd.DataFrame({"firm": firm, ID: t[ID].to_numpy(), LABEL: t[LABEL].to_numpy()})[
            np.isin(t[ID].to_numpy(), ids)
        ]
        for firm, t in world.firms.items()
    ]
    return pd.concat(pairs, ignore_index=True)


@dataclass(frozen=True)
class Holdout:
    """Citizens no regime trains on, and the (firm, citizen) pairs every regime is scored on.

    `validation_ids` are training citizens set aside for tuning, early stopping and
    calibration: the same for every regime, never a held-out citizen, empty unless asked for.
    """

    test_ids: np.ndarray
    pairs: pd.DataFrame  # columns: firm, ID, LABEL; one row per held-out customer of a firm
    validation_ids: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    validation_pairs: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame({"firm": [], ID: [], LABEL: []})
    )  # the (firm, citizen) pairs of the validation citizens: calibration's rows

    @classmethod
    def draw(
        cls, world: World, fraction: float, seed: int, validation_fraction: float = 0.0
    ) -> Holdout:
        ids = world.truth[ID].to_numpy()
        # Its own stream (training seeds don't move it), shared with a label-skew split.
        test_ids = np.sort(ids[heldout_rows(len(ids), fraction, seed)])
        pairs = _pairs(world, test_ids)
        validation_ids = np.empty(0, dtype=ids.dtype)
        if validation_fraction > 0:
            rest = ids[~np.isin(ids, test_ids)]
            draw = generator(Stream.VALIDATION, seed).random(len(rest))
            validation_ids = np.sort(rest[draw < validation_fraction])
        return cls(
            test_ids=test_ids,
            pairs=pairs,
            validation_ids=validation_ids,
            validation_pairs=_pairs(world, validation_ids),
        )

    def is_test(self, ids: np.ndarray) -> np.ndarray:
        return np.isin(ids, self.test_ids)

    def is_validation(self, ids: np.ndarray) -> np.ndarray:
        return np.isin(ids, self.validation_ids)

    def is_fit(self, ids: np.ndarray) -> np.ndarray:
        """Rows a model trains on: neither held out nor set aside for validation."""
        fit: np.ndarray = ~self.is_test(ids) & ~self.is_validation(ids)
        return fit

    def excluded_ids(self) -> np.ndarray:
        """Citizens a federated firm must not train on: held-out and validation together."""
        excluded: np.ndarray = np.union1d(self.test_ids, self.validation_ids)
        return excluded


@dataclass
class RegimeOutput:
    """A regime's default probabilities for every held-out pair, and the models it released."""

    name: str
    probabilities: np.ndarray  # (pairs,) aligned with Holdout.pairs
    models: dict[str, nn.Module] = field(default_factory=dict)
    info: dict[str, object] = field(default_factory=dict)
    validation_probabilities: np.ndarray | None = None  # aligned with Holdout.validation_pairs


def fit_model(
    config: ExperimentConfig,
    features: np.ndarray,
    labels: np.ndarray,
    seed: int,
    training: TrainSettings | None = None,
) -> nn.Module:
    """A fresh model trained with `training` (default: the config's `[training]`)."""
    model = make_model(config.model.kind, features.shape[1], config.model.hidden, seed=seed)
    train_model(model, features, labels, training or config.training, seed=seed)
    return model


def _best_loss(record: dict[str, object]) -> float:
    """The lowest validation loss on a tuning record's curve."""
    curve = record["curve"]
    assert isinstance(curve, list)
    return float(min(curve))


def tuned_fit(
    config: ExperimentConfig,
    features: np.ndarray,
    labels: np.ndarray,
    fit: np.ndarray,
    validation: np.ndarray,
    seed: int,
) -> tuple[nn.Module, dict[str, object] | None]:
    """A model on the `fit` rows: tuned on the `validation` rows when `[tuning]` is on (and
    there are validation rows), else with `[training]`; with the tuning record, if any."""
    if not config.tuning.enabled or not validation.any():
        return fit_model(config, features[fit], labels[fit], seed), None
    from experiments.regimes.tuning import tune_central

    spec = ModelSpec(config.model.kind, features.shape[1], config.model.hidden, seed)
    result = tune_central(
        spec,
        features[fit],
        labels[fit],
        features[validation],
        labels[validation],
        config.tuning,
        config.training.batch_size,
        seed,
    )
    training = result.training(config.training)
    return fit_model(config, features[fit], labels[fit], seed, training), result.to_json()


def national_database(world: World) -> tuple[pd.DataFrame, list[ColumnInfo]]:
    """Every firm's rows joined per citizen, plus government records: the central operator's table.

    One row per citizen in the population. A firm's columns are prefixed `<firm>.`; a citizen
    who is not that firm's customer gets the bottom of the range and `<firm>.present` = 0.
    The operator also pools the common schema: `pooled.<column>` is the mean over the firms
    that observe the citizen, the one reading a single national number would start from.
    """
    parts = [world.government.set_index(ID)]
    columns = world.columns_of("government", {"government"})
    common: dict[str, ColumnInfo] = {}
    for firm, table in world.firms.items():
        features = world.feature_columns(firm)
        part = table.set_index(ID)[[c.name for c in features]].set_axis(
            [f"{firm}.{c.name}" for c in features], axis=1
        )
        parts.append(part.assign(**{f"{firm}.present": 1.0}))
        columns += [
            ColumnInfo(f"{firm}.{c.name}", "national", c.role, c.kind, c.description, c.low, c.high)
            for c in features
        ]
        columns.append(
            ColumnInfo(
                f"{firm}.present", "national", "domain", "binary", f"customer of {firm}", 0, 1
            )
        )
        common.update({c.name: c for c in features if c.role == "common"})
    pooled = (
        pd.concat(
            [t.set_index(ID)[[n for n in common if n in t.columns]] for t in world.firms.values()]
        )
        .groupby(level=0)
        .mean()
        .add_prefix("pooled.")
    )
    columns += [
        ColumnInfo(
            f"pooled.{n}",
            "national",
            "common",
            c.kind,
            f"mean over firms: {c.description}",
            c.low,
            c.high,
        )
        for n, c in common.items()
    ]
    labels = world.truth.set_index(ID)[LABEL]
    joined = pd.concat([*parts, pooled, labels], axis=1, join="outer").reindex(world.government[ID])
    presence = [c.name for c in columns if c.name.endswith(".present")]
    joined = joined.fillna(dict.fromkeys(presence, 0.0)).copy()  # copy() consolidates blocks
    return joined.rename_axis(ID).reset_index(), columns


UNIFIED_DESIGNS = ("blocks", "pooled", "common")
"""The national database's designs: `blocks` (every firm's columns as its own block, plus the
pooled common features, government records and presence flags), `pooled` (the pooled
common features and government records, with each firm's presence flag as its firm effect)
and `common` (the pooled common features and government records alone: the federated
model's features, pooled per citizen, so the operator can always fall back on them)."""


def design_columns(world: World, columns: list[ColumnInfo], design: str) -> list[ColumnInfo]:
    """The national database's columns a unified design uses."""
    if design not in UNIFIED_DESIGNS:
        raise ValueError(f"unified design must be one of {UNIFIED_DESIGNS}, got {design!r}")
    if design == "blocks":
        return columns
    blocks = tuple(f"{firm}." for firm in world.firms)
    if design == "common":
        return [c for c in columns if not c.name.startswith(blocks)]
    return [c for c in columns if not c.name.startswith(blocks) or c.name.endswith(".present")]


def unified_features(world: World, design: str = "blocks") -> tuple[pd.DataFrame, np.ndarray]:
    """The national database and its scaled feature matrix under one design."""
    table, columns = national_database(world)
    chosen = design_columns(world, columns, design)
    return table, FeatureScaler.from_columns(chosen, table).transform(table)


def run_unified(
    world: World, holdout: Holdout, config: ExperimentConfig, seed: int
) -> RegimeOutput:
    """One central model on the national database, trained on every non-held-out citizen.

    With `[tuning]` on, each design in `tuning.unified_designs` is tuned alike and the one
    with the lowest validation loss is trained: a richer design only when validation picks it.
    """
    designs = config.tuning.unified_designs if config.tuning.enabled else ("blocks",)
    best: tuple[float, str, nn.Module, dict[str, object] | None, np.ndarray] | None = None
    losses: dict[str, float] = {}
    for design in designs:
        table, features = unified_features(world, design)
        labels = table[LABEL].to_numpy()
        ids = table[ID].to_numpy()
        train = holdout.is_fit(ids)
        fitted, record = tuned_fit(
            config, features, labels, train, holdout.is_validation(ids), seed
        )
        loss = float("inf") if record is None else _best_loss(record)
        losses[design] = loss
        if best is None or loss < best[0]:
            best = (loss, design, fitted, record, features)
    assert best is not None
    _, design, model, tuning, features = best
    if tuning is not None:
        tuning = tuning | {"design": design, "design_losses": losses}
    pd_by_citizen = pd.Series(predict_default(model, features), index=table[ID].to_numpy())
    probabilities = pd_by_citizen.reindex(holdout.pairs[ID].to_numpy()).to_numpy()
    validation = pd_by_citizen.reindex(holdout.validation_pairs[ID].to_numpy()).to_numpy()
    return RegimeOutput(
        UNIFIED,
        probabilities,
        validation_probabilities=validation,
        models={"national": model},
        info={"n_features": features.shape[1], "n_train": int(train.sum())}
        | ({} if tuning is None else {"tuning": tuning}),
    )


def score_firm_pairs(
    firm: str,
    model: nn.Module,
    features: np.ndarray,
    table: pd.DataFrame,
    holdout: Holdout,
    test: np.ndarray,
    validation: np.ndarray,
) -> None:
    """Fill `firm`'s rows of the held-out (`test`) and validation pairs with `model` on its
    own table's `features`, in place."""
    by_id = pd.Series(predict_default(model, features), index=table[ID].to_numpy())
    for pairs, out in ((holdout.pairs, test), (holdout.validation_pairs, validation)):
        rows = (pairs["firm"] == firm).to_numpy()
        out[rows] = by_id.reindex(pairs.loc[rows, ID].to_numpy()).to_numpy()


def firm_features(world: World, firm: str, table: pd.DataFrame) -> np.ndarray:
    """A firm's scaled feature matrix, from its own columns and the declared ranges only."""
    return FeatureScaler.from_columns(world.feature_columns(firm), table).transform(table)


def common_features(world: World, firm: str, table: pd.DataFrame) -> np.ndarray:
    """A firm's scaled common-schema columns: the features a shared (federated) model sees."""
    return FeatureScaler.from_columns(world.columns_of(firm, {"common"}), table).transform(table)


def run_local_only(
    world: World, holdout: Holdout, config: ExperimentConfig, seed: int
) -> RegimeOutput:
    """Each firm alone: its own customers, its own columns, its own model."""
    probabilities = np.full(len(holdout.pairs), np.nan)
    validation = np.full(len(holdout.validation_pairs), np.nan)
    models: dict[str, nn.Module] = {}
    n_train: dict[str, int] = {}
    base_rate_only: list[str] = []
    tuning: dict[str, object] = {}
    for index, (firm, table) in enumerate(world.firms.items()):
        features = firm_features(world, firm, table)
        ids = table[ID].to_numpy()
        train = holdout.is_fit(ids)
        all_labels = table[LABEL].to_numpy()
        labels = all_labels[train]
        if len(np.unique(labels)) < 2:
            # Nothing to learn from one class: the firm's honest score is its (Laplace-smoothed)
            # base rate. Recorded, so a reader knows this firm's figures carry no model.
            models[firm] = BaseRateScore((labels.sum() + 1.0) / (len(labels) + 2.0))
            base_rate_only.append(firm)
        else:
            models[firm], record = tuned_fit(
                config,
                features,
                all_labels,
                train,
                holdout.is_validation(ids),
                local_model_seed(seed, index),
            )
            if record is not None:
                tuning[firm] = record
        n_train[firm] = int(train.sum())
        score_firm_pairs(firm, models[firm], features, table, holdout, probabilities, validation)
    info: dict[str, object] = {"n_train": n_train, "base_rate_only": base_rate_only}
    if tuning:
        info["tuning"] = tuning
    return RegimeOutput(
        LOCAL_ONLY,
        probabilities,
        validation_probabilities=validation,
        models=models,
        info=info,
    )
