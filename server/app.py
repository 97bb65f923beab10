"""The Flower ServerApp (`server.app:app`): the federation coordinator.

Reads its settings from the run config (`FederationRun.from_run_config`, see
`server/settings.py`), runs the rounds, and writes checkpoints, the transcript, the final
weights and `federation.json` to `run-dir`.
"""

from __future__ import annotations

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from server.federation import print_summary, run_federation
from server.settings import FederationRun

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    run = FederationRun.from_run_config(dict(context.run_config))
    result = run_federation(grid, run)
    print_summary(result)
