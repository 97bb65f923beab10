"""The reviewers' report: one self-contained HTML file (plots embedded) and a long-form CSV.

Everything is drawn from results.json, so a report can be rebuilt from a run's results alone
(`fedscore report RUN_DIR`). Sections appear for the figures the run has.
"""

from __future__ import annotations

import base64
import csv
import html
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from clients.scorecard import tier_names
from experiments.leakage.attribute import AttributeResult
from experiments.report.plots import attribute_bars_figure, membership_roc_figure, new_figure

REGIME_LABELS = {
    "unified": "Unified national score",
    "local_only": "Local-only firm scores",
    "federated_plain": "Federated, no secure aggregation",
    "federated_secagg": "Federated + secure aggregation (ours)",
    "federated_flower_secagg": "Federated + Flower SecAgg+",
}


REGIME_ORDER = (
    "unified",
    "federated_secagg",
    "federated_flower_secagg",
    "federated_plain",
    "federated_dp_eps",
    "local_only",
)


def ordered_regimes(results: dict[str, Any]) -> list[str]:
    """Regimes from the most centralised to the least, DP regimes by ε (results.json sorts keys)."""

    def rank(name: str) -> tuple[int, float]:
        if name.startswith("federated_dp_eps"):
            return REGIME_ORDER.index("federated_dp_eps"), float(
                name.removeprefix("federated_dp_eps")
            )
        return (REGIME_ORDER.index(name) if name in REGIME_ORDER else len(REGIME_ORDER)), 0.0

    return sorted(results["regimes"], key=rank)


def ordered_tiers(results: dict[str, Any]) -> list[str]:
    """Tier names from "none" up, by threshold."""
    return tier_names(results["config"]["scorecard"]["tiers"])


def regime_label(name: str) -> str:
    if name.startswith("federated_dp_eps"):
        return f"Federated + DP (ε = {name.removeprefix('federated_dp_eps')})"
    return REGIME_LABELS.get(name, name)


# --- results.csv -------------------------------------------------------------------------------


def _leaves(
    tree: dict[str, Any], path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    """Every summarised metric (a dict with "per_seed") under `tree`, with its key path."""
    for key, value in tree.items():
        if isinstance(value, dict) and "per_seed" in value:
            yield (*path, key), value
        elif isinstance(value, dict):
            yield from _leaves(value, (*path, key))


def write_csv(results: dict[str, Any], path: Path) -> None:
    """Long form: one row per (scope, metric, seed, value); scope is a regime or a section."""
    seeds = results["seeds"]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["scope", "metric", "seed", "value"])
        scopes = dict(results["regimes"])
        for section in ("exposure", "server_view"):
            if section in results:
                scopes[section] = results[section]
        for scope, tree in scopes.items():
            for metric_path, summary in _leaves(tree):
                for seed, value in zip(seeds, summary["per_seed"], strict=True):
                    writer.writerow(
                        [scope, ".".join(metric_path), seed, "" if value is None else repr(value)]
                    )


# --- figures -----------------------------------------------------------------------------------


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _mean_and_error(summary: dict[str, Any]) -> tuple[float, float]:
    mean = summary["mean"]
    if mean is None:
        return float("nan"), 0.0
    low, high = summary["ci95"]
    return mean, (high - low) / 2


def utility_figure(results: dict[str, Any]) -> Figure:
    """AUC and KS per regime, mean with the 95 % interval over seeds."""
    names = ordered_regimes(results)
    figure = new_figure(10, 0.5 * len(names) + 1.5)
    axes = figure.subplots(1, 2, sharey=True)
    for axis, metric in zip(axes, ("auc", "ks"), strict=True):
        stats = [_mean_and_error(results["regimes"][n]["utility"][metric]) for n in names]
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
    """Raw cells each party holds (log scale) and the share of its citizens unique on QIs."""
    exposure = results["exposure"]
    parties = list(exposure)
    figure = new_figure(10, 0.35 * len(parties) + 1.5)
    axes = figure.subplots(1, 2, sharey=True)
    cells = [max(exposure[p]["cells"]["mean"] or 0, 1) for p in parties]
    axes[0].barh(parties, cells, color="#c44e52")
    axes[0].set_xscale("log")
    axes[0].set_xlabel("raw (citizen × attribute) cells held")
    axes[1].barh(
        parties, [exposure[p]["unique_share"]["mean"] or 0 for p in parties], color="#8172b2"
    )
    axes[1].set_xlabel("share of its citizens unique on quasi-identifiers (k = 1)")
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
    stats = [_mean_and_error(dp[e]["utility"]["auc"]) for e in epsilons]
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


# --- tables ------------------------------------------------------------------------------------


def _cell(summary: dict[str, Any] | None, digits: int = 3) -> str:
    if summary is None or summary.get("mean") is None:
        return "–"
    mean, half = _mean_and_error(summary)
    return f"{mean:.{digits}f} <small>± {half:.{digits}f}</small>"


def _table(header: list[str], rows: list[list[str]], caption: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><caption>{html.escape(caption)}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def leakage_rows(results: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """Regime → the headline figures of each leakage family, as plain text cells.

    Who holds raw data comes from the exposure of the party that trains; the server's
    inference error from the server view (the federated regimes differ only in it);
    the attack figures from the released model. Shared by the report and the terminal.
    """
    exposure = results.get("exposure", {})
    view = results.get("server_view", {})
    operator_cells = exposure.get("central_operator", {}).get("cells", {}).get("mean")
    firm_cells = max(
        (e["cells"]["mean"] for p, e in exposure.items() if p.startswith("firm:")), default=None
    )
    trainer_cells = {
        "unified": operator_cells,
        "local_only": firm_cells,
    }

    def number(value: float | None, digits: int = 3) -> str:
        return "–" if value is None else f"{value:,.{digits}f}"

    def server_error(name: str) -> str:
        if not name.startswith("federated") or not view:
            return "–"
        side = "plain" if name == "federated_plain" else "secagg"
        return number(view[side]["default_rate_error"]["mean"], 4)

    rows = []
    for name in ordered_regimes(results):
        regime = results["regimes"][name]
        membership = regime.get("membership", {})
        lira = membership.get("lira") or membership.get("loss") or {}
        advantages = [
            f["advantage"]["mean"]
            for f in regime.get("attribute_inference", {}).values()
            if f["advantage"]["mean"] is not None
        ]
        gaps = [
            abs(g["mean"])
            for g in regime["decisions"]["demographic_parity_gap"].values()
            if g["mean"] is not None
        ]
        cells = trainer_cells.get(name, firm_cells if name.startswith("federated") else None)
        rows.append(
            (
                name,
                [
                    number(regime["utility"]["auc"]["mean"]),
                    number(cells, 0),
                    server_error(name),
                    number(lira.get("auc", {}).get("mean")),
                    number(lira.get("tpr_at_1_percent_fpr", {}).get("mean"), 4),
                    number(max(advantages, default=None), 4),
                    number(max(gaps, default=None)),
                    number(regime["decisions"].get("tier_changed_vs_unified", {}).get("mean")),
                    number(regime.get("privacy", {}).get("epsilon", {}).get("mean"), 2),
                ],
            )
        )
    return rows


LEAKAGE_HEADER = [
    "AUC",
    "most raw cells one party holds",
    "server's error on a firm's default rate",
    "membership AUC (LiRA)",
    "TPR at 1 % FPR",
    "max attribute advantage",
    "max parity gap",
    "tier differs from unified",
    "ε spent",
]


LEAKAGE_SHORT = [
    "AUC",
    "raw cells",
    "srv err",
    "MIA AUC",
    "TPR@1%",
    "attr adv",
    "gap",
    "tier Δ",
    "ε",
]
"""LEAKAGE_HEADER for a terminal: the report's captions say what each means."""


def leakage_table(results: dict[str, Any]) -> str:
    rows = [[html.escape(regime_label(n)), *cells] for n, cells in leakage_rows(results)]
    return _table(
        ["regime", *LEAKAGE_HEADER],
        rows,
        "Side by side: what each regime reveals (means over seeds; details in the sections below)",
    )


def utility_table(results: dict[str, Any]) -> str:
    metrics = ["auc", "ks", "brier", "ece"]
    rows = [
        [
            html.escape(regime_label(n)),
            *(_cell(results["regimes"][n]["utility"][m]) for m in metrics),
        ]
        for n in ordered_regimes(results)
    ]
    return _table(
        ["regime", "AUC", "KS", "Brier", "ECE"],
        rows,
        "Utility (mean ± 95 % half-interval over seeds)",
    )


def exposure_table(results: dict[str, Any]) -> str:
    rows = [
        [
            html.escape(party),
            _cell(e["cells"], 0),
            _cell(e["sensitive_proxy_cells"], 0),
            _cell(e["linked_citizens"], 0),
            _cell(e["unique_share"]),
        ]
        for party, e in results["exposure"].items()
    ]
    return _table(
        [
            "party",
            "raw cells",
            "sensitive-proxy cells",
            "citizens linked across domains",
            "unique on QIs",
        ],
        rows,
        "Exposure: what each party holds in raw form",
    )


def server_view_table(results: dict[str, Any]) -> str:
    view = results["server_view"]
    labels = {
        "default_rate_error": "a firm's default rate",
        "feature_mean_error": "a firm's feature means",
        "single_record_error": "a single record (from a one-record update)",
    }
    rows = [
        [html.escape(text), _cell(view["plain"][m], 4), _cell(view["secagg"][m], 4)]
        for m, text in labels.items()
    ]
    first = _table(
        ["what the server infers", "error without secure aggregation", "error with it (sum only)"],
        rows,
        "Server view: inference error about one firm, mean over firms (0 = learnt exactly)",
    )
    policies = {
        "any": "every online firm joins (participation changes)",
        "fixed": "defence: fixed participation (all firms or no round)",
        "groups": "defence: minimum participant set (firms tied in pairs)",
    }
    rows = [
        [
            html.escape(text),
            _cell(view["disaggregation"][p]["rank"], 1),
            _cell(view["disaggregation"][p]["relative_error"], 3),
            _cell(view["disaggregation"][p]["completed_round_share"], 2),
            _cell(view["disaggregation"][p]["mean_participants"], 1),
        ]
        for p, text in policies.items()
    ]
    second = _table(
        ["participation", "rank", "recovery error", "rounds completed", "firms per round"],
        rows,
        "Disaggregation across rounds (Lam et al. 2021): individual vectors from sums",
    )
    return first + second


def membership_table(results: dict[str, Any]) -> str:
    rows = []
    for n in ordered_regimes(results):
        membership = results["regimes"][n].get("membership", {})
        for attack, figures in membership.items():
            rows.append(
                [
                    html.escape(f"{regime_label(n)} — {attack}"),
                    _cell(figures["auc"]),
                    _cell(figures["tpr_at_0_1_percent_fpr"], 4),
                    _cell(figures["tpr_at_1_percent_fpr"], 4),
                    _cell(figures["n_nonmembers"], 0),
                ]
            )
    return _table(
        ["regime — attack", "AUC", "TPR at 0.1 % FPR", "TPR at 1 % FPR", "non-members"],
        rows,
        "Membership inference on the released model (0.5 AUC and TPR = FPR: nothing learnt)",
    )


def attribute_table(results: dict[str, Any]) -> str:
    rows = []
    for n in ordered_regimes(results):
        for attribute, f in results["regimes"][n].get("attribute_inference", {}).items():
            rows.append(
                [
                    html.escape(f"{regime_label(n)} — {attribute}"),
                    _cell(f["auc_score_and_qi"]),
                    _cell(f["auc_qi_only"]),
                    _cell(f["advantage"], 4),
                    _cell(f["g_mean_score_and_qi"]),
                    _cell(f["mcc_score_and_qi"]),
                ]
            )
    return _table(
        ["regime — attribute", "AUC score + QIs", "AUC QIs only", "advantage", "G-mean", "MCC"],
        rows,
        "Attribute inference from the released score (advantage over the QI-only baseline)",
    )


def privacy_table(results: dict[str, Any]) -> str:
    rows = [
        [
            html.escape(regime_label(n)),
            _cell(results["regimes"][n]["privacy"]["target_epsilon"], 2),
            _cell(results["regimes"][n]["privacy"]["epsilon"], 2),
            f"{results['regimes'][n]['privacy']['delta']['mean']:.0e}",
            _cell(results["regimes"][n]["utility"]["auc"]),
        ]
        for n in ordered_regimes(results)
        if "privacy" in results["regimes"][n]
    ]
    return _table(
        ["regime", "target ε", "ε spent (worst firm)", "δ", "AUC"],
        rows,
        "Privacy budget of the DP regimes (Opacus RDP accountant, over all rounds)",
    )


def gaps_table(results: dict[str, Any]) -> str:
    names = ordered_regimes(results)
    groups = list(results["regimes"][names[0]]["decisions"]["demographic_parity_gap"])
    rows = []
    for group in groups:
        row = [html.escape(group)]
        for n in names:
            d = results["regimes"][n]["decisions"]
            row.append(
                f"{_cell(d['demographic_parity_gap'][group])} / {_cell(d['equal_opportunity_gap'][group])}"
            )
        rows.append(row)
    return _table(
        ["group", *(regime_label(n) for n in names)],
        rows,
        "Decision gaps: demographic parity / equal opportunity (group − rest; negative = privileged less often)",
    )


# --- the page ----------------------------------------------------------------------------------


def _figure(title: str, figure: Figure | None) -> str:
    if figure is None:
        return ""
    return f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{_png(figure)}"><figcaption>{html.escape(title)}</figcaption></figure>'


def summary_paragraphs(results: dict[str, Any]) -> list[str]:
    """Plain-language sentences, each built from the figures in `results`."""
    out = []
    exposure = results.get("exposure", {})
    operator = exposure.get("central_operator")
    if operator:
        out.append(
            f"The unified national score requires a central operator holding about "
            f"{operator['cells']['mean']:,.0f} raw data cells, {operator['sensitive_proxy_cells']['mean']:,.0f} "
            f"of them proxies of sensitive attributes; it links {operator['linked_citizens']['mean']:,.0f} "
            f"citizens across domains and can single out {100 * operator['unique_share']['mean']:.1f} % of "
            f"citizens by quasi-identifiers alone."
        )
    firms = [e for p, e in exposure.items() if p.startswith("firm:")]
    if firms:
        worst = max(e["unique_share"]["mean"] for e in firms)
        out.append(
            f"Under federated or local-only scoring no party holds more than its own customers: "
            f"no firm links anyone across domains, and at most {100 * worst:.1f} % of a firm's customers "
            f"are unique on the quasi-identifiers it holds. The coordinating server holds no raw data."
        )
    view = results.get("server_view")
    if view:
        out.append(
            f"Without secure aggregation the server learns each firm's default rate with error "
            f"{view['plain']['default_rate_error']['mean']:.4f} and rebuilds a single record from a "
            f"one-record update with error {view['plain']['single_record_error']['mean']:.4f}; with secure "
            f"aggregation it sees only the sum, and its errors rise to "
            f"{view['secagg']['default_rate_error']['mean']:.4f} and "
            f"{view['secagg']['single_record_error']['mean']:.3f}. Changing participation across rounds "
            f"undoes that (recovery error {view['disaggregation']['any']['relative_error']['mean']:.1e}) unless "
            f"participation is fixed or grouped."
        )
    regimes = results["regimes"]
    if "unified" in regimes:
        parts = [
            f"{regime_label(n)} {regimes[n]['utility']['auc']['mean']:.3f}"
            for n in ordered_regimes(results)
        ]
        out.append("Utility (AUC on the same held-out citizens): " + "; ".join(parts) + ".")
    return out


STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}caption{text-align:left;font-weight:600;padding:.3em 0}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}th:first-child,td:first-child{text-align:left}
thead{background:#f3f3f3}small{color:#777}figure{margin:1em 0}img{max-width:100%}
.summary p{background:#f8f8ff;padding:.6em;border-left:3px solid #4c72b0}
"""


def render_html(results: dict[str, Any]) -> str:
    config = results["config"]
    name = html.escape(config["experiment"]["name"])
    seeds = ", ".join(map(str, results["seeds"]))
    sections = [
        f"<h1>fedscore: {name}</h1>",
        f"<p>Source: {html.escape(config['data']['source'])}; seeds {seeds}; results schema v{results['schema_version']}.</p>",
        '<section class="summary"><h2>What each regime reveals to whom</h2>'
        + "".join(f"<p>{html.escape(p)}</p>" for p in summary_paragraphs(results))
        + "</section>",
        "<h2>Side by side</h2>" + leakage_table(results),
        "<h2>Utility</h2>"
        + utility_table(results)
        + _figure("Utility per regime", utility_figure(results)),
    ]
    if "exposure" in results:
        sections.append(
            "<h2>Exposure</h2>"
            + exposure_table(results)
            + _figure("Exposure per party", exposure_figure(results))
        )
    if "server_view" in results:
        sections.append("<h2>Server view</h2>" + server_view_table(results))
    if any("membership" in r for r in results["regimes"].values()):
        sections.append(
            "<h2>Membership inference</h2>"
            + membership_table(results)
            + _figure("Loss-threshold attack, log-scale ROC", membership_figure(results, "loss"))
            + _figure("LiRA (online), log-scale ROC", membership_figure(results, "lira"))
        )
    if any(r.get("attribute_inference") for r in results["regimes"].values()):
        sections.append(
            "<h2>Attribute inference</h2>"
            + _figure("Sensitive attributes from the released score", attribute_figure(results))
            + attribute_table(results)
        )
    frontier = frontier_figure(results)
    if frontier is not None:
        sections.append(
            "<h2>Privacy–utility frontier</h2>"
            + privacy_table(results)
            + _figure("AUC against ε", frontier)
        )
    sections.append(
        "<h2>Decisions</h2>"
        + _figure("Privilege tiers per regime", tiers_figure(results))
        + gaps_table(results)
    )
    body = "\n".join(sections)
    return f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>fedscore report: {name}</title><style>{STYLE}</style></head><body>\n{body}\n</body></html>\n'


def write_report(results: dict[str, Any], out_dir: Path) -> Path:
    """Write report.html and results.csv beside results.json; returns the report's path."""
    out_dir = Path(out_dir)
    write_csv(results, out_dir / "results.csv")
    path = out_dir / "report.html"
    path.write_text(render_html(results))
    return path
