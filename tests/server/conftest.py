"""A small real world on disk (German credit over four firms) and grids of ClientApps over it."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from flwr.app import UserConfigValue

from clients.app import build_client_app
from experiments.world.datasets import load_german_credit
from experiments.world.tables import write_world
from server.inprocess import InProcessGrid, Intercept
from server.settings import FederationRun, FederationSettings

N_FIRMS = 4


@pytest.fixture(scope="session")
def world_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("world")
    write_world(load_german_credit(n_firms=N_FIRMS, seed=0), directory)
    return directory


@pytest.fixture
def make_grid(world_dir: Path) -> Callable[..., InProcessGrid]:
    """`make_grid(intercept=None, **firm_settings)`: one node per firm; `firm_settings` (with `_`
    for `-`) join every firm's app defaults, as `fedscore run` passes them."""

    def make(intercept: Intercept | None = None, **firm_settings: UserConfigValue) -> InProcessGrid:
        defaults = {k.replace("_", "-"): v for k, v in firm_settings.items()}
        return InProcessGrid(
            build_client_app({"world-dir": str(world_dir), **defaults}),
            [{"partition-id": i} for i in range(N_FIRMS)],
            intercept=intercept,
        )

    return make


@pytest.fixture
def settings(world_dir: Path, tmp_path: Path) -> FederationRun:
    warnings.filterwarnings("ignore", message="secagg = 'none'")
    return FederationRun(
        federation=FederationSettings(rounds=2, weight_scale=1000.0, scale_bits=16),
        world_dir=str(world_dir),
        run_dir=str(tmp_path / "run"),
        evaluate=False,
    )


@pytest.fixture
def tweak() -> Callable[..., FederationRun]:
    """`tweak(run, **changes)`: `run` with some settings changed, each named as its run-config
    key (with `_` for `-`), validated as `--run-config` would be."""

    def changed(run: FederationRun, **changes: object) -> FederationRun:
        flat = {**run.to_run_config(), **{k.replace("_", "-"): v for k, v in changes.items()}}
        return FederationRun.from_run_config(flat)

    return changed
