"""The firm side: finding its own data, the contribution layout, DP accounting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from flwr.app import Context, RecordDict

from clients.app import firm_data
from clients.participant import (
    CONTRIBUTION_TAIL,
    EVALUATION_TAIL,
    ModelSpec,
    evaluation_contribution,
    heldout_sums,
    load_firm_data,
    local_round,
    read_contribution_sum,
    read_heldout_sum,
)
from clients.streams import NoiseSeeds, reproducible_noise_seeds
from clients.training import DPSettings, TrainSettings
from experiments.world.datasets import load_german_credit
from experiments.world.tables import ID, write_world


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("world")
    write_world(load_german_credit(n_firms=3, seed=0), directory)
    return directory


def _context(node_config: dict[str, object]) -> Context:
    return Context(
        run_id=1,
        node_id=7,
        node_config=node_config,
        state=RecordDict(),
        run_config={},  # type: ignore[arg-type]
    )


def test_partition_id_picks_the_firm_and_held_out_rows_are_not_trained_on(
    world_dir: Path, tmp_path: Path
) -> None:
    # Prepare
    import pandas as pd

    table = pd.read_parquet(world_dir / "firms" / "firm_1.parquet")
    heldout = table[ID].to_numpy()[:10]
    np.save(tmp_path / "heldout.npy", heldout)
    context = _context({"partition-id": 1, "holdout-file": str(tmp_path / "heldout.npy")})
    # Execute
    data = firm_data(context, {"world-dir": str(world_dir)})
    # Assert
    assert data.firm == "firm_1"
    assert len(data.train_labels) == len(table) - 10
    assert len(data.eval_labels) == 10


def test_a_node_without_a_firm_gets_a_clear_error(world_dir: Path) -> None:
    # Prepare
    context = _context({"partition-id": 9})
    # Execute / Assert
    with pytest.raises(ValueError, match="partition-id"):
        firm_data(context, {"world-dir": str(world_dir)})


def test_contribution_sums_back_to_the_weighted_mean_update(world_dir: Path) -> None:
    # Prepare
    spec = ModelSpec("logistic", 54, 8, 0)
    start = spec.initial_weights()
    firms = [load_firm_data(world_dir, f"firm_{i}", None) for i in range(3)]
    settings = TrainSettings(epochs=1, batch_size=64)
    # Execute
    results = [local_round(d, spec, start, settings, 1000.0, seed=i) for i, d in enumerate(firms)]
    update = read_contribution_sum(sum(r.contribution for r in results), 1000.0)
    # Assert
    sizes = np.array([r.n_examples for r in results], dtype=float)
    deltas = np.stack(
        [
            r.contribution[: -len(CONTRIBUTION_TAIL)] * 1000.0 / n
            for r, n in zip(results, sizes, strict=True)
        ]
    )
    np.testing.assert_allclose(update.mean_update, sizes @ deltas / sizes.sum(), rtol=1e-9)
    assert update.total_examples == pytest.approx(sizes.sum())
    assert all(np.all(np.abs(r.contribution) <= 1.0) for r in results)


def test_held_out_sums_ride_in_the_contribution_and_leave_the_update_as_it_was(
    world_dir: Path,
) -> None:
    # Prepare: a model a round in, and each firm's held-out rows (its first 30 rows)
    spec = ModelSpec("logistic", 54, 8, 0)
    settings = TrainSettings(epochs=1, batch_size=64)
    first = load_firm_data(world_dir, "firm_0", None)
    weights = (
        spec.initial_weights()
        + local_round(first, spec, spec.initial_weights(), settings, 1000.0, seed=0).contribution[
            : -len(CONTRIBUTION_TAIL)
        ]
    )
    firms = [load_firm_data(world_dir, f"firm_{i}", None) for i in range(3)]
    # Execute
    plain = [local_round(d, spec, weights, settings, 1000.0, seed=i) for i, d in enumerate(firms)]
    scored = [
        local_round(d, spec, weights, settings, 1000.0, seed=i, evaluate=True)
        for i, d in enumerate(firms)
    ]
    only = [evaluation_contribution(d, spec, weights, 1000.0, seed=0) for d in firms]
    # Assert: the update and training sums are bit for bit those of a round without scoring
    tail = len(EVALUATION_TAIL)
    for without, with_sums in zip(plain, scored, strict=True):
        assert np.array_equal(without.contribution[:-tail], with_sums.contribution[:-tail])
        assert not without.contribution[-tail:].any()
    # ... and the pooled sums are those of the weights received, in training or not
    expected = [heldout_sums(d, spec, weights) for d in firms]
    for total in (sum(r.contribution for r in scored), sum(r.contribution for r in only)):
        pooled = read_heldout_sum(total, 1000.0)
        assert pooled is not None
        assert pooled.rows == sum(e.rows for e in expected)
        assert pooled.loss == pytest.approx(sum(e.loss for e in expected), rel=1e-12)
        assert pooled.brier == pytest.approx(sum(e.brier for e in expected), rel=1e-12)
    assert not sum(r.contribution for r in only)[:-tail].any()  # nothing trained
    assert read_heldout_sum(sum(r.contribution for r in plain), 1000.0) is None


def test_a_firm_larger_than_the_weight_scale_is_refused(world_dir: Path) -> None:
    # Prepare
    data = load_firm_data(world_dir, "firm_0", None)
    spec = ModelSpec("logistic", 54, 8, 0)
    # Execute / Assert
    with pytest.raises(ValueError, match="weight_scale"):
        local_round(data, spec, spec.initial_weights(), TrainSettings(epochs=1), 10.0, seed=0)


def test_dp_budget_spent_over_all_rounds_meets_the_target(world_dir: Path) -> None:
    # Prepare
    data = load_firm_data(world_dir, "firm_2", None)
    spec = ModelSpec("logistic", 54, 8, 0)
    dp = DPSettings(target_epsilon=3.0, target_delta=1e-5, max_grad_norm=1.0, total_rounds=3)
    settings = TrainSettings(epochs=1, batch_size=32)
    # Execute: the last round, after a resume (two rounds already spent)
    last = local_round(
        data, spec, spec.initial_weights(), settings, 1000.0, seed=0, dp=dp, completed_rounds=2
    )
    first = local_round(data, spec, spec.initial_weights(), settings, 1000.0, seed=0, dp=dp)
    # Assert
    assert last.epsilon is not None and first.epsilon is not None
    assert first.epsilon < last.epsilon <= 3.0 * 1.01
    assert last.epsilon > 2.5


def test_dp_noise_is_fresh_in_every_run_unless_its_seeds_are_given(world_dir: Path) -> None:
    # Prepare
    data = load_firm_data(world_dir, "firm_1", None)
    spec = ModelSpec("logistic", 54, 8, 0)
    dp = DPSettings(target_epsilon=3.0, target_delta=1e-5, max_grad_norm=1.0, total_rounds=2)
    settings = TrainSettings(epochs=1, batch_size=32)
    seeds = reproducible_noise_seeds(0, 1, "firm_1")

    def contribution(noise_seeds: NoiseSeeds | None) -> np.ndarray:
        start = spec.initial_weights()
        result = local_round(
            data, spec, start, settings, 1000.0, seed=0, dp=dp, noise_seeds=noise_seeds
        )
        return result.contribution

    # Execute: the same firm, round and run seed, four times
    fresh = [contribution(None), contribution(None)]
    seeded = [contribution(seeds), contribution(seeds)]
    # Assert
    assert not np.array_equal(fresh[0], fresh[1])
    assert np.array_equal(seeded[0], seeded[1])


def test_the_client_app_pickles_as_its_recipe_and_answers_like_the_original(
    world_dir: Path,
) -> None:
    # Prepare: the simulation engine pickles the ClientApp with every message it hands a Ray
    # actor (Ray's cloudpickle); by value, its closures made that a third of the driver's
    # per-message work.
    from flwr.app import Array, ArrayRecord
    from flwr.clientapp import ClientApp
    from ray import cloudpickle

    from clients import records as R
    from clients.app import build_client_app
    from server.inprocess import InProcessGrid
    from server.settings import FederationRun

    defaults = {"world-dir": str(world_dir)}
    app = build_client_app(defaults)
    settings = FederationRun(world_dir=str(world_dir))
    spec = settings.model_spec()
    content = RecordDict(
        {
            R.GLOBAL_RECORD: ArrayRecord({R.WEIGHTS: Array(spec.initial_weights())}),
            R.CONFIG_RECORD: settings.round_config(spec, 1).to_record(),
        }
    )

    def evaluate(client_app: ClientApp) -> dict[str, float]:
        grid = InProcessGrid(client_app, [{"partition-id": 0}])
        message = grid.create_message(content, "evaluate", 101, "1")
        (reply,) = grid.send_and_receive([message])
        return dict(reply.content.metric_records[R.METRICS_RECORD])

    # Execute
    pickled = cloudpickle.dumps(app)
    copy = cloudpickle.loads(pickled)
    # Assert
    assert len(pickled) < 1_000, "the ClientApp must pickle as its recipe, not by value"
    assert evaluate(copy) == evaluate(app)
