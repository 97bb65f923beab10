"""A pilot firm's side of federated training, framework-free: its data and what it contributes.

The Flower ClientApp (`clients/app.py`) is glue around this module, so the same firm logic
runs in the simulation engine, on a real SuperNode, and in tests without any transport.

What a firm contributes to a round is one float vector, the *contribution*::

    [ s_i * (w_local - w_global)  (d values),          the update
      s_i,  s_i * mean_loss,  brier_i / S,               training sums (TRAINING_TAIL)
      h_i / S,  heldout_loss_i / S,  heldout_brier_i / S ]  held-out sums (EVALUATION_TAIL)

with s_i = n_i / S, n_i the firm's training rows, h_i its held-out rows and S the public
`weight_scale` (an upper bound on any firm's rows, declared in the run config). Summing
contributions over firms gives the weighted FedAvg update as sum(first d) / sum(s_i): the scale
cancels, and dividing by S keeps every entry within the secure-aggregation clipping bound
(|delta| <= clip, s_i <= 1, h_i <= S, BCE loss of a sane model well below clip), so the same
vector travels in the clear (`secagg = "none"`) or masked (`secagg = "ours"`) and the two
aggregates agree up to quantisation.

The held-out sums score the global weights the firm *received* (the model of the previous
round), before it trains: evaluation rides in the masked vector of the next round, so nothing a
firm computes from its data reaches the server outside that vector (SPEC.md §1). They are
zeros when the round config does not ask for them, and the update and training sums are zeros
in an evaluation-only round (the one after the last round, `evaluation_contribution`). Appending
them leaves the first d + 3 entries, and so the model, exactly as they were: stochastic rounding
draws one uniform per entry in order, so the appended entries take fresh draws after the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from clients.data import ID, LABEL, ColumnInfo, firm_columns, load_firm_table, read_manifest
from clients.scaling import FeatureScaler
from clients.settings import ModelKind
from clients.streams import NoiseSeeds

if TYPE_CHECKING:  # torch is imported where a model is built, so aggregation-only code
    from torch import nn  # (the server's sums, benchmarks) runs without its memory cost

    from clients.training import DPSettings, TrainSettings

COMMON_ROLE = "common"
TRAINING_TAIL = ("weight", "loss", "brier")
"""The training sums after the d update values, in order."""
EVALUATION_TAIL = ("heldout_rows", "heldout_loss", "heldout_brier")
"""The held-out sums of the received global weights, after the training sums."""
CONTRIBUTION_TAIL = TRAINING_TAIL + EVALUATION_TAIL
"""Names of the scalar sums appended after the d update values, in order."""


@dataclass(frozen=True)
class ModelSpec:
    """What every party needs to build the same shared model."""

    kind: ModelKind
    n_features: int
    hidden: int
    seed: int

    def build(self) -> nn.Module:
        from clients.model import make_model

        if self.kind not in ("logistic", "mlp"):
            raise ValueError(f"model kind must be 'logistic' or 'mlp', got {self.kind!r}")
        return make_model(self.kind, self.n_features, self.hidden, seed=self.seed)

    def initial_weights(self) -> np.ndarray:
        """The agreed starting point: same spec, same flat weights at every party."""
        from clients.model import flatten_weights, get_weights

        return flatten_weights(get_weights(self.build()))


@dataclass(frozen=True)
class FirmData:
    """One firm's scaled common features, split into rows it trains on and rows it evaluates on.

    Evaluation rows are the held-out citizens when a held-out list is given (they are never
    trained on), otherwise the training rows themselves.
    """

    firm: str
    feature_names: tuple[str, ...]
    train_features: np.ndarray  # (n_train, n_features) float32 in [0, 1]
    train_labels: np.ndarray  # (n_train,) float32 in {0, 1}
    eval_features: np.ndarray  # (n_eval, n_features)
    eval_labels: np.ndarray  # (n_eval,)


def common_columns(manifest: dict[str, object], firm: str) -> list[ColumnInfo]:
    """The shared schema at `firm`: same names everywhere, each firm measuring its own proxy."""
    columns = [c for c in firm_columns(manifest, firm) if c.role == COMMON_ROLE]
    if not columns:
        raise ValueError(f"firm {firm!r} declares no column with role 'common' in the manifest")
    return columns


def load_firm_data(world_dir: Path, firm: str, heldout_ids: np.ndarray | None) -> FirmData:
    """Read only this firm's table and the public manifest; scale with the declared ranges."""
    manifest = read_manifest(Path(world_dir))
    columns = common_columns(manifest, firm)
    table = load_firm_table(Path(world_dir), firm)
    features = FeatureScaler.from_columns(columns, table).transform(table)
    labels = table[LABEL].to_numpy(dtype=np.float32)
    held_out = (
        np.zeros(len(table), dtype=bool)
        if heldout_ids is None
        else np.isin(table[ID].to_numpy(), heldout_ids)
    )
    train = ~held_out
    if not train.any():
        raise ValueError(f"firm {firm!r} has no training rows left after the held-out citizens")
    evaluate = held_out if held_out.any() else train
    return FirmData(
        firm=firm,
        feature_names=tuple(c.name for c in columns),
        train_features=features[train],
        train_labels=labels[train],
        eval_features=features[evaluate],
        eval_labels=labels[evaluate],
    )


@dataclass(frozen=True)
class LocalResult:
    """A firm's round: the contribution it sends, and what it keeps (its size and its DP
    accounting, which would reveal its size: `clients/accounting.py`)."""

    contribution: np.ndarray  # (d + len(CONTRIBUTION_TAIL),) float64, layout in module doc
    n_examples: int
    mean_loss: float
    epsilon: float | None  # DP budget spent so far, None without DP
    noise_multiplier: float | None
    rounding_seed: int = 0  # seeds the stochastic rounding of secure aggregation (repeatable runs)


@dataclass(frozen=True)
class HeldOutSums:
    """A model scored on a firm's evaluation rows, as sums so firms can be pooled."""

    rows: float
    loss: float  # sum of binary cross-entropy
    brier: float  # sum of squared errors of the probability of default

    def as_array(self) -> np.ndarray:
        """In the order of `EVALUATION_TAIL`."""
        return np.array([self.rows, self.loss, self.brier])


def _brier_sum(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float(np.sum((probabilities - labels.astype(np.float64)) ** 2))


def heldout_sums(data: FirmData, spec: ModelSpec, global_weights: np.ndarray) -> HeldOutSums:
    """The global model on this firm's evaluation rows: rows, loss sum, Brier sum."""
    from clients.model import get_weights, set_weights, unflatten_weights
    from clients.training import predict_default

    model = spec.build()
    set_weights(model, unflatten_weights(global_weights, get_weights(model)))
    probabilities = np.clip(predict_default(model, data.eval_features), 1e-7, 1 - 1e-7)
    labels = data.eval_labels.astype(np.float64)
    losses = -(labels * np.log(probabilities) + (1 - labels) * np.log1p(-probabilities))
    return HeldOutSums(float(len(labels)), float(losses.sum()), _brier_sum(probabilities, labels))


def _scaled_heldout(
    data: FirmData, spec: ModelSpec, global_weights: np.ndarray, weight_scale: float
) -> np.ndarray:
    """The held-out sums divided by the public scale, as the contribution carries them."""
    rows = len(data.eval_labels)
    if rows > weight_scale:
        raise ValueError(
            f"firm {data.firm!r} has {rows} evaluation rows, above federation.weight_scale="
            f"{weight_scale}; raise weight_scale to at least {rows}"
        )
    return heldout_sums(data, spec, global_weights).as_array() / weight_scale


def local_round(
    data: FirmData,
    spec: ModelSpec,
    global_weights: np.ndarray,
    settings: TrainSettings,
    weight_scale: float,
    seed: int,
    dp: DPSettings | None = None,
    completed_rounds: int = 0,
    evaluate: bool = False,
    noise_seeds: NoiseSeeds | None = None,
) -> LocalResult:
    """Train from the global weights for `settings.epochs` and build this firm's contribution.

    `seed` orders the batches without DP and seeds the stochastic rounding. `completed_rounds`
    tells a DP firm how many rounds it has already spent budget on, so its accountant is rebuilt
    exactly after a resumed run; `noise_seeds` fix its sampler and noise (None: from the OS
    generator). `evaluate` appends the held-out sums of `global_weights`, scored before
    training (scoring draws no random number).
    """
    from clients.model import flatten_weights, get_weights, set_weights, unflatten_weights
    from clients.training import predict_default, train_model, train_model_dp

    n_examples = len(data.train_labels)
    if n_examples > weight_scale:
        raise ValueError(
            f"firm {data.firm!r} has {n_examples} training rows, above federation.weight_scale="
            f"{weight_scale}; raise weight_scale to at least {n_examples}"
        )
    heldout = (
        _scaled_heldout(data, spec, global_weights, weight_scale)
        if evaluate
        else np.zeros(len(EVALUATION_TAIL))
    )
    model = spec.build()
    template = get_weights(model)
    set_weights(model, unflatten_weights(global_weights, template))
    epsilon = noise = None
    if dp is None:
        mean_loss = train_model(model, data.train_features, data.train_labels, settings, seed)
    else:
        report = train_model_dp(
            model,
            data.train_features,
            data.train_labels,
            settings,
            dp,
            noise_seeds,
            completed_rounds,
        )
        mean_loss, epsilon, noise = report.mean_loss, report.epsilon, report.noise_multiplier
    local = flatten_weights(get_weights(model))
    brier = _brier_sum(predict_default(model, data.train_features), data.train_labels)
    share = n_examples / weight_scale
    contribution = np.concatenate(
        [
            share * (local - global_weights),
            [share, share * mean_loss, brier / weight_scale],
            heldout,
        ]
    )
    return LocalResult(
        contribution, n_examples, float(mean_loss), epsilon, noise, rounding_seed=seed
    )


def evaluation_contribution(
    data: FirmData, spec: ModelSpec, global_weights: np.ndarray, weight_scale: float, seed: int
) -> LocalResult:
    """An evaluation-only round's contribution: zeros but the held-out sums (no training)."""
    zeros = np.zeros(global_weights.size + len(TRAINING_TAIL))
    heldout = _scaled_heldout(data, spec, global_weights, weight_scale)
    return LocalResult(np.concatenate([zeros, heldout]), 0, 0.0, None, None, rounding_seed=seed)


@dataclass(frozen=True)
class AggregateUpdate:
    """The weighted mean update and round metrics recovered from a sum of contributions."""

    mean_update: np.ndarray  # (d,)
    total_examples: float
    mean_train_loss: float
    train_brier: float


def _tail(total: np.ndarray) -> np.ndarray:
    tail = len(CONTRIBUTION_TAIL)
    if total.ndim != 1 or total.size <= tail:
        raise ValueError(f"a contribution sum needs > {tail} values, got shape {total.shape}")
    return total[-tail:]


def read_contribution_sum(total: np.ndarray, weight_scale: float) -> AggregateUpdate:
    """Invert the layout of `local_round`'s contribution on the sum over firms."""
    weight, loss, brier = (float(v) for v in _tail(total)[: len(TRAINING_TAIL)])
    if not weight > 0:
        raise ValueError(f"aggregated weight must be > 0, got {weight}: no firm contributed")
    return AggregateUpdate(
        mean_update=total[: -len(CONTRIBUTION_TAIL)] / weight,
        total_examples=weight * weight_scale,
        mean_train_loss=loss / weight,
        train_brier=brier / weight,
    )


def read_heldout_sum(total: np.ndarray, weight_scale: float) -> HeldOutSums | None:
    """The pooled held-out sums a sum of contributions carries; None when it carries none.

    Through secure aggregation each sum is exact up to the quantisation bound (firms / scale,
    times `weight_scale`, per sum), so `rows` is rounded to the nearest whole row.
    """
    rows, loss, brier = (float(v) * weight_scale for v in _tail(total)[len(TRAINING_TAIL) :])
    if round(rows) < 1:
        return None
    return HeldOutSums(float(round(rows)), loss, brier)


def evaluate_global(
    data: FirmData, spec: ModelSpec, global_weights: np.ndarray
) -> dict[str, float]:
    """Sums in the clear, for Flower's SecAgg+ only (`secagg = "flower"`): rows, loss, Brier."""
    sums = heldout_sums(data, spec, global_weights)
    return {"n": sums.rows, "loss_sum": sums.loss, "brier_sum": sums.brier}
