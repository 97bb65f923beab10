"""Runs every enabled regime for every seed and writes results.json.

Each metric is summarised over seeds as mean, 95 % interval and per-seed values, so a figure
in the report can be cited with its spread.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from experiments import data_record
from experiments.config import DataSection, ExperimentConfig
from experiments.leakage.attacks import attribute_figures, membership_figures, membership_surface
from experiments.leakage.citizens import citizen_privacy
from experiments.leakage.decisions import decision_metrics, protected_groups
from experiments.leakage.exposure import release_exposure, world_exposure
from experiments.leakage.parties import consumer_figures, party_figures
from experiments.leakage.server_view import server_view_figures
from experiments.metrics import summarise, utility
from experiments.paired import FEDERATED_LIMIT, PAIRED_METRICS, paired_differences
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
from experiments.results import SCHEMA_VERSION, Results, Summary, parse_results
from experiments.world.tables import ID, LABEL, World

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


def evaluate(
    world: World,
    holdout: Holdout,
    output: RegimeOutput,
    config: ExperimentConfig,
    groups: dict[str, np.ndarray],
    reference: RegimeOutput | None,
    retrained: RegimeOutput | None = None,
) -> dict[str, Any]:
    """One regime's figures for one seed, all on the same held-out pairs.

    utility over every pair and per firm over its own held-out customers; decisions (tiers and
    group gaps), with tier changes against `reference` (the unified score) when there is one,
    against the true PD's tier and against `retrained` (the regime's retraining noise floor).
    Decisions read each score after calibration on the validation pairs (`calibrated`).
    """
    labels = holdout.pairs[LABEL].to_numpy()
    firms = holdout.pairs["firm"].to_numpy()
    per_firm = {
        firm: utility(labels[firms == firm], output.probabilities[firms == firm])
        for firm in dict.fromkeys(firms)
    }
    decided, calibration = calibrated(holdout, output)
    decisions = decision_metrics(
        holdout.pairs,
        decided,
        groups,
        config.scorecard,
        reference_probabilities=None if reference is None else calibrated(holdout, reference)[0],
        truth_probabilities=true_default_probabilities(world, holdout),
        retrained_probabilities=None if retrained is None else calibrated(holdout, retrained)[0],
    )
    figures: dict[str, Any] = {
        "utility": utility(labels, output.probabilities),
        "within_firm_auc": within_firm_auc(labels, output.probabilities, firms),
        "per_firm": per_firm,
        "decisions": decisions,
    }
    if calibration is not None:
        figures["calibration"] = calibration
    return figures


def reference_figures(holdout: Holdout, output: RegimeOutput) -> dict[str, Any]:
    """A reference model's utility on the held-out pairs (it is not released: no attacks)."""
    labels = holdout.pairs[LABEL].to_numpy()
    firms = holdout.pairs["firm"].to_numpy()
    return {
        "utility": utility(labels, output.probabilities),
        "within_firm_auc": within_firm_auc(labels, output.probabilities, firms),
    }


def within_firm_auc(labels: np.ndarray, probabilities: np.ndarray, firms: np.ndarray) -> float:
    """Each firm's AUC over its own held-out customers, averaged weighted by their number:
    what a score ranks within a firm, which firm identity cannot help with (NaN if no firm
    has both classes)."""
    aucs, weights = [], []
    for firm in dict.fromkeys(firms):
        rows = firms == firm
        if len(np.unique(labels[rows])) == 2:
            aucs.append(utility(labels[rows], probabilities[rows])["auc"])
            weights.append(rows.sum())
    return float(np.average(aucs, weights=weights)) if aucs else float("nan")


TRUE_PD = "default_probability"
"""The truth column holding each citizen's true PD (synthetic worlds only)."""


def true_default_probabilities(world: World, holdout: Holdout) -> np.ndarray | None:
    """The true PD of every held-out pair, where the world knows it."""
    if TRUE_PD not in world.truth.columns:
        return None
    by_id = world.truth.set_index(ID)[TRUE_PD].astype(np.float64)
    return by_id.reindex(holdout.pairs[ID].to_numpy()).to_numpy()


def score_points(probabilities: np.ndarray, config: ExperimentConfig) -> np.ndarray:
    """The released score: each PD on the experiment's scorecard."""
    from clients.scorecard import score_from_default_probability

    card = config.scorecard
    return score_from_default_probability(probabilities, card.base_score, card.base_odds, card.pdo)


def calibrated(
    holdout: Holdout, output: RegimeOutput
) -> tuple[np.ndarray, dict[str, float] | None]:
    """The PDs decisions read: Platt-calibrated on the validation pairs when there are any
    (with the before/after figures), else the raw ones."""
    validation = output.validation_probabilities
    if validation is None or len(validation) == 0:
        return output.probabilities, None
    from experiments.regimes.calibration import PlattCalibrator, calibration_figures

    calibrator = PlattCalibrator.fit(validation, holdout.validation_pairs[LABEL].to_numpy())
    decided = calibrator(output.probabilities)
    labels = holdout.pairs[LABEL].to_numpy()
    return decided, calibration_figures(calibrator, labels, output.probabilities, decided)


def _summarise_tree(
    per_seed: list[dict[str, Any]], bounds: tuple[float, float] | None = None
) -> dict[str, Any]:
    """Turn a list (over seeds) of equally shaped nested dicts of floats into summaries
    (intervals clipped to `bounds` when given)."""
    first = per_seed[0]
    if isinstance(first, dict):
        return {key: _summarise_tree([seed[key] for seed in per_seed], bounds) for key in first}
    if isinstance(first, str):  # a label (e.g. the learner), the same in every seed
        return first
    return summarise([float("nan") if v is None else float(v) for v in per_seed], bounds=bounds)


UNIT_BOUNDED = ("utility", "within_firm_auc", "per_firm")
"""Regime figures whose every metric lies in [0, 1] (AUC, KS, Brier, ECE)."""


def _summarise_regime(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """One regime's figures over seeds; utility intervals stay within [0, 1]."""
    summary = _summarise_tree(per_seed)
    for key in UNIT_BOUNDED:
        summary[key] = _summarise_tree([seed[key] for seed in per_seed], bounds=(0.0, 1.0))
    return summary


def privacy_spent(
    dp: dict[str, Any], world: World, holdout: Holdout, config: ExperimentConfig
) -> dict[str, float | str]:
    """The largest ε any firm spent (its guarantee is the weakest), with the target, δ and where
    the noise came from; then ε per citizen, composed over the firms each one is in."""
    spent = [float(firm["epsilon"]) for firm in dp["per_firm"].values() if firm.get("epsilon")]
    firm_ids = {
        firm: table[ID].to_numpy()[holdout.is_fit(table[ID].to_numpy())]
        for firm, table in world.firms.items()
    }
    citizens = citizen_privacy(
        firm_ids,
        dp["per_firm"],
        config.training.batch_size,
        config.federation.local_epochs,
        float(dp["delta"]),
    )
    return {
        "target_epsilon": float(dp["target_epsilon"]),
        "epsilon": max(spent) if spent else float("nan"),
        **citizens,
        "delta": float(dp["delta"]),
        "noise": str(dp["noise"]),
    }


def _federation_cluster(regimes: dict[str, Regime]) -> AbstractContextManager[None]:
    """One Ray cluster for all of a run's federations (`server.app.one_ray_cluster`); Flower
    and Ray load only when a federated regime is on."""
    if set(regimes) <= {UNIFIED, LOCAL_ONLY}:
        return nullcontext()
    from server.app import one_ray_cluster

    return one_ray_cluster()


def run_experiment(
    config: ExperimentConfig, out_dir: Path, console: Console | None = None
) -> Results:
    """Every enabled regime for every seed; writes results.json and returns it validated."""
    # Small models train fastest on one thread; idle torch threads busy-wait on a loaded machine.
    torch.set_num_threads(1)
    console = console or Console(stderr=True)
    check_data(config)
    regimes = enabled_regimes(config, Path(out_dir))
    per_seed: dict[str, list[dict[str, Any]]] = {name: [] for name in regimes}
    curves: dict[str, dict[str, list[dict[str, Any]]]] = {name: {} for name in regimes}
    exposure_per_seed: list[dict[str, Any]] = []
    server_view_per_seed: list[dict[str, Any]] = []
    inference_per_seed: list[dict[str, Any]] = []
    inferring = config.inference.enabled
    firms_per_seed: list[dict[str, Any]] = []
    fallbacks: list[dict[str, Any]] = []
    tuning: dict[str, list[Any]] = {name: [] for name in regimes}
    references: list[dict[str, Any]] = []  # per seed: the federated limit's figures
    holdout_sizes = []
    with (
        _federation_cluster(regimes),
        Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress,
    ):
        task = progress.add_task(
            "seeds × regimes",
            total=len(config.experiment.seeds)
            * (len(regimes) + 1 + config.regimes.federated_limit),
        )
        for seed in config.experiment.seeds:
            progress.update(task, description=f"seed {seed}: world")
            world = build_world(config.data, seed, config.experiment.test_fraction)
            holdout = draw_holdout(world, config, seed)
            holdout_sizes.append({"pairs": len(holdout.pairs), "citizens": len(holdout.test_ids)})
            firms_per_seed.append(data_record.firm_figures(world, holdout))
            exposure_per_seed.append({p: e.to_json() for p, e in world_exposure(world).items()})
            groups = protected_groups(world, holdout.pairs[ID].to_numpy())
            if inferring:
                inference_per_seed.append(party_figures(world, seed, config.inference))
            progress.advance(task)
            federated_runs: dict[str, dict[str, Any]] = {}
            reference: RegimeOutput | None = None
            shadows: dict[str, np.ndarray] = {}  # recipe -> shadow predictions, for one seed
            floors: FederatedFloors = {}  # the non-DP federated regimes share one floor
            for name, regime in regimes.items():
                progress.update(task, description=f"seed {seed}: {name}")
                output = regime(world, holdout, config, seed)
                if np.isnan(output.probabilities).any():
                    raise RuntimeError(f"regime {name} left held-out pairs unscored")
                if name == UNIFIED:
                    reference = output
                fallbacks += data_record.fallbacks(output, seed)
                if "tuning" in output.info:
                    tuning[name].append(output.info["tuning"])
                floor = retrained(world, holdout, config, seed, output, floors)
                figures = evaluate(world, holdout, output, config, groups, reference, floor)
                progress.update(task, description=f"seed {seed}: {name}: attacks")
                surface = membership_surface(world, holdout, config, seed, output)
                membership = membership_figures(surface, config, seed, shadows)
                for attack, result in membership.items():
                    curves[name].setdefault(attack, []).append(result.pop("roc"))
                figures["membership"] = membership
                figures["attribute_inference"] = attribute_figures(world, holdout, output, seed)
                if inferring:
                    scores = output.probabilities
                    figures |= consumer_figures(world, holdout, scores, seed, config.inference)
                released = score_points(calibrated(holdout, output)[0], config)
                figures["release"] = release_exposure(world, holdout.pairs, released).to_json()
                if "run_dir" in output.info:
                    federated_runs[name] = output.info
                if "dp" in output.info:
                    dp = output.info["dp"]  # info holds objects; a DP regime's accounting is a dict
                    assert isinstance(dp, dict)
                    figures["privacy"] = privacy_spent(dp, world, holdout, config)
                per_seed[name].append(figures)
                progress.advance(task)
            if config.regimes.federated_limit:
                progress.update(task, description=f"seed {seed}: {FEDERATED_LIMIT}")
                limit = run_federated_limit(world, holdout, config, seed)
                references.append(reference_figures(holdout, limit))
                if "tuning" in limit.info:
                    tuning.setdefault(FEDERATED_LIMIT, []).append(limit.info["tuning"])
                progress.advance(task)
            scale = config.federation.weight_scale
            view = server_view_figures(world, holdout, scale, seed, federated_runs)
            if view is not None:
                server_view_per_seed.append(view)
    raw: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "config": config,
        "seeds": list(config.experiment.seeds),
        "holdout": holdout_sizes,
        "regimes": {name: _summarise_regime(values) for name, values in per_seed.items()},
        "exposure": _summarise_tree(exposure_per_seed),
        "curves": curves,
    }
    if inference_per_seed:
        raw["inference"] = _summarise_tree(inference_per_seed)
    if server_view_per_seed:
        raw["server_view"] = _summarise_tree(server_view_per_seed)
    if config.data.source != "synthetic":  # a table: its provenance, split and firm sizes
        raw["data"] = {
            **data_record.describe_data(world),
            "firms": _summarise_tree(firms_per_seed),
        }
    if fallbacks:
        raw["fallbacks"] = fallbacks
    if references:
        raw["references"] = {
            FEDERATED_LIMIT: _summarise_tree(references, bounds=(0.0, 1.0)),
        }
    paired = paired_differences(per_seed | ({FEDERATED_LIMIT: references} if references else {}))
    if paired:
        raw["paired"] = paired
    if config.tuning.enabled:
        raw["tuning"] = {name: {"per_seed": records} for name, records in tuning.items()}
    results = parse_results(raw, origin="the results of this run")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(results.to_json())
    return results


def _cell(summary: Summary) -> str:
    mean, (low, high) = summary.mean, summary.ci95
    if mean is None or low is None or high is None:
        return "–"
    return f"{mean:.3f} ± {(high - low) / 2:.3f}"


def results_tables(results: Results) -> list[Table]:
    """Two terminal tables: utility with intervals, then each leakage family's headline."""
    from experiments.report.tables import LEAKAGE_SHORT, leakage_rows

    name, seeds = results.config.experiment.name, len(results.seeds)
    utility = Table(title=f"{name}: utility on the same held-out citizens ({seeds} seeds)")
    utility.add_column("regime", style="bold", no_wrap=True)
    metrics = ["auc", "ks", "brier", "ece"]
    for metric in metrics:
        utility.add_column(metric.upper(), justify="right")
    leakage = Table(
        title=f"{name}: what each regime reveals (means; report.html explains each column)"
    )
    leakage.add_column("regime", style="bold", no_wrap=True)
    for header in LEAKAGE_SHORT[1:]:
        leakage.add_column(header, justify="right")
    for regime, cells in leakage_rows(results.as_dict()):
        figures = results.regimes[regime].utility
        utility.add_row(regime, *(_cell(getattr(figures, m)) for m in metrics))
        leakage.add_row(regime, *cells[1:])
    for name, reference in (results.references or {}).items():
        figures = reference.utility
        utility.add_row(
            f"[dim]{name} (reference)[/]", *(_cell(getattr(figures, m)) for m in metrics)
        )
    seeded = [n for n, r in results.regimes.items() if r.privacy and r.privacy.noise == "run-seed"]
    if seeded:
        utility.caption = (
            f"[bold red]reproducible = true: the DP noise of {', '.join(seeded)} came from the "
            "run seed; the server could regenerate it (no DP guarantee against the server)[/]"
        )
    if not results.paired:
        return [utility, leakage]
    paired = Table(title=f"{name}: paired differences over seeds (mean [95 % interval])")
    paired.add_column("a − b", style="bold", no_wrap=True)
    for metric in PAIRED_METRICS:
        paired.add_column(f"Δ{metric.upper()}", justify="right")
    for pair, difference in results.paired.items():
        paired.add_row(pair, *(_interval(getattr(difference, m)) for m in PAIRED_METRICS))
    return [utility, paired, leakage]


def _interval(summary: Summary) -> str:
    mean, (low, high) = summary.mean, summary.ci95
    if mean is None or low is None or high is None:
        return "–"
    return f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]"
