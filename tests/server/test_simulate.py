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
