"""The server view, measured on what a real federation sent the server (in process)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clients.app import build_client_app
from clients.participant import CONTRIBUTION_TAIL, load_firm_data
from experiments.leakage.server_view import (
    FirmFigures,
    ReceivedRound,
    disaggregate,
    disaggregation_attack,
    first_round_view,
    heterogeneity_baseline,
    mean_over_firms,
    participation_schedule,
    rate_from_brier,
    read_received,
    read_vector,
    real_disaggregation,
)
from experiments.world.synthetic import generate_world
from experiments.world.tables import write_world
from server.federation import run_federation
from server.inprocess import InProcessGrid
from server.rounds import RECEIVED_FILE
from server.settings import FederationRun, FederationSettings, TrainSettings

FIRMS = 8
SCALE = 10_000.0


@given(st.floats(0.0, 0.5))
def test_a_calibrated_brier_score_reads_back_as_the_default_rate(rate: float) -> None:
    # Execute / Assert: B = ȳ (1 − ȳ) inverts on [0, 1/2]
    assert rate_from_brier(rate * (1 - rate)) == pytest.approx(rate, abs=1e-6)


def test_a_vector_gives_its_size_and_a_sum_the_mean_size() -> None:
    # Prepare: weight n / S = 0.25, a Brier sum of 0.09 per row (ȳ = 0.1)
    tail = np.zeros(len(CONTRIBUTION_TAIL))
    tail[0], tail[2] = 0.25, 0.25 * 0.09
    vector = np.concatenate([np.ones(3), tail])
    # Execute
    one, two = read_vector(vector, 1000.0), read_vector(2 * vector, 1000.0, firms=2)
    # Assert
    assert one.rows == pytest.approx(250) and two.rows == pytest.approx(250)
    assert one.default_rate == pytest.approx(0.1) and two.default_rate == pytest.approx(0.1)


def test_the_baseline_is_the_best_guess_shared_by_every_firm() -> None:
    # Prepare
    truth = {
        f: FirmFigures(rows=100.0 * (i + 1), default_rate=r)
        for i, (f, r) in enumerate({"a": 0.1, "b": 0.2, "c": 0.6}.items())
    }
    # Execute
    baseline = mean_over_firms(heterogeneity_baseline(truth))
    # Assert: the median rate (0.2) and, for the relative size error, a guess of 100 rows (the
    # median weighted by 1 / rows)
    assert baseline["default_rate_error"] == pytest.approx((0.1 + 0.4) / 3)
    assert baseline["size_error"] == pytest.approx((0.0 + 0.5 + 2 / 3) / 3)


def _calibrated_vector(truth: FirmFigures, scale: float) -> np.ndarray:
    """A firm's contribution whose model has no resolution: Brier per row = ȳ (1 − ȳ)."""
    weight = truth.rows / scale
    tail = np.zeros(len(CONTRIBUTION_TAIL))
    tail[0] = weight
    tail[2] = weight * truth.default_rate * (1 - truth.default_rate)
    return np.concatenate([np.full(3, weight), tail])


firm_figures = st.builds(
    FirmFigures, rows=st.integers(10, 5000).map(float), default_rate=st.floats(0.0, 0.5)
)


@settings(max_examples=50, deadline=None)
@given(st.lists(firm_figures, min_size=2, max_size=8, unique_by=lambda f: f.rows))
def test_a_sum_over_every_firm_never_beats_the_baseline_and_vectors_read_exactly(
    figures: list[FirmFigures],
) -> None:
    # Prepare: one round every firm joins, node i being firm i
    truth = {f"firm{i}": f for i, f in enumerate(figures)}
    vectors = {100 + i: _calibrated_vector(f, SCALE) for i, f in enumerate(figures)}
    total = np.sum(list(vectors.values()), axis=0)
    nodes = sorted(vectors)
    plain_round = ReceivedRound(1, nodes, total, vectors)
    secure_round = ReceivedRound(1, nodes, total, {})
    # Execute
    plain = mean_over_firms(first_round_view(plain_round, truth, SCALE))
    secure = mean_over_firms(first_round_view(secure_round, truth, SCALE))
    baseline = mean_over_firms(heterogeneity_baseline(truth))
    # Assert
    assert plain["size_error"] == pytest.approx(0.0, abs=1e-9)
    assert plain["default_rate_error"] == pytest.approx(0.0, abs=1e-6)
    for metric in ("default_rate_error", "size_error"):
        assert secure[metric] >= baseline[metric] - 1e-9


def test_disaggregation_of_constant_vectors_needs_full_rank() -> None:
    # Prepare: four firms, pairs of them per round, then every firm every round
    truth = {f"firm{i}": FirmFigures(100.0 * (i + 1), 0.05 * (i + 1)) for i in range(4)}
    vectors = [_calibrated_vector(f, SCALE) for f in truth.values()]
    sets = [(0, 1), (1, 2), (0, 2), (2, 3), (0, 3)]  # a triangle: the pair system has rank 4

    def rounds(participants: list[tuple[int, ...]]) -> list[ReceivedRound]:
        return [
            ReceivedRound(r + 1, list(p), np.sum([vectors[i] for i in p], axis=0), {})
            for r, p in enumerate(participants)
        ]

    # Execute
    changing = real_disaggregation(rounds(sets), truth, SCALE, planned_rounds=5)
    fixed = real_disaggregation(rounds([(0, 1, 2, 3)] * 5), truth, SCALE, planned_rounds=5)
    # Assert
    assert changing["rank"] == 4 and changing["mean_participants"] == 2
    assert changing["size_error"] == pytest.approx(0.0, abs=1e-9)
    assert changing["default_rate_error"] == pytest.approx(0.0, abs=1e-6)
    assert fixed["rank"] == 1
    assert fixed["size_error"] >= mean_over_firms(heterogeneity_baseline(truth))["size_error"]


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic world's eight firms (5,000 citizens): default rates from 3 % to 14 %."""
    directory = tmp_path_factory.mktemp("world")
    write_world(generate_world(5_000, seed=0), directory)
    return directory


def _truth(world_dir: Path) -> dict[str, FirmFigures]:
    """Each firm's training rows (all of them: no citizen is held out here) and default rate."""
    truth = {}
    for firm in json.loads((world_dir / "world.json").read_text())["firms"]:
        labels = load_firm_data(world_dir, str(firm), heldout_ids=None).train_labels
        truth[str(firm)] = FirmFigures(float(len(labels)), float(labels.mean()))
    return truth


def _run(
    world_dir: Path, run_dir: Path, secagg: str, rounds: int = 1, fraction: float = 1.0
) -> Path:
    """A real federation in process: one ClientApp per firm, trained as pilot8's tuned runs
    train (Adam at 0.1, five local epochs), so that round 1's local models are fitted."""
    warnings.filterwarnings("ignore", message="secagg = 'none'")
    run = FederationRun(
        federation=FederationSettings(
            rounds=rounds, local_epochs=5, weight_scale=SCALE, fraction=fraction
        ),
        training=TrainSettings(batch_size=256, learning_rate=0.1),
        secagg=secagg,  # type: ignore[arg-type]
        world_dir=str(world_dir),
        run_dir=str(run_dir),
        evaluate=False,
    )
    grid = InProcessGrid(
        build_client_app({"world-dir": str(world_dir)}),
        [{"partition-id": i} for i in range(FIRMS)],
    )
    run_federation(grid, run)
    return run_dir / RECEIVED_FILE


@pytest.mark.slow  # two real 8-firm rounds in process: 25-45 s on a shared 2-core machine
def test_the_plain_server_reads_each_firm_and_the_secure_one_no_better_than_the_baseline(
    world_dir: Path, tmp_path: Path
) -> None:
    # Prepare: the same run twice, secure aggregation on and off
    truth = _truth(world_dir)
    rates = sorted(t.default_rate for t in truth.values())
    assert rates[-1] - rates[0] > 0.1  # a positive control: firms far apart
    # Execute
    plain = first_round_view(
        read_received(_run(world_dir, tmp_path / "p", "none"))[0], truth, SCALE
    )
    secure = first_round_view(
        read_received(_run(world_dir, tmp_path / "s", "ours"))[0], truth, SCALE
    )
    # Assert: each firm's vector gives its size exactly and its rate closely; the sum gives no
    # firm more than a guess shared by all, so never beats the best such guess
    baseline = mean_over_firms(heterogeneity_baseline(truth))
    plain_mean, secure_mean = mean_over_firms(plain), mean_over_firms(secure)
    assert plain_mean["size_error"] < 1e-9
    assert plain_mean["default_rate_error"] < 0.3 * baseline["default_rate_error"]
    for metric in ("default_rate_error", "size_error"):
        assert secure_mean[metric] >= baseline[metric] - 1e-9
    assert secure_mean["default_rate_error"] > 3 * plain_mean["default_rate_error"]


@pytest.mark.slow  # 13 real secure 8-firm rounds in process: 1-2 minutes
def test_disaggregation_of_a_runs_own_sums_needs_changing_participation(
    world_dir: Path, tmp_path: Path
) -> None:
    # Prepare
    truth = _truth(world_dir)
    # Execute: every firm every round, then half of them in each of 10 rounds
    full = real_disaggregation(
        read_received(_run(world_dir, tmp_path / "f", "ours", rounds=3)), truth, SCALE, 3
    )
    partial = real_disaggregation(
        read_received(_run(world_dir, tmp_path / "h", "ours", rounds=10, fraction=0.5)),
        truth,
        SCALE,
        10,
    )
    # Assert: rank 1 gives each firm the mean size back; changing sets give every size back,
    # up to quantisation
    baseline = mean_over_firms(heterogeneity_baseline(truth))
    assert full["rank"] == 1 and full["size_error"] >= baseline["size_error"] - 1e-9
    assert partial["mean_participants"] == FIRMS / 2
    if partial["rank"] == FIRMS:  # 10 draws of 4 of 8 firms: full rank for this seed
        assert partial["size_error"] < 0.01
    else:
        pytest.fail(f"the sampled participation has rank {partial['rank']}, not {FIRMS}")


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


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 12).flatmap(
        lambda rounds: st.tuples(
            st.lists(
                st.lists(st.booleans(), min_size=6, max_size=6), min_size=rounds, max_size=rounds
            ),
            st.lists(st.floats(-1e3, 1e3), min_size=rounds * 2, max_size=rounds * 2),
        )
    ),
    st.permutations(range(6)),
)
def test_disaggregation_is_numpys_minimum_norm_solution_whatever_the_column_order(
    case: tuple[list[list[bool]], list[float]], order: list[int]
) -> None:
    from experiments.leakage.server_view import disaggregate

    # Prepare: who took part in each round, and the sums the server saw
    participation = np.array(case[0], dtype=bool)
    sums = np.array(case[1]).reshape(len(participation), 2)
    # Execute
    estimates, rank = disaggregate(participation, sums)
    shuffled, _ = disaggregate(participation[:, order], sums)
    # Assert: numpy's answer, and the same bits for every firm in any column order
    reference, _, reference_rank, _ = np.linalg.lstsq(participation.astype(float), sums)
    assert rank == reference_rank
    assert np.allclose(estimates, reference, atol=1e-6 * (1 + np.abs(sums).max()))
    assert np.array_equal(shuffled, estimates[order])
