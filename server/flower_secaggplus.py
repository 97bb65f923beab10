"""`secagg = "flower"`: Flower's own SecAgg+ (legacy strategy path), for comparison only.

Flower 1.42 runs SecAgg+ only on its legacy stack: a `LegacyContext` with a legacy `FedAvg`,
`DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(...))`, and `NumPyClient`s behind
`secaggplus_mod` (see `clients/app.py`). It aggregates the weighted mean of the *weights*, not
of our contribution vector, so its train-loss metrics are not available; the held-out
evaluation is run over our own `evaluate` messages after the last round.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, Context, RecordDict
from flwr.common import ndarrays_to_parameters
from flwr.server import LegacyContext, ServerConfig
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.serverapp import Grid

from server.messaging import wait_for_nodes
from server.recording import RecordingGrid
from server.rounds import TRANSCRIPT_FILE, FederationResult, evaluate
from server.settings import FederationRun, FederationSettings

MAIN_PARAMS_RECORD = "parameters"  # where Flower's DefaultWorkflow keeps the global weights


def flower_workflow(settings: FederationSettings, num_nodes: int) -> SecAggPlusWorkflow:
    """Flower's parameters from ours: shares over the neighbourhood, t, weight bound, timeout."""
    num_shares: int | float = settings.neighbours + 1 if settings.neighbours else 1.0
    threshold: int | float = settings.threshold if settings.threshold else 2 / 3
    if isinstance(num_shares, int) and isinstance(threshold, int) and threshold >= num_shares:
        raise ValueError(f"threshold {threshold} must be below neighbours + 1 = {num_shares}")
    del num_nodes
    return SecAggPlusWorkflow(
        num_shares=num_shares,
        reconstruction_threshold=threshold,
        max_weight=settings.weight_scale,
        timeout=settings.timeout,
    )


def run_flower_secaggplus(grid: Grid, run: FederationRun) -> FederationResult:
    from clients.model import flatten_weights, get_weights, unflatten_weights

    recording = RecordingGrid(grid)
    grid = recording
    settings = run.federation
    spec = run.model_spec()
    template = get_weights(spec.build())
    initial = unflatten_weights(spec.initial_weights(), template)
    nodes = wait_for_nodes(grid, settings.min_clients, settings.timeout)

    def fit_config(round_number: int) -> dict[str, Any]:
        """Flower's legacy strategy sends a plain dict: our round config's record content."""
        return run.round_config(spec, round_number).model_dump(by_alias=True)

    strategy = FedAvg(
        fraction_fit=settings.fraction,
        fraction_evaluate=0.0,
        min_fit_clients=settings.min_clients,
        min_available_clients=settings.min_clients,
        initial_parameters=ndarrays_to_parameters(initial),
        on_fit_config_fn=fit_config,
    )
    context = LegacyContext(
        Context(
            run_id=grid.run.run_id,
            node_id=0,
            node_config={},
            state=RecordDict(),
            run_config={},
        ),
        config=ServerConfig(num_rounds=settings.rounds),
        strategy=strategy,
    )
    logging.getLogger("flwr").setLevel(logging.WARNING)
    DefaultWorkflow(fit_workflow=flower_workflow(settings, len(nodes)))(grid, context)
    record: ArrayRecord = context.state.array_records[MAIN_PARAMS_RECORD]
    weights = flatten_weights([np.asarray(a, dtype=np.float32) for a in record.to_numpy_ndarrays()])
    history: list[dict[str, Any]] = [{"round": settings.rounds, "invited": len(nodes)}]
    if run.evaluate:
        history[0]["evaluation"] = evaluate(
            grid,
            nodes,
            weights,
            run.round_config(spec, settings.rounds),
            settings.rounds,
            settings.timeout,
        )
    if run.run_dir:
        run_dir = Path(run.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / TRANSCRIPT_FILE).write_text(
            "".join(json.dumps(e, sort_keys=True) + "\n" for e in recording.entries)
        )
    return FederationResult(weights, spec, history, {})
