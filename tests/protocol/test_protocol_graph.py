"""The SecAgg+ neighbour graph: regular, symmetric, public, and complete when k >= n - 1."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.graph import (
    connected_pieces,
    graph_seed,
    neighbour_graph,
    neighbours_of,
    ring_order,
)


@settings(max_examples=40, deadline=None)
@given(size=st.integers(3, 200), half_degree=st.integers(1, 20), round_number=st.integers(0, 9))
def test_harary_graph_is_k_regular_and_symmetric(
    size: int, half_degree: int, round_number: int
) -> None:
    # Prepare
    participants = list(range(1, size + 1))
    degree = 2 * half_degree
    # Execute
    graph = neighbour_graph(participants, degree, graph_seed(round_number, participants))
    # Assert
    expected_degree = min(degree, size - 1)
    assert set(graph) == set(participants)
    for client, neighbours in graph.items():
        assert client not in neighbours
        assert len(neighbours) == expected_degree
        assert all(client in graph[peer] for peer in neighbours)


def test_graph_is_reproducible_from_public_data_and_changes_with_the_round() -> None:
    # Prepare
    participants = list(range(1, 101))
    # Execute
    first = neighbour_graph(participants, 10, graph_seed(0, participants))
    again = neighbour_graph(list(reversed(participants)), 10, graph_seed(0, participants[::-1]))
    other_round = neighbour_graph(participants, 10, graph_seed(1, participants))
    # Assert
    assert first == again
    assert first != other_round


def test_complete_graph_when_degree_reaches_n_minus_one() -> None:
    # Execute
    graph = neighbour_graph([2, 5, 9], 2, b"s" * 32)
    # Assert
    assert graph == {2: frozenset({5, 9}), 5: frozenset({2, 9}), 9: frozenset({2, 5})}


def test_sparse_odd_degree_and_duplicates_are_refused() -> None:
    # Execute / Assert
    with pytest.raises(ValueError, match="even"):
        neighbour_graph(list(range(1, 11)), 3, b"s" * 32)
    with pytest.raises(ValueError, match="distinct"):
        neighbour_graph([1, 1, 2], 2, b"s" * 32)


def test_one_clients_neighbours_match_the_whole_graph() -> None:
    # Prepare
    participants = [3, 8, 9, 15, 21, 40, 41, 77, 78, 90]
    seed = graph_seed(2, participants)
    # Execute
    graph = neighbour_graph(participants, 4, seed)
    # Assert
    for client in participants:
        assert neighbours_of(client, participants, 4, seed) == graph[client]
    with pytest.raises(ValueError, match="not a participant"):
        neighbours_of(5, participants, 4, seed)


def _long_gaps(present: list[bool], half_degree: int) -> int:
    """Cyclic runs of at least k/2 consecutive absent ring positions."""
    if not any(present):
        return 0
    start = present.index(True)
    rotated = present[start:] + present[:start]
    gaps, run = 0, 0
    for here in [*rotated, True]:
        if here:
            gaps += run >= half_degree
            run = 0
        else:
            run += 1
    return gaps


@settings(max_examples=200, deadline=None)
@given(
    size=st.integers(3, 60),
    half_degree=st.integers(1, 8),
    data=st.data(),
)
def test_a_harary_graph_minus_some_clients_is_connected_iff_at_most_one_long_gap(
    size: int, half_degree: int, data: st.DataObject
) -> None:
    # Prepare: keep a random subset of the ring; SPEC.md §5 states the rule this checks
    participants = list(range(1, size + 1))
    seed = graph_seed(1, participants)
    degree = 2 * half_degree
    if degree >= size - 1:
        return
    ring = [int(c) for c in ring_order(participants, seed)]
    present = data.draw(st.lists(st.booleans(), min_size=size, max_size=size))
    members = [client for client, here in zip(ring, present, strict=True) if here]
    # Execute
    pieces = connected_pieces(neighbour_graph(participants, degree, seed), members)
    # Assert
    assert sorted(c for piece in pieces for c in piece) == sorted(members)
    assert (len(pieces) <= 1) == (_long_gaps(present, half_degree) <= 1)
