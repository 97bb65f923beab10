"""What the server received, kept per round in `received.jsonl`; who a round invites."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.federation import content_ordered_sum, run_federation, sample_nodes
from server.inprocess import InProcessGrid
from server.rounds import RECEIVED_FILE
from server.settings import FederationRun

Tweak = Callable[..., FederationRun]


def _lines(run: FederationRun) -> list[dict[str, object]]:
    text = (Path(run.run_dir) / RECEIVED_FILE).read_text()
    return [json.loads(line) for line in text.splitlines()]


def test_in_the_clear_the_file_keeps_every_firms_vector_and_their_sum(
    make_grid: Callable[..., InProcessGrid], settings: FederationRun, tweak: Tweak
) -> None:
    # Prepare
    plain = tweak(settings, secagg="none", rounds=2)
    # Execute
    run_federation(make_grid(), plain)
    # Assert
    lines = _lines(plain)
    assert [line["round"] for line in lines] == [1, 2]
    for line in lines:
        individual = {int(n): np.array(v) for n, v in line["individual"].items()}  # type: ignore[attr-defined]
        assert sorted(individual) == line["contributors"]
        assert len(individual) == 4
        aggregate = np.array(line["aggregate"])
        # the server's sum, to the bit (summed in content order), and the plain sum up to rounding
        assert content_ordered_sum(list(individual.values()), len(aggregate)).tobytes() == (
            aggregate.tobytes()
        )
        np.testing.assert_allclose(sum(individual.values()), aggregate, rtol=1e-12, atol=1e-15)


def test_through_secure_aggregation_the_file_keeps_only_the_sum(
    make_grid: Callable[..., InProcessGrid], settings: FederationRun, tweak: Tweak, tmp_path: Path
) -> None:
    # Prepare
    plain = tweak(settings, secagg="none", rounds=1, run_dir=str(tmp_path / "plain"))
    secure = tweak(settings, secagg="ours", rounds=1, run_dir=str(tmp_path / "secure"))
    # Execute
    run_federation(make_grid(), plain)
    run_federation(make_grid(), secure)
    # Assert: no individual vector, and the same sum up to quantisation (4 firms / 2**16)
    (seen,), (summed,) = _lines(secure), _lines(plain)
    assert seen["individual"] == {}
    assert len(seen["contributors"]) == 4  # type: ignore[arg-type]
    np.testing.assert_allclose(seen["aggregate"], summed["aggregate"], rtol=0, atol=4 / 2**16)


def test_a_round_with_partial_participation_invites_other_firms_each_round(
    make_grid: Callable[..., InProcessGrid], settings: FederationRun, tweak: Tweak
) -> None:
    # Prepare: half of the four firms per round
    partial = tweak(settings, secagg="ours", rounds=4, fraction=0.5)
    # Execute
    result = run_federation(make_grid(), partial)
    # Assert
    joined = [tuple(line["contributors"]) for line in _lines(partial)]  # type: ignore[arg-type]
    assert all(len(nodes) == 2 for nodes in joined)
    assert len(set(joined)) > 1
    assert [r["contributors"] for r in result.history] == [2, 2, 2, 2]


@given(
    ids=st.lists(st.integers(1, 2**64 - 1), min_size=3, max_size=12, unique=True),
    round_number=st.integers(1, 50),
)
def test_a_sample_holds_only_real_node_ids_whatever_their_size(
    ids: list[int], round_number: int
) -> None:
    # Prepare: ids on both sides of 2**63 turn a numpy array into float64
    run = FederationRun.model_validate({"federation": {"fraction": 0.5}})
    nodes = sorted(ids)
    # Execute
    sample = sample_nodes(nodes, run, round_number)
    # Assert
    assert set(sample) <= set(nodes)
    assert len(sample) == max(2, int(np.ceil(0.5 * len(nodes))))
    assert sample == sample_nodes(nodes, run, round_number)  # the same seed and round: the same


def test_a_sample_of_small_ids_is_the_one_drawn_before_the_fix() -> None:
    # Prepare: the draw of positions and numpy's draw from the list agree below 2**63
    from clients.streams import Stream, generator

    run = FederationRun.model_validate({"seed": 3, "federation": {"fraction": 0.4}})
    nodes = list(range(100, 110))
    # Execute
    sample = sample_nodes(nodes, run, round_number=7)
    # Assert
    rng = generator(Stream.NODE_SAMPLING, 3, 7)
    assert sample == sorted(int(n) for n in rng.choice(nodes, size=4, replace=False))


@pytest.mark.parametrize("fraction", [0.0, 1.5, -0.2])
def test_a_fraction_outside_0_to_1_is_named(fraction: float) -> None:
    # Execute / Assert
    with pytest.raises(ValueError, match=r"fraction: Input should be"):
        FederationRun.from_run_config({"fraction": fraction})
