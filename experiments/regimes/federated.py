"""The federated regimes: the firms' shared score, trained on Flower's simulation engine.

Each regime writes the world (one table per firm) and the held-out citizen ids to its run
directory, starts one simulated SuperNode per firm (each ClientApp reads only its own table),
runs the ServerApp, then scores every held-out (firm, citizen) pair with the final global model
applied to that firm's common columns, so the regime is compared row for row with the unified
and local-only scores. A DP firm keeps its own accounting in a ledger under the run directory
(`clients/accounting.py`); the harness, which plays every firm, reads the ledgers to report the
worst firm's ε (the server records only the public target).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from flwr.app import UserConfigValue
from torch import nn

from clients import records as R
from clients.accounting import read_ledgers
from clients.app import build_client_app
from clients.model import get_weights, set_weights, unflatten_weights
from clients.participant import ModelSpec, load_firm_data
from clients.policy import policy_key
from clients.training import predict_default
from experiments.config import ExperimentConfig
from experiments.regimes.standalone import Holdout, RegimeOutput, common_features
from experiments.regimes.tuning import TuningResult, tune_federated
from experiments.world.tables import ID, LABEL, World, load_firm_table, write_world
from server.app import simulate
from server.federation import run_federation
from server.identities import simulated_identities
from server.rounds import FederationResult
from server.settings import FederationRun, SecAggMode

FEDERATED_SECAGG = "federated_secagg"
FEDERATED_PLAIN = "federated_plain"
FEDERATED_FLOWER = "federated_flower_secagg"
FEDERATED_DP_PREFIX = "federated_dp_eps"

NOISE_OS = "os-generator"
"""A DP regime whose firms seeded their noise from the OS generator (the default)."""
NOISE_RUN_SEED = "run-seed"
"""A DP regime run with `[federation] reproducible = true`: noise the server could regenerate."""

FederatedRegime = Callable[[World, Holdout, ExperimentConfig, int], RegimeOutput]


def federation_run(
    config: ExperimentConfig,
    secagg: SecAggMode,
    seed: int,
    run_dir: Path,
    world_dir: Path,
    dp_epsilon: float = 0.0,
    identity_manifest: Path | None = None,
) -> FederationRun:
    """What the ServerApp runs with: the experiment's sections as they are, plus this run's own
    aggregation mode, seed, DP budget and paths (the same object `flwr run` builds from its
    run config)."""
    return FederationRun(
        federation=config.federation,
        training=config.training,
        model=config.model,
        secagg=secagg,
        seed=seed,
        model_seed=seed,
        dp_epsilon=dp_epsilon,
        world_dir=str(world_dir),
        run_dir=str(run_dir),
        identity_manifest=str(identity_manifest or ""),
    )


def _run_root(config: ExperimentConfig, out_dir: Path | None) -> Path:
    """Where the federated regimes keep their world copies, transcripts and checkpoints: the
    run's own folder (`<out>/federation`), so a run is one folder; `[federation] run_dir`
    overrides it. Without an out folder (a regime run alone), `runs/<experiment>/federation`."""
    if config.federation.run_dir is not None:
        return Path(config.federation.run_dir)
    if out_dir is not None:
        return Path(out_dir) / "federation"
    return Path("runs") / config.experiment.name / "federation"


def score_holdout(
    world_dir: Path, holdout: Holdout, result: FederationResult
) -> tuple[np.ndarray, dict[str, Any]]:
    """The final global model on each held-out pair, with that firm's own common columns."""
    model = result.spec.build()
    set_weights(model, unflatten_weights(result.weights, get_weights(model)))
    return score_pairs(world_dir, holdout.pairs, model), {"n_features": result.spec.n_features}


def score_pairs(world_dir: Path, pairs: pd.DataFrame, model: nn.Module) -> np.ndarray:
    """`model` on each (firm, citizen) pair, with that firm's own common columns."""
    probabilities = np.full(len(pairs), np.nan)
    firms = pairs["firm"].to_numpy()
    for firm in dict.fromkeys(firms):
        data = load_firm_data(world_dir, str(firm), heldout_ids=None)
        ids = load_firm_table(world_dir, str(firm))[ID].to_numpy()
        by_id = pd.Series(predict_default(model, data.train_features), index=ids)
        rows = firms == firm
        probabilities[rows] = by_id.reindex(pairs.loc[rows, ID].to_numpy()).to_numpy()
    return probabilities


def tune_federation(
    world: World, holdout: Holdout, config: ExperimentConfig, seed: int
) -> TuningResult:
    """The FedAvg grid in process, on every firm's training rows and common columns, validated
    on the (firm, citizen) pairs of the validation citizens."""
    shards: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    validation_x, validation_y = [], []
    for firm, table in world.firms.items():
        features = common_features(world, firm, table)
        ids, labels = table[ID].to_numpy(), table[LABEL].to_numpy()
        fit, validation = holdout.is_fit(ids), holdout.is_validation(ids)
        shards[firm] = (features[fit], labels[fit])
        validation_x.append(features[validation])
        validation_y.append(labels[validation])
    n_features = next(iter(shards.values()))[0].shape[1]
    spec = ModelSpec(config.model.kind, n_features, config.model.hidden, seed)
    return tune_federated(
        spec,
        shards,
        np.concatenate(validation_x),
        np.concatenate(validation_y),
        config.tuning,
        config.training,
        config.federation,
        seed,
    )


def tuned_config(config: ExperimentConfig, tuning: TuningResult) -> ExperimentConfig:
    """`config` with the tuned step size, penalty and rounds of a federated regime."""
    return config.model_copy(
        update={
            "training": tuning.training(config.training),
            "federation": config.federation.model_copy(update={"rounds": tuning.passes}),
        }
    )


def run_federated(
    world: World,
    holdout: Holdout,
    config: ExperimentConfig,
    seed: int,
    name: str,
    secagg: SecAggMode,
    dp_epsilon: float = 0.0,
    out_dir: Path | None = None,
    tuning: TuningResult | None = None,
) -> RegimeOutput:
    """One federated regime for one seed; its run directory keeps transcript and checkpoints.

    With a `tuning` result the federation runs with its step size, penalty and rounds, and no
    firm trains on a validation citizen.
    """
    if tuning is not None:
        config = tuned_config(config, tuning)
    run_dir = _run_root(config, out_dir) / name / f"seed-{seed}"
    world_dir = run_dir / "world"
    write_world(world, world_dir)
    holdout_file = run_dir / "heldout_ids.npy"
    np.save(holdout_file, holdout.excluded_ids())
    ledger_dir = run_dir / "dp-ledger"
    if not config.federation.resume:
        shutil.rmtree(ledger_dir, ignore_errors=True)  # a fresh run: no earlier run's spending
    firm_defaults: dict[str, UserConfigValue] = {
        R.WORLD_DIR: str(world_dir),
        R.HOLDOUT_FILE: str(holdout_file),
        R.DP_LEDGER: str(ledger_dir),
    }
    if config.federation.reproducible:  # the experimenter plays every firm, and consents
        firm_defaults[policy_key("allow_reproducible_noise")] = True
    manifest = None
    if secagg == "ours" and config.federation.secagg_mode == "malicious":
        # Simulated firms, simulated out-of-band registration: a fresh identity per firm
        manifest, identities = simulated_identities(
            run_dir / "identities", range(len(world.firms)), f"fedscore:{run_dir}"
        )
        firm_defaults.update(identities)
    run = federation_run(config, secagg, seed, run_dir, world_dir, dp_epsilon, manifest)
    result = simulate(
        lambda grid, _: run_federation(grid, run),
        build_client_app(firm_defaults),
        num_nodes=len(world.firms),
    )
    probabilities, info = score_holdout(world_dir, holdout, result)
    info.update(
        {
            "rounds": len(result.history),
            "secagg": secagg,
            "run_dir": str(run_dir),
            "history": result.history,
        }
    )
    if dp_epsilon > 0:
        info["dp"] = {
            "target_epsilon": dp_epsilon,
            "delta": config.federation.dp_delta,
            "per_firm": {f: asdict(e) for f, e in read_ledgers(ledger_dir).items()},
            "noise": NOISE_RUN_SEED if config.federation.reproducible else NOISE_OS,
        }
    if tuning is not None:
        info["tuning"] = tuning.to_json() | {"tuned_without_dp": dp_epsilon > 0}
    model = result.spec.build()
    set_weights(model, unflatten_weights(result.weights, get_weights(model)))
    validation = score_pairs(world_dir, holdout.validation_pairs, model)
    return RegimeOutput(
        name,
        probabilities,
        models={"global": model},
        info=info,
        validation_probabilities=validation,
    )


def dp_regime_name(epsilon: float) -> str:
    """`federated_dp_eps1`, `federated_dp_eps0.5`: ε as written, without a trailing `.0`."""
    text = f"{epsilon:g}"
    if not re.fullmatch(r"[0-9.e+-]+", text):
        raise ValueError(f"dp epsilon must be a positive number, got {epsilon}")
    return FEDERATED_DP_PREFIX + text


def federated_regimes(
    config: ExperimentConfig, out_dir: Path | None = None
) -> dict[str, FederatedRegime]:
    """The enabled federated regimes by name, in the harness's regime signature; each writes
    under `out_dir` (the run's folder)."""

    tuned: dict[int, TuningResult] = {}  # per seed: every federated regime shares one tuning

    def regime(name: str, secagg: SecAggMode, epsilon: float = 0.0) -> FederatedRegime:
        def run(world: World, holdout: Holdout, cfg: ExperimentConfig, seed: int) -> RegimeOutput:
            tuning = None
            if cfg.tuning.enabled and len(holdout.validation_ids):
                if seed not in tuned:
                    tuned[seed] = tune_federation(world, holdout, cfg, seed)
                tuning = tuned[seed]
            return run_federated(world, holdout, cfg, seed, name, secagg, epsilon, out_dir, tuning)

        return run

    regimes: dict[str, FederatedRegime] = {}
    r = config.regimes
    if r.federated_secagg:
        regimes[FEDERATED_SECAGG] = regime(FEDERATED_SECAGG, "ours")
    if r.federated_plain:
        regimes[FEDERATED_PLAIN] = regime(FEDERATED_PLAIN, "none")
    if r.federated_flower_secagg:
        regimes[FEDERATED_FLOWER] = regime(FEDERATED_FLOWER, "flower")
    if r.federated_dp:
        for epsilon in config.federation.dp_epsilons:
            name = dp_regime_name(epsilon)
            regimes[name] = regime(name, "ours", epsilon)
    return regimes
