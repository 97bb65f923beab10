"""Stacked shadows follow the single-model recipe exactly, and FedAvg side by side learns."""

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from clients.model import get_weights, make_model
from clients.participant import ModelSpec
from clients.training import TrainSettings, predict_default, train_model
from experiments.leakage.shadows import FirmShard, fedavg_stacked, predict_stacked, train_stacked
from server.settings import FederationSettings


def _data(rows: int = 600, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.random((rows, 5)).astype(np.float32)
    y = (rng.random(rows) < 1 / (1 + np.exp(-(4 * x[:, 0] - 3)))).astype(np.float32)
    return x, y


@pytest.mark.parametrize("kind", ["logistic", "mlp"])
def test_stacked_training_equals_training_each_model_alone(kind: str) -> None:
    # Prepare
    torch.set_num_threads(1)
    x, y = _data()
    settings = TrainSettings(epochs=2, batch_size=64, learning_rate=0.05)
    alone = [make_model(kind, 5, 8, seed=s) for s in (1, 2)]
    stacked = [make_model(kind, 5, 8, seed=s) for s in (1, 2)]

    # Execute
    for model in alone:
        train_model(model, x, y, settings, seed=3)
    train_stacked(stacked, x, y, np.ones((len(y), 2), bool), settings, seed=3)

    # Assert
    for a, b in zip(alone, stacked, strict=True):
        for wa, wb in zip(get_weights(a), get_weights(b), strict=True):
            np.testing.assert_allclose(wa, wb, atol=1e-6)


def test_a_row_masked_out_of_one_model_does_not_move_it() -> None:
    x, y = _data(200)
    models = [make_model("logistic", 5, seed=0), make_model("logistic", 5, seed=0)]
    include = np.ones((200, 2), bool)
    include[:, 1] = False
    include[:10, 1] = True  # model 1 sees only ten rows
    before = get_weights(models[1])

    train_stacked(models, x, y, include, TrainSettings(epochs=1, batch_size=50), seed=0)

    moved = [np.abs(a - b).max() for a, b in zip(before, get_weights(models[1]), strict=True)]
    alone = make_model("logistic", 5, seed=0)
    train_model(alone, x[:10], y[:10], TrainSettings(epochs=1, batch_size=50), seed=0)
    assert max(moved) > 0
    assert predict_stacked(models, x).shape == (200, 2)


def test_fedavg_side_by_side_learns_for_every_shadow() -> None:
    x, y = _data(1200)
    shards = [
        FirmShard(x[i::3], y[i::3], np.random.default_rng(i).random((len(y[i::3]), 4)) < 0.8)
        for i in range(3)
    ]

    models = fedavg_stacked(
        shards,
        ModelSpec("logistic", 5, 8, 0),
        k=4,
        settings=TrainSettings(epochs=1, batch_size=32, learning_rate=0.05),
        federation=FederationSettings(rounds=8, optimiser="fedavg", server_learning_rate=1.0),
        seed=0,
    )

    for model in models:
        assert roc_auc_score(y, predict_default(model, x)) > 0.75


def test_closed_form_logistic_dp_gradients_equal_the_generic_per_example_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import copy

    from torch.func import stack_module_state

    from experiments.leakage import shadows
    from experiments.leakage.shadows import StackedDP, _dp_gradients

    # Prepare: three logistic models, a batch with rows masked out, clipping that binds
    models = [ModelSpec("logistic", 6, 8, seed).build() for seed in range(3)]
    params, buffers = stack_module_state(models)
    template = copy.deepcopy(models[0]).to("meta")
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.normal(size=(40, 6)) * 3, dtype=torch.float32)
    y = torch.as_tensor(rng.random(40) < 0.3, dtype=torch.float32)
    mask = torch.as_tensor(rng.random((3, 40)) < 0.7, dtype=torch.float32)
    expected = torch.full((3,), 20.0)
    dp = StackedDP(noise_multiplier=0.8, max_grad_norm=0.5)

    def gradients() -> dict[str, torch.Tensor]:
        noise = torch.Generator().manual_seed(5)
        return _dp_gradients(template, params, buffers, x, y, mask, expected, dp, noise)

    # Execute: closed form, then the generic torch.func path
    closed = gradients()
    monkeypatch.setattr(shadows, "LOGISTIC", ("no such parameter",))
    generic = gradients()

    # Assert: the same noisy gradients (the noise is drawn alike)
    assert closed.keys() == generic.keys()
    for name in closed:
        assert closed[name].shape == generic[name].shape
        assert torch.allclose(closed[name], generic[name], atol=1e-5), name
