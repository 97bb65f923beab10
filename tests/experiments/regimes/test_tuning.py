"""Tuning trains what the regimes train: a grid point equals train_model with its settings."""

from __future__ import annotations

import numpy as np

from clients.participant import ModelSpec
from clients.settings import TrainSettings
from clients.training import predict_default, train_model
from experiments.config import TuningSection
from experiments.regimes.tuning import fedavg_model, tune_central, tune_federated
from server.settings import FederationSettings


def _data(seed: int, rows: int = 600, d: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, d)).astype(np.float32)
    y = (rng.random(rows) < 1 / (1 + np.exp(-(x[:, 0] - 2)))).astype(np.float32)
    return x, y


def test_the_chosen_point_is_the_model_train_model_gives() -> None:
    # Prepare
    x, y = _data(0)
    vx, vy = _data(1, rows=300)
    spec = ModelSpec("logistic", x.shape[1], 8, seed=3)
    tuning = TuningSection(
        enabled=True, learning_rates=[0.01, 0.05], weight_decays=[0.0, 1e-3], max_epochs=6
    )
    # Execute
    result = tune_central(spec, x, y, vx, vy, tuning, batch_size=64, seed=7)
    model = spec.build()
    train_model(model, x, y, result.training(TrainSettings(batch_size=64)), seed=7)
    p = np.clip(predict_default(model, vx), 1e-7, 1 - 1e-7)
    loss = float(-np.mean(vy * np.log(p) + (1 - vy) * np.log1p(-p)))
    # Assert
    assert (result.learning_rate, result.weight_decay) in tuning.grid()
    assert 1 <= result.passes <= result.passes_run <= 6
    assert abs(loss - result.curve[result.passes - 1]) < 1e-4


def test_early_stopping_ends_once_the_grid_stops_improving() -> None:
    # Prepare: a large step size overfits a tiny noisy table quickly
    x, y = _data(2, rows=80, d=20)
    vx, vy = _data(3, rows=400, d=20)
    spec = ModelSpec("logistic", x.shape[1], 8, seed=0)
    tuning = TuningSection(
        enabled=True, learning_rates=[0.3], weight_decays=[0.0], max_epochs=200, patience=3
    )
    # Execute
    result = tune_central(spec, x, y, vx, vy, tuning, batch_size=16, seed=0)
    # Assert: it stopped early, `patience` passes after the best one
    assert result.passes_run < 200
    assert result.passes_run - result.passes == 3
    assert result.curve[result.passes - 1] == min(result.curve)


def test_fedavg_model_is_the_tuned_federated_grid_point() -> None:
    # Prepare: three firms, a one-point grid
    shards = {f"firm{i}": _data(10 + i, rows=200) for i in range(3)}
    vx, vy = _data(20, rows=300)
    spec = ModelSpec("logistic", 5, 8, seed=1)
    tuning = TuningSection(
        enabled=True, learning_rates=[0.05], weight_decays=[1e-3], max_epochs=4, patience=9
    )
    training = TrainSettings(batch_size=32)
    federation = FederationSettings(local_epochs=2)
    result = tune_federated(spec, shards, vx, vy, tuning, training, federation, seed=1)
    # Execute
    model = fedavg_model(
        spec,
        shards,
        result.training(training),
        federation.model_copy(update={"rounds": result.passes}),
        seed=1,
    )
    # Assert
    p = np.clip(predict_default(model, vx), 1e-7, 1 - 1e-7)
    loss = float(-np.mean(vy * np.log(p) + (1 - vy) * np.log1p(-p)))
    assert abs(loss - result.curve[result.passes - 1]) < 1e-6
