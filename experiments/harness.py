"""Runs every enabled regime for every seed and writes results.json.

Each metric is summarised over seeds as mean, 95 % interval and per-seed values, so a figure
in the report can be cited with its spread.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import AbstractContextManager, nullcontext, suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from queue import Empty, Queue
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from experiments import data_record
from experiments.config import DataSection, ExperimentConfig
from experiments.evaluation import (
    calibrated,
    evaluate,
    privacy_spent,
    reference_figures,
    score_points,
)
from experiments.leakage.attacks import attribute_figures, membership_figures, membership_surface
from experiments.leakage.decisions import protected_groups
from experiments.leakage.exposure import release_exposure, world_exposure
from experiments.leakage.parties import consumer_figures, party_figures
from experiments.leakage.server_view import server_view_figures
from experiments.metrics import summarise
from experiments.paired import FEDERATED_LIMIT, paired_differences
from experiments.regimes.limit import run_federated_limit
from experiments.regimes.retrain import FederatedFloors, retrained
from experiments.regimes.standalone import (
    LOCAL_ONLY,
    UNIFIED,
    Holdout,
    RegimeOutput,
    run_local_only,
    run_unified,
)
from experiments.report.terminal import results_tables
from experiments.results import SCHEMA_VERSION, Results, parse_results
from experiments.world.tables import ID, LABEL, World

__all__ = ["build_world", "check_data", "enabled_regimes", "results_tables", "run_experiment"]

Regime = Callable[[World, Holdout, ExperimentConfig, int], RegimeOutput]


def build_world(data: DataSection, seed: int, test_fraction: float | None = None) -> World:
    """The population for one seed: synthetic worlds are redrawn, real data only re-split.

    `test_fraction` lets a label-skew split keep its hands off the held-out labels."""
    if data.source == "synthetic":
        from experiments.world.synthetic import generate_world

        return generate_world(data.citizens, seed=seed, policy=data.policy)
    from experiments.world import datasets

    if data.source == "lending_club":
        return datasets.load_lending_club(seed=seed)
    if data.source == "german_credit":
        return datasets.load_german_credit(
            n_firms=data.firms,
            alpha=data.alpha,
            seed=seed,
            split=data.split,
            covariate=data.covariate,
            test_fraction=test_fraction,
        )
    return datasets.load_table(
        data.path,
        label=data.label,
        positive=data.positive,
        sensitive=list(data.sensitive),
        quasi_identifiers=list(data.quasi_identifiers),
        features=None if data.features is None else list(data.features),
        exclude=list(data.exclude),
        partition=data.partition,
        dirichlet_alpha=data.dirichlet_alpha,
        n_firms=data.firms,
        impute=data.impute,
        bins=data.bins,
        encoding=data.encoding,
        seed=seed,
        dirichlet_column=data.dirichlet_column,
        test_fraction=test_fraction,
    )


def draw_holdout(world: World, config: ExperimentConfig, seed: int) -> Holdout:
    """The held-out citizens, and the validation citizens when `[tuning]` is on."""
    tuning = config.tuning
    validation = tuning.validation_fraction if tuning.enabled else 0.0
    return Holdout.draw(world, config.experiment.test_fraction, seed, validation)


def check_data(config: ExperimentConfig) -> None:
    """Every seed's world and held-out split, checked before the first seed trains.

    A table of one's own is refused with all its problems at once (`DataError`): the table's
    own when it loads, then every firm, over every seed, left with fewer than `min_rows`
    training rows or one class. A German-credit split may leave a firm without training rows
    (a small alpha), which no regime can train on; a one-class firm there keeps its base-rate
    fallback. The other sources always give every firm rows and are not re-checked.
    """
    data = config.data
    if data.source not in ("file", "german_credit"):
        return
    from experiments.world.checks import DataError, firm_problems

    if data.source == "german_credit":
        min_rows, advice = 1, "use fewer [data] firms or a larger [data] alpha"
    elif data.partition is not None:
        min_rows = data.min_rows
        advice = f"merge small firms' values of {data.partition!r} (or lower [data] min_rows)"
    else:
        min_rows = data.min_rows
        advice = "use fewer [data] firms or a larger [data] dirichlet_alpha"
    problems: list[str] = []
    for seed in config.experiment.seeds:
        world = build_world(data, seed, config.experiment.test_fraction)
        holdout = draw_holdout(world, config, seed)
        train_labels = {
            firm: table[LABEL].to_numpy()[holdout.is_fit(table[ID].to_numpy())]
            for firm, table in world.firms.items()
        }
        split = world.meta["partition"]
        how = f"by {split['column']!r}" if "column" in split else f"alpha = {split['alpha']:g}"
        problems += firm_problems(
            train_labels, min_rows, seed, f"split {how}", advice, data.source == "file"
        )
    if problems:
        raise DataError(world.meta.get("path", data.source), problems)


def enabled_regimes(config: ExperimentConfig, out_dir: Path | None = None) -> dict[str, Regime]:
    """The regimes the config enables; federated ones keep their files under `out_dir`."""
    regimes: dict[str, Regime] = {}
    if config.regimes.unified:
        regimes[UNIFIED] = run_unified
    if config.regimes.local_only:
        regimes[LOCAL_ONLY] = run_local_only
    from experiments.regimes.federated import federated_regimes  # imports Flower only when asked

    regimes.update(federated_regimes(config, out_dir))
    return regimes


UNIT_FIGURES = frozenset(
    {
        *("auc", "auc_baseline", "auc_qi_only", "auc_score_and_qi", "within_firm_auc"),
        *("ks", "brier", "ece", "ece_before", "ece_after", "g_mean_qi_only", "g_mean_score_and_qi"),
        *("prevalence", "watch_list_precision", "watch_list_precision_baseline"),
        *("tpr_at_0_1_percent_fpr", "tpr_at_1_percent_fpr", "completed_round_share"),
        *("unique_share", "unique_share_qi_only", "register_linkage", "default_rate_error"),
        *("cross_release_linkage", "cross_release_linkage_qi_only"),
        *("tier_share", "privileged_share", "privilege_gained_vs_unified"),
        *("privilege_lost_vs_unified", "tier_changed_vs_unified", "tier_changed_vs_truth"),
        "tier_changed_vs_retrained",
    }
)
"""Figures in [0, 1] (AUCs, shares, precisions, linkage and change rates), or mappings (group ->
figure) of them. Exact names: a firm or group named by the data must never pick up a range."""
SIGNED_UNIT_FIGURES = frozenset(
    {
        *("advantage", "demographic_parity_gap", "equal_opportunity_gap"),
        *("mcc_qi_only", "mcc_score_and_qi"),
    }
)
"""Differences of two such figures (and correlations), in [-1, 1]."""


def bounds_of(key: str) -> tuple[float, float] | None:
    """The range a figure named `key` lies in, which its interval must respect (None: none)."""
    if key in SIGNED_UNIT_FIGURES:
        return (-1.0, 1.0)
    if key in UNIT_FIGURES:
        return (0.0, 1.0)
    return None


def _summarise_tree(
    per_seed: list[dict[str, Any]], bounds: tuple[float, float] | None = None
) -> dict[str, Any]:
    """Turn a list (over seeds) of equally shaped nested dicts of floats into summaries, each
    interval clipped to `bounds` when given, else to the range its name or the nearest named
    mapping above it says (`bounds_of`: `demographic_parity_gap` -> group -> figure)."""
    first = per_seed[0]
    if isinstance(first, dict):
        return {
            k: _summarise_tree([seed[k] for seed in per_seed], bounds or bounds_of(k))
            for k in first
        }
    if isinstance(first, str):  # a label (e.g. the learner), the same in every seed
        return first
    values = [float("nan") if v is None else float(v) for v in per_seed]
    return summarise(values, bounds=bounds)


def _federation_cluster(regimes: dict[str, Regime]) -> AbstractContextManager[None]:
    """One Ray cluster for all of a run's federations (`server.app.one_ray_cluster`); Flower
    and Ray load only when a federated regime is on."""
    if set(regimes) <= {UNIFIED, LOCAL_ONLY}:
        return nullcontext()
    from server.app import one_ray_cluster

    return one_ray_cluster()


@dataclass
class SeedFigures:
    """Everything one seed contributes to results.json (plain data: it crosses processes)."""

    seed: int
    holdout: dict[str, int]
    firms: dict[str, Any]
    exposure: dict[str, Any]
    regimes: dict[str, dict[str, Any]] = field(default_factory=dict)
    curves: dict[str, dict[str, Any]] = field(default_factory=dict)
    tuning: dict[str, Any] = field(default_factory=dict)
    fallbacks: list[dict[str, Any]] = field(default_factory=list)
    inference: dict[str, Any] | None = None
    reference: dict[str, Any] | None = None
    server_view: dict[str, Any] | None = None
    data: dict[str, Any] | None = None


Report = Callable[[str, int], None]
"""`report(description, steps done)`: a seed's progress, for whichever process shows it."""


def run_seed(config: ExperimentConfig, seed: int, out_dir: Path, report: Report) -> SeedFigures:
    """One seed: its world, every enabled regime and every figure on it."""
    torch.set_num_threads(1)  # small models train fastest on one thread; idle ones busy-wait
    regimes = enabled_regimes(config, Path(out_dir))
    report("world", 0)
    world = build_world(config.data, seed, config.experiment.test_fraction)
    holdout = draw_holdout(world, config, seed)
    figures = SeedFigures(
        seed,
        holdout={"pairs": len(holdout.pairs), "citizens": len(holdout.test_ids)},
        firms=data_record.firm_figures(world, holdout),
        exposure={p: e.to_json() for p, e in world_exposure(world).items()},
    )
    if config.data.source != "synthetic":  # a table: its provenance and split
        figures.data = data_record.describe_data(world)
    groups = protected_groups(world, holdout.pairs[ID].to_numpy())
    if config.inference.enabled:
        figures.inference = party_figures(world, seed, config.inference)
    report("world", 1)
    federated_runs: dict[str, dict[str, Any]] = {}
    reference: RegimeOutput | None = None
    shadows: dict[str, np.ndarray] = {}  # recipe -> shadow predictions, for one seed
    floors: FederatedFloors = {}  # the non-DP federated regimes share one floor
    for name, regime in regimes.items():
        report(name, 0)
        output = regime(world, holdout, config, seed)
        if np.isnan(output.probabilities).any():
            raise RuntimeError(f"regime {name} left held-out pairs unscored")
        if name == UNIFIED:
            reference = output
        figures.fallbacks += data_record.fallbacks(output, seed)
        if "tuning" in output.info:
            figures.tuning[name] = output.info["tuning"]
        floor = retrained(world, holdout, config, seed, output, floors)
        regime_figures = evaluate(world, holdout, output, config, groups, reference, floor)
        report(f"{name}: attacks", 0)
        surface = membership_surface(world, holdout, config, seed, output)
        membership = membership_figures(surface, config, seed, shadows)
        figures.curves[name] = {attack: result.pop("roc") for attack, result in membership.items()}
        regime_figures["membership"] = membership
        regime_figures["attribute_inference"] = attribute_figures(world, holdout, output, seed)
        if config.inference.enabled:
            scores = output.probabilities
            regime_figures |= consumer_figures(world, holdout, scores, seed, config.inference)
        released = score_points(calibrated(holdout, output)[0], config)
        regime_figures["release"] = release_exposure(world, holdout.pairs, released).to_json()
        if "run_dir" in output.info:
            federated_runs[name] = output.info
        if "dp" in output.info:
            dp = output.info["dp"]  # info holds objects; a DP regime's accounting is a dict
            assert isinstance(dp, dict)
            regime_figures["privacy"] = privacy_spent(dp, world, holdout, config)
        figures.regimes[name] = regime_figures
        report(name, 1)
    if config.regimes.federated_limit:
        report(FEDERATED_LIMIT, 0)
        limit = run_federated_limit(world, holdout, config, seed)
        figures.reference = reference_figures(holdout, limit)
        if "tuning" in limit.info:
            figures.tuning[FEDERATED_LIMIT] = limit.info["tuning"]
        report(FEDERATED_LIMIT, 1)
    scale = config.federation.weight_scale
    figures.server_view = server_view_figures(world, holdout, scale, seed, federated_runs)
    return figures


def _run_seed_in_worker(
    config: ExperimentConfig, seed: int, out_dir: Path, messages: Queue[tuple[int, str, int]]
) -> SeedFigures:
    """`run_seed` in a worker process, its progress sent to the parent's queue."""
    regimes = enabled_regimes(config, Path(out_dir))
    with _federation_cluster(regimes):
        return run_seed(config, seed, out_dir, lambda what, done: messages.put((seed, what, done)))


def _run_seeds(
    config: ExperimentConfig, out_dir: Path, progress: Progress, task: TaskID
) -> list[SeedFigures]:
    """Every seed, in `[experiment] workers` processes (one: in this process, one Ray cluster
    for all of them); returned in the config's seed order whatever order they finish in."""
    seeds = list(config.experiment.seeds)
    workers = min(config.experiment.workers, len(seeds))

    def show(seed: int, what: str, done: int) -> None:
        progress.update(task, description=f"seed {seed}: {what}", advance=done)

    if workers == 1:
        with _federation_cluster(enabled_regimes(config, Path(out_dir))):
            return [run_seed(config, s, out_dir, partial(show, s)) for s in seeds]
    context = multiprocessing.get_context("spawn")  # no forked torch or Ray state
    with context.Manager() as manager, ProcessPoolExecutor(workers, mp_context=context) as pool:
        messages: Queue[tuple[int, str, int]] = manager.Queue()
        futures = [pool.submit(_run_seed_in_worker, config, s, out_dir, messages) for s in seeds]
        while not all(f.done() for f in futures) or not messages.empty():
            with suppress(Empty):
                show(*messages.get(timeout=0.2))
        return [f.result() for f in futures]


def run_experiment(
    config: ExperimentConfig, out_dir: Path, console: Console | None = None
) -> Results:
    """Every enabled regime for every seed; writes results.json and returns it validated."""
    console = console or Console(stderr=True)
    check_data(config)
    names = list(enabled_regimes(config, Path(out_dir)))
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        steps = len(names) + 1 + config.regimes.federated_limit
        task = progress.add_task("seeds × regimes", total=len(config.experiment.seeds) * steps)
        seeds = _run_seeds(config, Path(out_dir), progress, task)
    per_seed = {name: [s.regimes[name] for s in seeds] for name in names}
    raw: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "config": config,
        "seeds": [s.seed for s in seeds],
        "holdout": [s.holdout for s in seeds],
        "regimes": {name: _summarise_tree(values) for name, values in per_seed.items()},
        "exposure": _summarise_tree([s.exposure for s in seeds]),
        "curves": {
            name: {
                attack: [s.curves[name][attack] for s in seeds] for attack in seeds[0].curves[name]
            }
            for name in names
        },
    }
    inference = [s.inference for s in seeds if s.inference is not None]
    if inference:
        raw["inference"] = _summarise_tree(inference)
    views = [s.server_view for s in seeds if s.server_view is not None]
    if views:
        raw["server_view"] = _summarise_tree(views)
    if seeds[-1].data is not None:  # a table: its provenance, split and firm sizes
        raw["data"] = {**seeds[-1].data, "firms": _summarise_tree([s.firms for s in seeds])}
    fallbacks = [f for s in seeds for f in s.fallbacks]
    if fallbacks:
        raw["fallbacks"] = fallbacks
    references = [s.reference for s in seeds if s.reference is not None]
    if references:
        raw["references"] = {FEDERATED_LIMIT: _summarise_tree(references)}
    paired = paired_differences(per_seed | ({FEDERATED_LIMIT: references} if references else {}))
    if paired:
        raw["paired"] = paired
    if config.tuning.enabled:
        tuned = list(dict.fromkeys(name for s in seeds for name in s.tuning))
        raw["tuning"] = {
            name: {"per_seed": [s.tuning[name] for s in seeds if name in s.tuning]}
            for name in tuned
        }
    results = parse_results(raw, origin="the results of this run")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(results.to_json())
    return results
