"""Per-regime tuning on the validation citizens: one grid, one budget, every regime.

A regime's grid points (learning rate x weight decay) train side by side, stacked with
`torch.func` as the LiRA shadows are (`experiments/leakage/shadows.py`), so a grid costs about
one model. Every point walks exactly the batches `clients.training.train_model` walks for the
same seed (central) or that each firm walks in each round of the federation (federated), and
follows torch's Adam formula with its own step size and L2 penalty, so the point chosen here
is the model the regime then trains for real. After every pass (an epoch, or a federated round)
each point's validation loss is recorded; tuning stops once the best loss over the grid has not
improved for `patience` passes, and the (point, pass) with the lowest validation loss wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from clients.participant import ModelSpec
from clients.settings import TrainSettings
from clients.streams import firm_round_seed
from experiments.config import TuningSection
from experiments.leakage.shadows import stacked
from server.optimiser import ServerOptimiser, server_optimiser
from server.settings import FederationSettings

_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-8
"""torch.optim.Adam's defaults, which `clients.training` uses."""


@dataclass(frozen=True)
class TuningResult:
    """What one regime's tuning tried, chose and spent."""

    grid: list[tuple[float, float]]  # (learning rate, weight decay)
    learning_rate: float
    weight_decay: float
    passes: int  # chosen epochs (central) or rounds (federated)
    unit: str  # "epochs" or "rounds"
    budget: int  # most passes any grid point may take
    passes_run: int  # passes every grid point took before early stopping
    validation_rows: int
    curve: list[float]  # validation loss of the chosen point after each pass run

    def training(self, base: TrainSettings) -> TrainSettings:
        """`base` with the chosen step size and penalty (and epochs, for a central regime)."""
        update: dict[str, Any] = {
            "learning_rate": self.learning_rate,
            "weight_decay": self.weight_decay,
        }
        if self.unit == "epochs":
            update["epochs"] = self.passes
        return base.model_copy(update=update)

    def to_json(self) -> dict[str, Any]:
        return {
            "grid": [[lr, wd] for lr, wd in self.grid],
            "learning_rate": self.learning_rate,
            "weight_decay": self.weight_decay,
            "passes": self.passes,
            "unit": self.unit,
            "budget": self.budget,
            "passes_run": self.passes_run,
            "models_trained": len(self.grid),
            "validation_rows": self.validation_rows,
            "curve": list(self.curve),
        }


@dataclass
class _AdamState:
    first: dict[str, torch.Tensor]
    second: dict[str, torch.Tensor]
    step: int = 0


def tuned_training(training: TrainSettings, record: dict[str, Any]) -> TrainSettings:
    """`training` with a tuning record's (`TuningResult.to_json`) step size and penalty, and
    its epochs when it counted epochs."""
    update: dict[str, Any] = {
        "learning_rate": record["learning_rate"],
        "weight_decay": record["weight_decay"],
    }
    if record["unit"] == "epochs":
        update["epochs"] = record["passes"]
    return training.model_copy(update=update)


class _GridModels:
    """k copies of one model, stacked, each with its own Adam step size and L2 penalty."""

    def __init__(self, spec: ModelSpec, grid: list[tuple[float, float]]) -> None:
        models = [spec.build() for _ in grid]
        params, self.buffers, _, self.forward = stacked(models)
        self.names = list(params)
        self.params = {n: p.detach().clone() for n, p in params.items()}
        self.learning_rates = torch.tensor([lr for lr, _ in grid], dtype=torch.float32)
        self.weight_decays = torch.tensor([wd for _, wd in grid], dtype=torch.float32)

    def _per_model(self, values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return values.view(-1, *([1] * (like.dim() - 1)))

    def train(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        epochs: int,
        generator: torch.Generator,
        state: _AdamState | None = None,
    ) -> _AdamState:
        """`epochs` passes of minibatch Adam, as `train_model` takes them; `state` continues an
        earlier call's optimiser (None: a fresh one, as every federated round starts)."""
        params = {n: p.clone().requires_grad_(True) for n, p in self.params.items()}
        if state is None:
            state = _AdamState(
                {n: torch.zeros_like(p) for n, p in params.items()},
                {n: torch.zeros_like(p) for n, p in params.items()},
            )
        for _ in range(epochs):
            order = torch.randperm(len(y), generator=generator)
            for start in range(0, len(y), batch_size):
                batch = order[start : start + batch_size]
                logits = self.forward(params, self.buffers, x[batch])  # (k, batch)
                loss = nn.functional.binary_cross_entropy_with_logits(
                    logits, y[batch].expand_as(logits), reduction="none"
                ).mean(1)
                grads = torch.autograd.grad(loss.sum(), list(params.values()))
                state.step += 1
                correction1, correction2 = 1 - _BETA1**state.step, 1 - _BETA2**state.step
                with torch.no_grad():
                    for name, grad in zip(self.names, grads, strict=True):
                        p, first, second = params[name], state.first[name], state.second[name]
                        grad = grad + self._per_model(self.weight_decays, p) * p
                        first.mul_(_BETA1).add_(grad, alpha=1 - _BETA1)
                        second.mul_(_BETA2).addcmul_(grad, grad, value=1 - _BETA2)
                        denom = (second.sqrt() / correction2**0.5).add_(_EPS)
                        step_size = self._per_model(self.learning_rates, p) / correction1
                        p.sub_(step_size * first / denom)
        self.params = {n: p.detach() for n, p in params.items()}
        return state

    @torch.no_grad()
    def losses(self, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
        """(k,) mean binary cross-entropy of every grid point on (x, y)."""
        logits = self.forward(self.params, self.buffers, x)
        return (
            nn.functional.binary_cross_entropy_with_logits(
                logits, y.expand_as(logits), reduction="none"
            )
            .mean(1)
            .double()
            .numpy()
        )

    def flat(self, j: int) -> np.ndarray:
        return np.concatenate([self.params[n][j].double().numpy().ravel() for n in self.names])

    def set_flat(self, j: int, flat: np.ndarray) -> None:
        offset = 0
        for name in self.names:
            shape = self.params[name][j].shape
            size = int(np.prod(shape))
            value = torch.as_tensor(flat[offset : offset + size], dtype=torch.float32)
            self.params[name][j] = value.view(shape)
            offset += size


def _tensors(features: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return (
        torch.as_tensor(features, dtype=torch.float32),
        torch.as_tensor(labels, dtype=torch.float32),
    )


def _choose(
    curves: list[np.ndarray],
    grid: list[tuple[float, float]],
    unit: str,
    budget: int,
    validation_rows: int,
) -> TuningResult:
    losses = np.stack(curves, axis=1)  # (k, passes)
    j, t = np.unravel_index(int(np.argmin(losses)), losses.shape)  # first minimum: ties stable
    lr, wd = grid[int(j)]
    return TuningResult(
        grid=grid,
        learning_rate=lr,
        weight_decay=wd,
        passes=int(t) + 1,
        unit=unit,
        budget=budget,
        passes_run=losses.shape[1],
        validation_rows=validation_rows,
        curve=[float(v) for v in losses[j]],
    )


def _stop(curves: list[np.ndarray], patience: int) -> bool:
    best = [float(np.min(c)) for c in curves]
    return len(best) > patience and min(best[-patience:]) >= min(best[:-patience])


def tune_central(
    spec: ModelSpec,
    features: np.ndarray,
    labels: np.ndarray,
    validation_features: np.ndarray,
    validation_labels: np.ndarray,
    tuning: TuningSection,
    batch_size: int,
    seed: int,
) -> TuningResult:
    """A central regime (unified, or one local-only firm): epochs on its own rows.

    Every grid point walks the batches `train_model(..., seed)` walks; the chosen point's
    model is the one `train_model` gives with the chosen settings.
    """
    grid = tuning.grid()
    models = _GridModels(spec, grid)
    x, y = _tensors(features, labels)
    vx, vy = _tensors(validation_features, validation_labels)
    generator = torch.Generator().manual_seed(seed)  # one walk across epochs, as train_model
    state: _AdamState | None = None
    curves: list[np.ndarray] = []
    for _ in range(tuning.max_epochs):
        state = models.train(x, y, batch_size, 1, generator, state)
        curves.append(models.losses(vx, vy))
        if _stop(curves, tuning.patience):
            break
    return _choose(curves, grid, "epochs", tuning.max_epochs, len(vy))


def tune_federated(
    spec: ModelSpec,
    shards: dict[str, tuple[np.ndarray, np.ndarray]],
    validation_features: np.ndarray,
    validation_labels: np.ndarray,
    tuning: TuningSection,
    training: TrainSettings,
    federation: FederationSettings,
    seed: int,
) -> TuningResult:
    """FedAvg in process over every firm, rounds of `federation.local_epochs` local epochs.

    Each round every firm trains the grid from the global weights with a fresh Adam, walking
    the batches it walks in the federation (`firm_round_seed`); the server takes the
    row-weighted mean update through its own optimiser (`server.optimiser`), one per point.
    The budget is `max_epochs // local_epochs` rounds, the same passes over the data as a
    central regime. Every firm takes part in every round (`fraction` = 1).
    """
    grid = tuning.grid()
    budget = max(1, tuning.max_epochs // federation.local_epochs)
    models = _GridModels(spec, grid)
    servers = [server_optimiser(federation) for _ in grid]
    data = {firm: _tensors(x, y) for firm, (x, y) in shards.items()}
    vx, vy = _tensors(validation_features, validation_labels)
    curves: list[np.ndarray] = []
    for round_number in range(1, budget + 1):
        _fedavg_round(models, servers, data, training, federation, seed, round_number)
        curves.append(models.losses(vx, vy))
        if _stop(curves, tuning.patience):
            break
    return _choose(curves, grid, "rounds", budget, len(vy))


def _fedavg_round(
    models: _GridModels,
    servers: list[ServerOptimiser],
    data: dict[str, tuple[torch.Tensor, torch.Tensor]],
    training: TrainSettings,
    federation: FederationSettings,
    seed: int,
    round_number: int,
) -> None:
    """One FedAvg round of every grid point, every firm taking part; in place."""
    start = {n: p.clone() for n, p in models.params.items()}
    globals_ = [models.flat(j) for j in range(len(servers))]
    totals = [np.zeros_like(g) for g in globals_]
    rows = 0
    for firm, (x, y) in data.items():
        models.params = {n: p.clone() for n, p in start.items()}
        models.train(
            x,
            y,
            training.batch_size,
            federation.local_epochs,
            torch.Generator().manual_seed(firm_round_seed(seed, round_number, firm)),
        )
        for j in range(len(servers)):
            totals[j] += len(y) * (models.flat(j) - globals_[j])
        rows += len(y)
    models.params = {n: p.clone() for n, p in start.items()}
    for j, server in enumerate(servers):
        models.set_flat(j, server.step(globals_[j], totals[j] / rows))


def fedavg_model(
    spec: ModelSpec,
    shards: dict[str, tuple[np.ndarray, np.ndarray]],
    training: TrainSettings,
    federation: FederationSettings,
    seed: int,
) -> nn.Module:
    """The federation's model in process: `federation.rounds` rounds at `training`'s step size
    and penalty, run seed `seed` (the model's initial weights come from `spec`)."""
    models = _GridModels(spec, [(training.learning_rate, training.weight_decay)])
    servers = [server_optimiser(federation)]
    data = {firm: _tensors(x, y) for firm, (x, y) in shards.items()}
    for round_number in range(1, federation.rounds + 1):
        _fedavg_round(models, servers, data, training, federation, seed, round_number)
    model = spec.build()
    with torch.no_grad():
        model.load_state_dict(
            {name: value[0] for name, value in {**models.params, **models.buffers}.items()}
        )
    return model
