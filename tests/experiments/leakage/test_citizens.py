"""The citizen as the unit: matched pools, rows that move together, ε composed over firms."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from clients.settings import DPSettings, TrainSettings
from clients.streams import NoiseSeeds
from clients.training import train_model_dp
from experiments.leakage.citizens import (
    FirmMechanism,
    citizen_pool,
    citizen_privacy,
    composed_epsilon,
    firm_mechanism,
    per_citizen,
)
from experiments.leakage.shadows import StackedDP, shadow_models, train_stacked


def _universe(seed: int, citizens: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of citizens in 1..4 firms, one label per citizen, a quarter held out."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(1, 5, citizens)
    ids = np.repeat(rng.permutation(10 * citizens)[:citizens], rows)
    label = np.repeat(rng.random(citizens) < 0.15, rows).astype(np.float32)
    member = np.repeat(rng.random(citizens) < 0.75, rows)
    return ids, label, member


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), citizens=st.integers(20, 400), size=st.integers(2, 300))
def test_the_pool_matches_members_and_non_members_exactly(seed, citizens, size) -> None:
    ids, labels, member = _universe(seed, citizens)

    pool = citizen_pool(ids, labels, member, size, np.random.default_rng(seed))

    inside = pool.is_member
    assert inside.sum() == (~inside).sum() <= size // 2
    assert pool.labels[inside].sum() == pool.labels[~inside].sum()
    row_member = inside[pool.citizen_of_row]
    assert row_member.sum() == (~row_member).sum()
    assert labels[pool.rows][row_member].sum() == labels[pool.rows][~row_member].sum()
    np.testing.assert_array_equal(ids[pool.rows], pool.citizens[pool.citizen_of_row])


def test_a_citizens_rows_move_together_and_the_rest_holds_none_of_the_pool() -> None:
    ids, labels, member = _universe(0, 500)
    pool = citizen_pool(ids, labels, member, 200, np.random.default_rng(0))
    citizen_membership = np.random.default_rng(1).random((len(pool.citizens), 6)) < 0.5

    rows = pool.row_membership(citizen_membership)

    for index, citizen in enumerate(pool.citizens):
        own = rows[ids[pool.rows] == citizen]
        assert len(own) == (ids == citizen).sum()
        assert (own == citizen_membership[index]).all()
    assert not np.isin(ids[pool.rest], pool.citizens).any()
    assert member[pool.rest].all()
    assert len(pool.rest) == member.sum() - member[pool.rows].sum()


def test_a_citizen_whose_rows_disagree_on_membership_is_refused() -> None:
    with pytest.raises(ValueError, match="same on every row of a citizen"):
        citizen_pool(
            np.array([1, 1, 2]),
            np.zeros(3),
            np.array([True, False, True]),
            2,
            np.random.default_rng(0),
        )


def test_a_citizens_score_is_the_sum_over_their_rows() -> None:
    scores = per_citizen(np.array([1.0, 2.0, 4.0, 8.0]), np.array([0, 1, 0, 2]), 3)

    np.testing.assert_array_equal(scores, [5.0, 2.0, 8.0])


def test_one_firm_gives_exactly_opacus_epsilon_and_more_firms_give_more() -> None:
    from opacus.accountants import RDPAccountant

    mechanism = FirmMechanism(noise_multiplier=1.1, sample_rate=0.01, steps=2_000)
    accountant = RDPAccountant()
    accountant.history = [(1.1, 0.01, 2_000)]

    one = composed_epsilon([mechanism], 1e-5)
    many = [composed_epsilon([mechanism] * k, 1e-5) for k in (2, 4, 8)]

    assert one == pytest.approx(accountant.get_epsilon(1e-5), rel=1e-12)
    assert one < many[0] < many[1] < many[2]
    assert many[1] < 4 * one  # RDP composes better than adding ε


def test_the_rebuilt_mechanism_is_what_dp_sgd_ran() -> None:
    # Prepare: DP-SGD at one firm for 2 rounds, as the federation runs it
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    y = (rng.random(300) < 0.3).astype(np.float32)
    train = TrainSettings(epochs=2, batch_size=64, learning_rate=0.05)
    dp = DPSettings(target_epsilon=2.0, target_delta=1e-5, max_grad_norm=1.0, total_rounds=2)
    model = torch.nn.Linear(4, 1)
    torch.nn.init.zeros_(model.weight)
    report = train_model_dp(
        torch.nn.Sequential(model, torch.nn.Flatten(0)),
        x,
        y,
        train,
        dp,
        NoiseSeeds(1, 2),
        completed_rounds=1,
    )

    # Execute
    rebuilt = firm_mechanism(300, 64, 2, 2, report.noise_multiplier)
    ledger = {"round": 2, "epsilon": report.epsilon, "noise_multiplier": report.noise_multiplier}
    figures = citizen_privacy({"a": np.arange(300)}, {"a": ledger}, 64, 2, 1e-5)

    # Assert
    assert rebuilt.sample_rate == report.sample_rate
    assert composed_epsilon([rebuilt], 1e-5) == pytest.approx(report.epsilon, rel=1e-9)
    assert figures["citizen_epsilon_max"] == pytest.approx(report.epsilon, rel=1e-9)


def test_citizens_in_more_firms_spend_more_and_a_wrong_ledger_is_an_error() -> None:
    def ledger(rows: int, sigma: float) -> dict[str, float]:
        mechanism = firm_mechanism(rows, 50, 1, 3, sigma)
        return {
            "round": 3,
            "noise_multiplier": sigma,
            "epsilon": composed_epsilon([mechanism], 1e-5),
        }

    firms = {"a": np.arange(0, 100), "b": np.arange(50, 150), "c": np.arange(99, 200)}
    ledgers = {"a": ledger(100, 1.0), "b": ledger(100, 1.0), "c": ledger(101, 1.0)}

    figures = citizen_privacy(firms, ledgers, 50, 1, 1e-5)

    one_firm = ledgers["a"]["epsilon"]
    assert figures["citizen_epsilon_median"] > one_firm  # most citizens are in two firms
    assert figures["citizen_epsilon_max"] > figures["citizen_epsilon_median"]  # citizen 99
    ledgers["c"] = {**ledgers["c"], "epsilon": 0.5}
    with pytest.raises(RuntimeError, match="firm c"):
        citizen_privacy(firms, ledgers, 50, 1, 1e-5)


def _stacked(dp: StackedDP | None, include: np.ndarray) -> list[torch.nn.Module]:
    from clients.participant import ModelSpec

    rng = np.random.default_rng(3)
    x = rng.normal(size=(256, 5)).astype(np.float32)
    y = (x[:, 0] + rng.normal(size=256) > 0).astype(np.float32)
    models = shadow_models(ModelSpec("mlp", 5, 8, 0), include.shape[1], 0)
    train_stacked(models, x, y, include, TrainSettings(epochs=2, batch_size=64), 7, dp)
    return models


def _flat(models: list[torch.nn.Module]) -> np.ndarray:
    return np.stack(
        [torch.cat([p.detach().ravel() for p in m.parameters()]).numpy() for m in models]
    )


def test_dp_sgd_without_noise_or_clipping_is_the_plain_recipe() -> None:
    include = np.ones((256, 3), dtype=bool)  # full batches: the expected batch is the batch

    plain = _flat(_stacked(None, include))
    unclipped = _flat(_stacked(StackedDP(noise_multiplier=0.0, max_grad_norm=1e9), include))

    np.testing.assert_allclose(unclipped, plain, atol=1e-5)


def test_dp_shadows_differ_from_plain_ones_and_masked_rows_still_count_nothing() -> None:
    include = np.random.default_rng(0).random((256, 4)) < 0.5

    plain = _flat(_stacked(None, include))
    private = _flat(_stacked(StackedDP(noise_multiplier=1.0, max_grad_norm=0.5), include))
    clipped_only = _flat(_stacked(StackedDP(noise_multiplier=0.0, max_grad_norm=0.5), include))

    assert np.abs(private - plain).max() > 1e-2
    assert np.abs(private - clipped_only).max() > 1e-2  # the noise is there
    assert np.isfinite(private).all()
