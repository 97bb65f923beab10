"""The attack glue: each regime's surface is well formed, and shadows are shared by recipe."""

import numpy as np
import pytest

from experiments.attacks import (
    attribute_figures,
    fedavg_in_process,
    membership_figures,
    membership_surface,
)
from experiments.config import parse_config
from experiments.regimes import Holdout, RegimeOutput, run_local_only, run_unified
from experiments.world import generate_world

CONFIG = parse_config(
    {
        "experiment": {"name": "attacks", "seeds": [0]},
        "training": {"epochs": 2, "learning_rate": 0.05},
        "federation": {"rounds": 10},
        "membership": {"pool": 300, "shadows": 4},
    }
)


@pytest.fixture(scope="module")
def world():
    return generate_world(3_000, seed=4)


@pytest.fixture(scope="module")
def holdout(world):
    return Holdout.draw(world, 0.25, seed=0)


@pytest.mark.parametrize("regime", [run_unified, run_local_only])
def test_a_surface_is_a_balanced_pool_with_the_released_predictions(world, holdout, regime) -> None:
    output = regime(world, holdout, CONFIG, 0)

    surface = membership_surface(world, holdout, CONFIG, 0, output)

    n = len(surface.labels)
    assert n == 300
    assert surface.is_member.sum() == n // 2
    assert surface.target_probabilities.shape == (n,)
    mask = np.zeros(n, bool)
    mask[::2] = True
    shadow = surface.train_and_score(mask, 0)
    assert shadow.shape == (n,) and np.all((shadow > 0) & (shadow < 1))


def test_regimes_of_one_recipe_share_their_shadows(world, holdout) -> None:
    # Prepare: two federated surfaces differing only in the released model
    from clients.participant import ModelSpec

    spec = ModelSpec("logistic", len(world.columns_of("ecommerce", {"common"})), 8, 0)
    a = RegimeOutput("federated_plain", np.zeros(1), models={"global": spec.build()})
    b = RegimeOutput("federated_secagg", np.zeros(1), models={"global": spec.build()})
    cache: dict = {}

    # Execute
    membership_figures(membership_surface(world, holdout, CONFIG, 0, a), CONFIG, 0, cache)
    trained = dict(cache)
    membership_figures(membership_surface(world, holdout, CONFIG, 0, b), CONFIG, 0, cache)

    # Assert: the second regime trained no shadow of its own
    assert len(trained) == CONFIG.membership.shadows
    assert cache.keys() == trained.keys()


def test_in_process_fedavg_learns(world, holdout) -> None:
    from sklearn.metrics import roc_auc_score

    from clients.participant import FirmData, ModelSpec
    from clients.training import predict_default
    from experiments.regimes import common_features

    data = []
    for firm, table in world.firms.items():
        x, y = common_features(world, firm, table), table["default_12m"].to_numpy(np.float32)
        data.append(FirmData(firm, (), x, y, x, y))
    spec = ModelSpec("logistic", data[0].train_features.shape[1], 8, 0)

    weights = fedavg_in_process(data, spec, CONFIG, seed=0)

    from clients.model import get_weights, set_weights, unflatten_weights

    model = spec.build()
    set_weights(model, unflatten_weights(weights, get_weights(model)))
    x = np.concatenate([d.train_features for d in data])
    y = np.concatenate([d.train_labels for d in data])
    assert roc_auc_score(y, predict_default(model, x)) > 0.7


def test_attribute_figures_cover_every_sensitive_attribute_once_per_citizen(world, holdout) -> None:
    output = run_unified(world, holdout, CONFIG, 0)

    figures = attribute_figures(world, holdout, output, seed=0)

    assert set(figures) == {
        "ethnic_minority",
        "religious_practice",
        "chronic_health",
        "political_expression",
    }
    n = figures["ethnic_minority"]["n_rows"]
    assert n == len(holdout.pairs["national_id"].unique())
