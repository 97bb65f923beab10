"""The attack glue: each regime's surface is well formed, and shadows are shared by recipe."""

import numpy as np
import pytest

from experiments.config import parse_config
from experiments.leakage.attacks import (
    attribute_figures,
    membership_figures,
    membership_surface,
)
from experiments.regimes.standalone import Holdout, RegimeOutput, run_local_only, run_unified
from experiments.world.synthetic import generate_world

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
def test_a_surface_is_a_matched_pool_of_citizens_with_the_released_predictions(
    world, holdout, regime
) -> None:
    output = regime(world, holdout, CONFIG, 0)

    surface = membership_surface(world, holdout, CONFIG, 0, output)

    citizens = surface.citizens
    assert len(citizens.citizens) == 300 and citizens.is_member.sum() == 150
    n = len(surface.labels)
    assert n == len(citizens.rows) >= 300
    np.testing.assert_array_equal(surface.is_member, citizens.is_member[citizens.citizen_of_row])
    assert surface.target_probabilities.shape == (n,)
    membership = np.zeros((len(citizens.citizens), 2), bool)
    membership[::2, 0] = True
    membership[:, 1] = ~membership[:, 0]
    shadows = surface.train_all(citizens.row_membership(membership))
    assert shadows.shape == (n, 2) and np.all((shadows > 0) & (shadows < 1))


def test_regimes_of_one_recipe_share_their_shadows(world, holdout) -> None:
    # Prepare: two federated surfaces differing only in the released model
    from clients.participant import ModelSpec

    spec = ModelSpec("logistic", len(world.columns_of("ecommerce", {"common"})), 8, 0)
    a = RegimeOutput("federated_plain", np.zeros(1), models={"global": spec.build()})
    b = RegimeOutput("federated_secagg", np.zeros(1), models={"global": spec.build()})
    cache: dict = {}

    # Execute
    first = membership_surface(world, holdout, CONFIG, 0, a)
    membership_figures(first, CONFIG, 0, cache)
    trained = {k: v.copy() for k, v in cache.items()}
    result = membership_figures(membership_surface(world, holdout, CONFIG, 0, b), CONFIG, 0, cache)

    # Assert: one recipe trained once, its k shadows predicting every row of the pool
    assert list(trained) == ["federated"]
    assert trained["federated"].shape == (len(first.labels), CONFIG.membership.shadows)
    np.testing.assert_array_equal(cache["federated"], trained["federated"])
    assert 0.0 <= result["lira"]["auc"] <= 1.0
    assert result["citizen_lira"]["n_members"] == CONFIG.membership.pool // 2


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


def test_a_dp_regime_is_attacked_with_shadows_trained_with_its_own_dp(world, holdout) -> None:
    # Prepare: a DP regime whose firms' ledgers hold their noise multipliers
    from clients.participant import ModelSpec

    spec = ModelSpec("logistic", len(world.columns_of("ecommerce", {"common"})), 8, 0)
    noise = {firm: 0.8 + 0.1 * i for i, firm in enumerate(world.firms)}
    dp = {"per_firm": {firm: {"noise_multiplier": sigma} for firm, sigma in noise.items()}}
    plain = RegimeOutput("federated_plain", np.zeros(1), models={"global": spec.build()})
    private = RegimeOutput(
        "federated_dp_eps1", np.zeros(1), models={"global": spec.build()}, info={"dp": dp}
    )
    config = CONFIG.model_copy(
        update={"federation": CONFIG.federation.model_copy(update={"rounds": 2})}
    )
    cache: dict = {}

    # Execute
    plain_surface = membership_surface(world, holdout, config, 0, plain)
    dp_surface = membership_surface(world, holdout, config, 0, private)
    membership_figures(plain_surface, config, 0, cache)
    result = membership_figures(dp_surface, config, 0, cache)

    # Assert: its own recipe, DP-SGD with each firm's noise and the federation's clipping norm
    assert plain_surface.shadow_dp is None
    assert dp_surface.recipe == "federated_dp_eps1"
    assert dp_surface.shadow_dp is not None
    assert [d.noise_multiplier for d in dp_surface.shadow_dp] == list(noise.values())
    assert {d.max_grad_norm for d in dp_surface.shadow_dp} == {CONFIG.federation.dp_max_grad_norm}
    assert set(cache) == {"federated", "federated_dp_eps1"}
    assert np.abs(cache["federated_dp_eps1"] - cache["federated"]).max() > 1e-3
    assert 0.0 <= result["citizen_lira"]["auc"] <= 1.0
