"""A completed round's survivors form one connected piece of the neighbour graph (SPEC.md §5).

Pairwise masks cancel inside every connected piece of the survivors' graph, so if dropouts
split it, the server reads each piece's sum from what the honest protocol hands it (issue 15,
defect 1). The server must abort before asking for any share.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import ProtocolAbort, SecAggConfig, Stage, run_round
from protocol.graph import graph_seed, neighbour_graph, ring_order

ROUND = 3


def _pieces(graph: Mapping[int, frozenset[int]], members: Collection[int]) -> list[set[int]]:
    """Connected components of the graph induced on `members` (a plain search, for checking)."""
    left, pieces = set(members), []
    while left:
        frontier = [left.pop()]
        piece = set(frontier)
        while frontier:
            for peer in graph[frontier.pop()] & left:
                left.discard(peer)
                piece.add(peer)
                frontier.append(peer)
        pieces.append(piece)
    return pieces


def _ring(num_clients: int) -> list[int]:
    participants = list(range(1, num_clients + 1))
    return [int(c) for c in ring_order(participants, graph_seed(ROUND, participants))]


@pytest.mark.parametrize(
    ("num_clients", "degree", "threshold", "dropped_positions", "piece_sizes"),
    [
        (8, 2, 2, [2, 7], [2, 4]),
        (40, 16, 9, [*range(12, 20), *range(32, 40)], [12, 12]),
    ],
    ids=["n8-k2-t2", "n40-k16-t9"],
)
def test_survivors_split_into_pieces_abort_before_any_share_is_asked_for(
    num_clients: int,
    degree: int,
    threshold: int,
    dropped_positions: list[int],
    piece_sizes: list[int],
) -> None:
    # Prepare: clients at these ring positions go silent after sharing keys, leaving survivors
    # in two pieces; every survivor and every dropped client keeps t live holders, so no other
    # rule stops the round (with one colluder in the piece of 2, the other's input is exposed)
    config = SecAggConfig(
        num_clients=num_clients, neighbours=degree, threshold=threshold, scale=2.0**10
    )
    ring = _ring(num_clients)
    schedule = {ring[p]: Stage.MASKED_INPUT for p in dropped_positions}
    graph = neighbour_graph(ring, degree, graph_seed(ROUND, sorted(ring)))
    survivors = set(ring) - set(schedule)
    assert sorted(len(p) for p in _pieces(graph, survivors)) == piece_sizes
    inputs = np.random.default_rng(0).uniform(-1, 1, (num_clients, 3))
    # Execute
    with pytest.raises(ProtocolAbort, match="not connected") as aborted:
        run_round(config, list(inputs), dropout=schedule, round_number=ROUND)
    # Assert: stopped at masked_input, before any unmask request, so no share was revealed
    assert aborted.value.stage is Stage.MASKED_INPUT
    view = aborted.value.view
    assert view is not None
    assert not view.revealed_self_mask_shares and not view.revealed_masking_key_shares


def test_survivors_joined_through_one_gap_still_complete() -> None:
    # Prepare: one run of k/2 = 8 dropped ring positions leaves the survivors one arc
    config = SecAggConfig(num_clients=40, neighbours=16, threshold=9, scale=2.0**10)
    ring = _ring(40)
    schedule = {ring[p]: Stage.MASKED_INPUT for p in range(12, 20)}
    inputs = np.random.default_rng(1).uniform(-1, 1, (40, 3))
    # Execute
    result = run_round(config, list(inputs), dropout=schedule, round_number=ROUND)
    # Assert
    assert result.exact and len(result.survivors) == 32


@st.composite
def _sparse_rounds(draw: st.DrawFn) -> tuple[SecAggConfig, dict[int, Stage]]:
    num_clients = draw(st.integers(5, 24))
    degree = 2 * draw(st.integers(1, (num_clients - 2) // 2))
    threshold = draw(st.integers((degree + 1) // 2 + 1, degree + 1))
    config = SecAggConfig(
        num_clients=num_clients, neighbours=degree, threshold=threshold, scale=2.0**10
    )
    dropped = draw(
        st.dictionaries(
            st.integers(1, num_clients),
            st.sampled_from([Stage.SHARE_KEYS, Stage.MASKED_INPUT, Stage.UNMASK]),
            max_size=num_clients // 2,
        )
    )
    return config, dropped


@settings(max_examples=100, deadline=None)
@given(case=_sparse_rounds(), seed=st.integers(0, 2**16))
def test_a_completed_round_has_connected_survivors_under_any_dropouts(
    case: tuple[SecAggConfig, dict[int, Stage]], seed: int
) -> None:
    # Prepare
    config, schedule = case
    inputs = np.random.default_rng(seed).uniform(-1, 1, (config.num_clients, 2))
    # Execute
    try:
        result = run_round(config, list(inputs), dropout=schedule, round_number=ROUND)
    except ProtocolAbort:
        return
    # Assert: exact, and the survivors are one piece of the graph over the participants
    participants = list(range(1, config.num_clients + 1))
    graph = neighbour_graph(participants, config.degree, graph_seed(ROUND, participants))
    assert result.exact
    assert len(_pieces(graph, result.survivors)) == 1
