import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments.leakage.server_view import (
    disaggregate,
    disaggregation_attack,
    infer,
    invert_single_record,
    pack,
    participation_schedule,
    probe_gradient,
    server_view,
)


def _firm(rng: np.random.Generator, rows: int, rate: float, shift: float):
    x = np.clip(rng.random((rows, 5)) * 0.5 + shift, 0, 1)
    y = (rng.random(rows) < rate).astype(np.int8)
    return x, y


@given(st.lists(st.floats(0, 1), min_size=3, max_size=3), st.sampled_from([0, 1]))
def test_gradient_inversion_recovers_a_single_record_exactly(row: list[float], label: int) -> None:
    x = np.array([row])

    recovered = invert_single_record(probe_gradient(x, np.array([label])))

    np.testing.assert_allclose(recovered, x[0], atol=1e-12)


def test_an_individual_update_reveals_the_firms_default_rate_exactly() -> None:
    rng = np.random.default_rng(0)
    x, y = _firm(rng, 500, 0.2, 0.1)

    inference = infer(pack(probe_gradient(x, y), len(y), public_bound=10_000))

    assert inference.default_rate == pytest.approx(y.mean(), abs=1e-12)


def test_with_secure_aggregation_the_server_only_learns_the_pooled_firm() -> None:
    # Prepare: two firms with very different default rates and features
    rng = np.random.default_rng(1)
    firms = {"safe": _firm(rng, 400, 0.02, 0.0), "risky": _firm(rng, 400, 0.4, 0.5)}

    # Execute
    result = server_view(firms, public_bound=1_000, seed=0)

    # Assert: plain reveals each firm; the sum is off by about half the gap between firms
    assert result.aggregate_exact and result.survivors == 2
    for firm in firms:
        assert result.plain[firm]["default_rate_error"] < 1e-9
        assert result.plain[firm]["single_record_error"] < 1e-9
        assert result.secagg[firm]["default_rate_error"] > 0.1
        assert result.secagg[firm]["single_record_error"] > 0.05


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 8), st.integers(0, 2**31))
def test_disaggregation_is_exact_when_participation_has_full_rank(firms: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(firms, 4))
    participation = np.vstack([np.eye(firms, dtype=bool), rng.random((3, firms)) < 0.5])
    participation[:firms] |= np.roll(np.eye(firms, dtype=bool), 1, axis=1)  # pairs, never one alone
    if np.linalg.matrix_rank(participation.astype(float)) < firms:
        return

    estimates, rank = disaggregate(participation, participation.astype(float) @ vectors)

    assert rank == firms
    np.testing.assert_allclose(estimates, vectors, atol=1e-9)


def test_fixed_participation_defeats_disaggregation_at_a_cost() -> None:
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(8, 6))

    changing, share_any = participation_schedule(30, 8, 0.75, "any", rng)
    fixed, share_fixed = participation_schedule(30, 8, 0.75, "fixed", rng)
    attack = disaggregation_attack(vectors, changing, share_any)
    defended = disaggregation_attack(vectors, fixed, share_fixed)

    assert attack.rank == 8 and attack.relative_error < 1e-9
    assert defended.rank <= 1 and defended.relative_error > 0.5
    assert defended.completed_round_share < attack.completed_round_share


def test_an_unknown_policy_is_named() -> None:
    with pytest.raises(ValueError, match="policy must be"):
        participation_schedule(3, 3, 0.5, "random", np.random.default_rng(0))
