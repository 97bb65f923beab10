"""The Flower ServerApp: as `flwr run` loads it (`server.app:app`), and as fedscore simulates it.

`app` reads its settings from the run config (`FederationRun.from_run_config`, see
`server/settings.py`), runs the rounds, and writes checkpoints, the transcript, the final
weights and `federation.json` to `run-dir`. `simulate` is the one place a ServerApp meets
Flower's simulation engine in process: `fedscore run`'s federated regimes and the federation
benchmark both go through it.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from flwr.app import Context
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from server.federation import print_summary, run_federation
from server.messaging import poll_faster, wait_for_nodes
from server.settings import FederationRun

T = TypeVar("T")

SIMULATION_JOIN_TIMEOUT = 120.0
"""Seconds the simulated ServerApp waits for all of its SuperNodes to be registered."""

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    run = FederationRun.from_run_config(dict(context.run_config))
    result = run_federation(grid, run)
    print_summary(result)


class _HideSimulationDeprecation(logging.Filter):
    """Flower deprecates `run_simulation` in favour of `flwr run`; fedscore drives the engine
    in process on purpose (it scores the final model itself), so the notice, repeated for every
    regime and seed, tells a fedscore user nothing they can act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "DEPRECATED FEATURE" not in record.getMessage()


@contextmanager
def one_ray_cluster() -> Iterator[None]:
    """Every simulation inside the block runs on one Ray cluster, which the block's end stops.

    Flower's Ray backend starts a cluster unless one is running, and stops it (`ray.shutdown`)
    after every simulation: about 2.5 s each way on 2 cores, for each of a run's federated
    regimes and seeds. Inside the block that shutdown is held back. Each simulation still
    terminates its own actors, and every SuperNode of the next one starts in a fresh worker
    process, so no state passes from one federation to the next.
    """
    import ray

    shutdown = ray.shutdown
    ray.shutdown = _keep_ray_running
    try:
        yield
    finally:
        ray.shutdown = shutdown
        if ray.is_initialized():
            shutdown()


def _keep_ray_running(*args: object, **kwargs: object) -> None:
    """`ray.shutdown` inside `one_ray_cluster`: the block's end stops the cluster."""


def simulate(
    serve: Callable[[Grid, Context], T],
    client_app: ClientApp,
    num_nodes: int,
    num_cpus_per_node: float = 1.0,
    flower_log_level: int = logging.WARNING,
) -> T:
    """Run `serve` as the ServerApp's main against `num_nodes` simulated SuperNodes on the Ray
    backend and return what it returned. Each SuperNode runs `client_app` and picks its firm by
    its partition id; `serve`'s settings come from the caller, not from the run config.

    Flower starts the ServerApp thread before it registers the simulated nodes (measured: `serve`
    entered with 0 nodes in 6 of 6 runs), so a server that starts once `min_clients` nodes are
    up would invite whichever nodes the race had registered by then: round 1's firms, and so
    the model, would depend on thread timing. `serve` therefore starts only once all
    `num_nodes` nodes are registered; a real deployment still waits for `min_clients` only."""
    from flwr.simulation import run_simulation  # Ray loads only when a simulation runs

    outcome: list[T] = []
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        poll_faster(grid)
        wait_for_nodes(grid, num_nodes, SIMULATION_JOIN_TIMEOUT)
        outcome.append(serve(grid, context))

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        flwr_log = logging.getLogger("flwr")
        flwr_log.setLevel(flower_log_level)
        if not any(isinstance(f, _HideSimulationDeprecation) for f in flwr_log.filters):
            flwr_log.addFilter(_HideSimulationDeprecation())
        run_simulation(
            server_app=server_app,
            client_app=client_app,
            num_supernodes=num_nodes,
            backend_config={
                "client_resources": {"num_cpus": num_cpus_per_node, "num_gpus": 0.0},
                "init_args": {"logging_level": "ERROR", "log_to_driver": False},
            },
        )
    if not outcome:
        raise RuntimeError("the ServerApp ended without a result; see the Flower log above")
    return outcome[0]
