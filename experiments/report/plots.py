"""Figures for the HTML report (embedded as PNG): plots of typed leakage results, and one figure
per report section drawn from results.json.

Figures are built as `matplotlib.figure.Figure` on an Agg canvas, never through pyplot: no
global figure registry, no display needed, and nothing leaks between calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from experiments.leakage.attribute import AttributeResult
from experiments.leakage.membership import FPR_LEVELS, MembershipResult
from experiments.report.reading import (
    mean_and_error,
    ordered_regimes,
    ordered_tiers,
    regime_label,
)

Curve = tuple[npt.ArrayLike, npt.ArrayLike] | MembershipResult

_AXIS_MARGIN = 2.0
"""The log axes start this factor below the smallest reported FPR level, so its line shows."""


def new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _curve_arrays(regime: str, curve: Curve) -> tuple[np.ndarray, np.ndarray]:
    fpr, tpr = (curve.fpr, curve.tpr) if isinstance(curve, MembershipResult) else curve
    fpr_array = np.asarray(fpr, dtype=np.float64)
    tpr_array = np.asarray(tpr, dtype=np.float64)
    if fpr_array.ndim != 1 or fpr_array.shape != tpr_array.shape:
        raise ValueError(
            f"curve {regime!r}: fpr and tpr must be 1-D of one length, "
            f"got {fpr_array.shape} and {tpr_array.shape}"
        )
    return fpr_array, tpr_array


def membership_roc_figure(curves: Mapping[str, Curve], title: str | None = None) -> Figure:
    """Membership-inference ROC per regime on log-log axes, where low-FPR leakage is visible.

    curves: regime -> (fpr, tpr) arrays of one length, or a `MembershipResult`. Points with a
    zero rate cannot sit on a log axis and are left out; the diagonal is a guessing attacker and
    the dotted verticals mark the reported 0.1 % and 1 % FPR. The axes start at the smallest
    resolved FPR (one false positive) or just below 0.1 %, whichever is smaller.
    """
    if not curves:
        raise ValueError("curves must name at least one regime")
    arrays = {regime: _curve_arrays(regime, curve) for regime, curve in curves.items()}
    smallest_positive = [float(fpr[fpr > 0].min()) for fpr, _ in arrays.values() if fpr.max() > 0]
    left = min([min(FPR_LEVELS) / _AXIS_MARGIN, *smallest_positive])

    figure = new_figure(5.5, 5.0)
    axes = figure.add_subplot()
    for regime, (fpr, tpr) in arrays.items():
        visible = (fpr > 0) & (tpr > 0)
        axes.plot(fpr[visible], tpr[visible], label=regime, linewidth=1.5)
    axes.plot([left, 1.0], [left, 1.0], color="grey", linestyle="--", linewidth=1, label="chance")
    for level in FPR_LEVELS:
        axes.axvline(level, color="lightgrey", linestyle=":", linewidth=1)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlim(left, 1.0)
    axes.set_ylim(left, 1.0)
    axes.set_xlabel("False positive rate")
    axes.set_ylabel("True positive rate")
    axes.set_title(title or "Membership inference (log-log ROC)")
    axes.legend(loc="lower right")
    return figure


def attribute_bars_figure(results: Mapping[str, Mapping[str, AttributeResult]]) -> Figure:
    """Attribute-inference AUC per sensitive attribute and regime, beside its advantage.

    results: regime -> attribute -> result. Left panel: AUC from score + quasi-identifiers as
    bars, the quasi-identifier-only baseline as a black tick on each bar. Right panel: the
    advantage (the gap between the two). Attributes rarer than 10 % are labelled "(rare)": read
    their G-mean and MCC in the table, not the AUC alone.
    """
    if not results or not any(results.values()):
        raise ValueError("results must hold at least one regime with one attribute")
    attributes: list[str] = list(dict.fromkeys(a for per in results.values() for a in per))
    rare = {a for per in results.values() for a, r in per.items() if r.rare}
    regimes = list(results)
    positions = np.arange(len(attributes), dtype=np.float64)
    width = 0.8 / len(regimes)

    figure = new_figure(max(7.0, 1.6 * len(attributes) * 2), 4.2)
    auc_axes, advantage_axes = figure.subplots(1, 2)
    for index, regime in enumerate(regimes):
        per_attribute = results[regime]
        auc = np.array([_field(per_attribute, a, "auc_score_and_qi") for a in attributes])
        baseline = np.array([_field(per_attribute, a, "auc_qi_only") for a in attributes])
        advantage = np.array([_field(per_attribute, a, "advantage") for a in attributes])
        present = np.isfinite(auc)
        x = (positions - 0.4 + width * (index + 0.5))[present]
        colour = f"C{index % 10}"
        auc_axes.bar(x, auc[present], width, label=regime, color=colour)
        auc_axes.hlines(baseline[present], x - width / 2, x + width / 2, color="black", linewidth=2)
        advantage_axes.bar(x, advantage[present], width, label=regime, color=colour)

    labels = [f"{a}\n(rare)" if a in rare else a for a in attributes]
    for axes in (auc_axes, advantage_axes):
        axes.set_xticks(positions, labels, fontsize=8)
    auc_axes.set_ylim(0.5, 1.0)
    auc_axes.set_ylabel("AUC, score + quasi-identifiers (tick: QI only)")
    auc_axes.set_title("Attribute inference")
    auc_axes.legend(fontsize=8)
    advantage_axes.axhline(0.0, color="black", linewidth=0.8)
    advantage_axes.set_ylabel("Advantage over QI-only (AUC points)")
    advantage_axes.set_title("What the score adds")
    return figure


def _field(per_attribute: Mapping[str, AttributeResult], attribute: str, name: str) -> float:
    """A result's field, NaN where this regime did not attack this attribute (no bar drawn)."""
    result = per_attribute.get(attribute)
    return float("nan") if result is None else float(getattr(result, name))


# --- the report's figures, drawn from results.json ------------------------------------------------


def utility_figure(results: dict[str, Any]) -> Figure:
    """AUC and KS per regime, mean with the 95 % interval over seeds."""
    names = ordered_regimes(results)
    figure = new_figure(10, 0.5 * len(names) + 1.5)
    axes = figure.subplots(1, 2, sharey=True)
    for axis, metric in zip(axes, ("auc", "ks"), strict=True):
        stats = [mean_and_error(results["regimes"][n]["utility"][metric]) for n in names]
        axis.barh(
            [regime_label(n) for n in names],
            [s[0] for s in stats],
            xerr=[s[1] for s in stats],
            color="#4c72b0",
            capsize=3,
        )
        axis.set_xlabel(metric.upper())
        axis.set_xlim(0.5 if metric == "auc" else 0.0, 1.0)
    axes[0].invert_yaxis()  # the axes share y: inverting each would undo it
    figure.suptitle("Utility on the same held-out citizens")
    return figure


def exposure_figure(results: dict[str, Any]) -> Figure:
    """Raw cells each party holds (log scale), and the citizens it links across domains."""
    exposure = results["exposure"]
    parties = list(exposure)
    linked = [exposure[p]["linked_citizens"]["mean"] or 0 for p in parties]
    figure = new_figure(10, 0.35 * len(parties) + 1.5)
    axes = figure.subplots(1, 2 if any(linked) else 1, sharey=True, squeeze=False)[0]
    cells = [max(exposure[p]["cells"]["mean"] or 0, 1) for p in parties]
    axes[0].barh(parties, cells, color="#c44e52")
    axes[0].set_xscale("log")
    axes[0].set_xlabel("raw (citizen × attribute) cells held")
    if any(linked):  # a table's firms link no one: no empty panel
        axes[1].barh(parties, linked, color="#8172b2")
        axes[1].set_xlabel("citizens it links across domains")
    axes[0].invert_yaxis()
    return figure


def tiers_figure(results: dict[str, Any]) -> Figure:
    """Share of held-out customers in each privilege tier, per regime."""
    names = ordered_regimes(results)
    tiers = ordered_tiers(results)
    figure = new_figure(10, 0.5 * len(names) + 1.5)
    axis = figure.subplots()
    left = [0.0] * len(names)
    colours = colormaps["viridis"]([i / max(len(tiers) - 1, 1) for i in range(len(tiers))])
    for tier, colour in zip(tiers, colours, strict=True):
        shares = [
            results["regimes"][n]["decisions"]["tier_share"][tier]["mean"] or 0 for n in names
        ]
        axis.barh([regime_label(n) for n in names], shares, left=left, label=tier, color=colour)
        left = [a + b for a, b in zip(left, shares, strict=True)]
    axis.set_xlabel("share of held-out customers")
    axis.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(tiers), frameon=False)
    axis.invert_yaxis()
    return figure


def frontier_figure(results: dict[str, Any]) -> Figure | None:
    """Privacy–utility frontier: AUC against ε for the DP regimes, non-private ones as lines."""
    dp = {
        float(n.removeprefix("federated_dp_eps")): r
        for n, r in results["regimes"].items()
        if n.startswith("federated_dp_eps")
    }
    if not dp:
        return None
    epsilons = sorted(dp)
    stats = [mean_and_error(dp[e]["utility"]["auc"]) for e in epsilons]
    figure = new_figure(7, 4)
    axis = figure.subplots()
    axis.errorbar(
        epsilons,
        [s[0] for s in stats],
        yerr=[s[1] for s in stats],
        marker="o",
        capsize=3,
        label="federated + DP",
    )
    for name, style in (("federated_secagg", "--"), ("unified", ":"), ("local_only", "-.")):
        if name in results["regimes"]:
            axis.axhline(
                results["regimes"][name]["utility"]["auc"]["mean"],
                linestyle=style,
                color="grey",
                label=regime_label(name),
            )
    axis.set_xscale("log")
    axis.set_xlabel("ε (per firm, δ fixed)")
    axis.set_ylabel("AUC")
    axis.legend(fontsize=8)
    return figure


ROC_GRID = np.logspace(-4, 0, 200)
"""Common FPR grid on which the per-seed ROC curves are averaged."""


def mean_roc(curves: list[dict[str, list[float | None]]]) -> tuple[np.ndarray, np.ndarray]:
    """Average per-seed ROC curves (each on its own points) on one log-FPR grid."""
    tprs = [
        np.interp(ROC_GRID, np.asarray(c["fpr"], dtype=float), np.asarray(c["tpr"], dtype=float))
        for c in curves
    ]
    return ROC_GRID, np.mean(tprs, axis=0)


def membership_figure(results: dict[str, Any], attack: str) -> Figure | None:
    """Log-log ROC of one membership attack per regime, averaged over seeds."""
    curves = {
        regime_label(n): mean_roc(results["curves"][n][attack])
        for n in ordered_regimes(results)
        if attack in results.get("curves", {}).get(n, {})
    }
    if not curves:
        return None
    return membership_roc_figure(curves, title=f"Membership inference ({attack}), mean over seeds")


def attribute_figure(results: dict[str, Any]) -> Figure | None:
    """AUC of each sensitive attribute from score + QIs against QIs alone, per regime."""
    per_regime: dict[str, dict[str, AttributeResult]] = {}
    for name in ordered_regimes(results):
        attributes = results["regimes"][name].get("attribute_inference", {})
        per_regime[regime_label(name)] = {
            attribute: AttributeResult(
                **{
                    key: (value["mean"] if isinstance(value, dict) else value)
                    for key, value in figures.items()
                }
            )
            for attribute, figures in attributes.items()
        }
    if not any(per_regime.values()):
        return None
    return attribute_bars_figure(per_regime)


def _tuning_records(results: dict[str, Any], name: str) -> list[tuple[str, dict[str, Any]]]:
    """(label, record) per seed (and per firm for local-only) of one regime's tuning."""
    seeds = results["seeds"]
    records: list[tuple[str, dict[str, Any]]] = []
    for seed, record in zip(seeds, results["tuning"][name]["per_seed"], strict=False):
        if "grid" in record:
            records.append((f"seed {seed}", record))
        else:
            records += [(f"seed {seed} {firm}", r) for firm, r in record.items()]
    return records


def convergence_figure(results: dict[str, Any]) -> Figure | None:
    """Validation loss after each pass of each regime's chosen grid point, every seed (and
    firm); a dot marks the pass chosen. A dot well before the line's end, on a flat stretch,
    is a budget on its plateau; a dot at the budget's end is one that may want more."""
    tuning = results.get("tuning") or {}
    names = [n for n in ordered_regimes(results) if n in tuning and tuning[n]["per_seed"]]
    names = [n for n in names if not n.startswith("federated_dp_eps")]  # theirs is federated's
    if not names:
        return None
    local_epochs = results["config"]["federation"]["local_epochs"]
    figure = new_figure(4.0 * len(names), 3.6)
    axes = figure.subplots(1, len(names), squeeze=False)[0]
    for axis, name in zip(axes, names, strict=True):
        for label, record in _tuning_records(results, name):
            step = local_epochs if record["unit"] == "rounds" else 1
            curve = np.asarray(record["curve"], dtype=float)
            passes = step * np.arange(1, len(curve) + 1)
            (line,) = axis.plot(passes, curve, linewidth=1, label=label)
            chosen = record["passes"] - 1
            axis.plot(passes[chosen], curve[chosen], "o", color=line.get_color(), markersize=4)
        axis.axvline(
            results["config"]["tuning"]["max_epochs"], color="grey", linestyle=":", linewidth=1
        )
        axis.set_title(regime_label(name), fontsize=9)
        axis.set_xlabel("epochs (federated: rounds × local epochs)")
        axis.set_ylabel("validation loss")
        if name != "local_only":
            axis.legend(fontsize=7)
    figure.suptitle("Convergence: validation loss of each regime's chosen hyperparameters")
    return figure
