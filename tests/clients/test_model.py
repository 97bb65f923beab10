import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from clients.model import (
    flatten_weights,
    get_weights,
    make_model,
    set_weights,
    unflatten_weights,
)
from clients.scaling import FeatureScaler
from clients.training import TrainSettings, per_example_loss, predict_default, train_model


def _separable(rows: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((rows, 4)).astype(np.float32)
    logit = 6 * x[:, 0] - 4 * x[:, 1] - 1
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    return x, y


@pytest.mark.parametrize("kind", ["logistic", "mlp"])
def test_both_models_learn_a_known_signal(kind: str) -> None:
    x, y = _separable()
    model = make_model(kind, n_features=4, hidden=8, seed=0)

    train_model(model, x, y, TrainSettings(epochs=10, batch_size=64, learning_rate=0.05), seed=0)

    assert roc_auc_score(y, predict_default(model, x)) > 0.8


def test_same_seed_gives_the_same_model_and_training() -> None:
    x, y = _separable()
    settings = TrainSettings(epochs=2, batch_size=128)
    a, b = make_model("logistic", 4, seed=3), make_model("logistic", 4, seed=3)

    train_model(a, x, y, settings, seed=7)
    train_model(b, x, y, settings, seed=7)

    for wa, wb in zip(get_weights(a), get_weights(b), strict=True):
        np.testing.assert_array_equal(wa, wb)


def test_weights_round_trip_through_a_flat_vector() -> None:
    model = make_model("mlp", 5, hidden=6, seed=1)
    weights = get_weights(model)

    other = make_model("mlp", 5, hidden=6, seed=2)
    set_weights(other, unflatten_weights(flatten_weights(weights), weights))

    for a, b in zip(weights, get_weights(other), strict=True):
        np.testing.assert_array_equal(a, b)


def test_wrong_shapes_are_rejected_with_the_expected_shape() -> None:
    model = make_model("logistic", 3)

    with pytest.raises(ValueError, match=r"expected shape \(1, 3\)"):
        set_weights(model, [np.zeros((1, 4)), np.zeros(1)])
    with pytest.raises(ValueError, match=r"model\.kind"):
        make_model("forest", 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="labels must have shape"):
        train_model(model, np.zeros((3, 3)), np.zeros(4), TrainSettings(), seed=0)


def test_per_example_loss_is_lower_on_rightly_classified_rows() -> None:
    x, y = _separable()
    model = make_model("logistic", 4, seed=0)
    train_model(model, x, y, TrainSettings(epochs=5, learning_rate=0.05), seed=0)

    loss = per_example_loss(model, x, y)
    pd_ = predict_default(model, x)

    right = (pd_ > 0.5) == (y == 1)
    assert loss.shape == (len(y),)
    assert loss[right].max() < loss[~right].min()


def test_scaler_uses_declared_ranges_and_clips() -> None:
    table = pd.DataFrame({"a": [0.0, 5.0, 20.0], "b": [1.0, 2.0, 3.0]})

    scaler = FeatureScaler.from_ranges(["a", "b"], [0.0, None], [10.0, None], local=table)
    scaled = scaler.transform(table)

    np.testing.assert_allclose(scaled[:, 0], [0.0, 0.5, 1.0])
    np.testing.assert_allclose(scaled[:, 1], [0.0, 0.5, 1.0])


def test_scaler_refuses_an_empty_range_and_missing_columns() -> None:
    with pytest.raises(ValueError, match="must exceed"):
        FeatureScaler.from_ranges(["a"], [1.0], [1.0])
    with pytest.raises(ValueError, match="declares no range"):
        FeatureScaler.from_ranges(["a"], [None], [1.0])
    scaler = FeatureScaler.from_ranges(["a"], [0.0], [1.0])
    with pytest.raises(KeyError, match="lacks feature columns"):
        scaler.transform(pd.DataFrame({"b": [1.0]}))


@pytest.mark.parametrize("rows", [300, 370, 580])
def test_dp_training_spends_at_most_its_budget_whatever_the_batch_arithmetic(rows: int) -> None:
    # Prepare: row counts where rows/batch rounds differently from Opacus's batches per epoch
    # (370/256 rounds to 1, while Opacus draws 2 Poisson batches of rate 1/2 each epoch)
    from clients.training import DPSettings, train_model_dp

    x, y = _separable(rows)
    dp = DPSettings(target_epsilon=4.0, target_delta=1e-5, max_grad_norm=1.0, total_rounds=1)
    model = make_model("logistic", 4, seed=0)

    # Execute
    report = train_model_dp(model, x, y, TrainSettings(epochs=1, batch_size=256), dp)

    # Assert: the accountant's ε after the last round is the target, never above it
    assert 0.9 * dp.target_epsilon <= report.epsilon <= dp.target_epsilon * 1.01


@pytest.mark.parametrize(("rows", "batch_size"), [(2000, 256), (12, 4)])
def test_dp_batches_fetched_whole_train_the_same_model_as_row_by_row(
    rows: int, batch_size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    import torch.utils.data

    from clients import training
    from clients.streams import NoiseSeeds
    from clients.training import DPSettings, train_model_dp

    # Prepare: the same data, seeds and budget; 12 rows in batches of 4 gives empty batches
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 5)).astype(np.float32)
    y = (x[:, 0] + rng.normal(size=rows) > 0.5).astype(np.float32)
    dp = DPSettings(target_epsilon=2.0, target_delta=1e-5, max_grad_norm=1.0, total_rounds=2)
    settings = TrainSettings(epochs=3, batch_size=batch_size, learning_rate=0.05)

    def trained() -> list[torch.Tensor]:
        model = make_model("logistic", 5, seed=3)
        train_model_dp(model, x, y, settings, dp, NoiseSeeds(sampler=11, noise=12))
        return [p.detach().clone() for p in model.parameters()]

    # Execute: with whole batches, then with Opacus fetching row by row (a plain TensorDataset)
    whole = trained()
    real_loader = torch.utils.data.DataLoader

    plain_loaders = []

    def row_by_row(dataset: torch.utils.data.TensorDataset, **kwargs: object) -> object:
        kwargs.pop("collate_fn")
        plain = torch.utils.data.TensorDataset(*dataset.tensors)
        plain_loaders.append(plain)
        return real_loader(plain, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(torch.utils.data, "DataLoader", row_by_row)
    rows_fetched = trained()

    # Assert: bit for bit
    assert len(plain_loaders) == 1 and not isinstance(plain_loaders[0], training._RowBatches)
    assert all(torch.equal(a, b) for a, b in zip(whole, rows_fetched, strict=True))
