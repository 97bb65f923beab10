"""The simulated ServerApp starts against every SuperNode, never a timing-dependent subset."""

import pytest
from flwr.app import Context
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid

from server.app import simulate


@pytest.mark.slow
def test_simulated_server_sees_every_node_when_it_starts() -> None:
    # Prepare: a ServerApp that only counts the nodes registered when it is entered
    def count_nodes(grid: Grid, _: Context) -> int:
        return len(list(grid.get_node_ids()))

    # Execute
    seen = simulate(count_nodes, ClientApp(), num_nodes=5)

    # Assert: Flower registers nodes after starting the ServerApp thread (0 seen before)
    assert seen == 5


@pytest.mark.slow
def test_simulations_in_one_ray_cluster_share_it_and_the_block_stops_it() -> None:
    import ray

    from server.app import one_ray_cluster

    # Prepare: a ServerApp that counts its nodes (it must not touch Ray: that would start one)
    def count_nodes(grid: Grid, _: Context) -> int:
        return len(list(grid.get_node_ids()))

    # Execute
    with one_ray_cluster():
        first = simulate(count_nodes, ClientApp(), num_nodes=3)
        cluster_between = ray.get_runtime_context().get_node_id()
        second = simulate(count_nodes, ClientApp(), num_nodes=4)
        cluster_after = ray.get_runtime_context().get_node_id()
    stopped_after = not ray.is_initialized()

    # Assert: one cluster for both, every node of each, and nothing left running
    assert cluster_between == cluster_after and stopped_after
    assert (first, second) == (3, 4)
    assert ray.shutdown.__name__ == "shutdown"
