"""The reviewers' report: one self-contained HTML page (figures embedded) and results.csv.

Everything is drawn from results.json, so a report can be rebuilt from a run's results alone
(`fedscore report RUN_DIR`). Sections appear for the figures the run has. The page is assembled
here from the tables of `tables.py` and the figures of `plots.py`; `csv.py` writes the CSV.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from experiments.report.csv import write_csv
from experiments.report.data import data_section
from experiments.report.inference_tables import (
    cross_context_table,
    inference_sentence,
    knowledge_table,
    party_table,
)
from experiments.report.lead import lead_paragraphs
from experiments.report.plots import (
    attribute_figure,
    convergence_figure,
    exposure_figure,
    frontier_figure,
    membership_figure,
    tiers_figure,
    utility_figure,
)
from experiments.report.reading import mean_and_error, ordered_regimes, regime_label
from experiments.report.tables import (
    attribute_table,
    calibration_table,
    exposure_table,
    gaps_table,
    leakage_table,
    membership_table,
    paired_table,
    privacy_table,
    release_table,
    reproducible_noise_regimes,
    server_view_table,
    tuning_table,
    utility_table,
)
from experiments.report.tier_tables import gains_table, tier_change_table


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(title: str, figure: Figure | None) -> str:
    if figure is None:
        return ""
    return f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{_png(figure)}"><figcaption>{html.escape(title)}</figcaption></figure>'


def reproducible_noise_notice(results: dict[str, Any]) -> str:
    """A warning at the top when a DP regime's noise came from seeds the server knows."""
    names = reproducible_noise_regimes(results)
    if not names:
        return ""
    listed = ", ".join(regime_label(n) for n in names)
    return (
        '<p class="warning"><strong>Reproducible DP noise.</strong> '
        + html.escape(
            f"This run sets [federation] reproducible = true, so that its results repeat: the "
            f"DP noise of {listed} was seeded from the run seed, the round and each firm's name. "
            "The coordinating server knows all three and could regenerate and remove that "
            "noise, so these regimes' (ε, δ) guarantee holds against every party but the "
            "server. Without the setting, each firm draws its noise from its OS generator."
        )
        + "</p>"
    )


def policy_notice(results: dict[str, Any]) -> str:
    """A notice when the world is the policy positive control (`[data.policy]`), so no reader
    takes its attribute advantages and gaps for the default world's."""
    policy = results["config"]["data"].get("policy") or {}
    if not policy.get("strength"):
        return ""
    target = html.escape(str(policy["target"]).replace("_", " "))
    return (
        f'<p class="warning">Positive control: in this world a policy adds '
        f"{policy['strength']:+g} to the default logit of the group {target} "
        f"(<code>[data.policy]</code>), so the scores should reveal it: the attribute "
        f"advantages and group gaps below measure whether the harness detects that.</p>"
    )


def _data_section(results: dict[str, Any]) -> str:
    section = data_section(results)
    return f"<h2>Data</h2>{section}" if section else ""


def _percent(summary: dict[str, Any]) -> str:
    mean, half = mean_and_error(summary)
    return f"{100 * mean:.1f} % (± {100 * half:.1f})"


def _rate(summary: dict[str, Any]) -> str:
    mean, half = mean_and_error(summary)
    return f"{mean:.4f} (± {half:.4f})"


def summary_paragraphs(results: dict[str, Any]) -> list[str]:
    """Plain-language sentences, each built from the figures in `results`."""
    out = []
    exposure = results.get("exposure", {})
    operator = exposure.get("central_operator")
    # Only statements the data supports: no cross-domain links on a table (each row is one
    # person at one firm; the count would be firm + an empty government record), no
    # uniqueness where no quasi-identifier was declared.
    has_qis = bool(results.get("data", {}).get("quasi_identifiers", True))
    links = bool(
        "data" not in results and operator and (operator["linked_citizens"]["mean"] or 0) > 0
    )
    if operator:
        clauses = []
        if links:
            clauses.append(
                f"links {operator['linked_citizens']['mean']:,.0f} citizens across domains"
            )
        out.append(
            f"The unified national score requires a central operator holding about "
            f"{operator['cells']['mean']:,.0f} raw data cells, {operator['sensitive_proxy_cells']['mean']:,.0f} "
            f"of them proxies of sensitive attributes, every one keyed by national id"
            + ("; it " + " and ".join(clauses) if clauses else "")
            + "."
        )
    firms = [e for p, e in exposure.items() if p.startswith("firm:")]
    if firms:
        clauses = ["no firm links anyone across domains"] if links else []
        out.append(
            "Under federated or local-only scoring no party holds more than its own customers"
            + (": " + ", and ".join(clauses) if clauses else "")
            + ". The coordinating server holds no raw data."
        )
    inferred = inference_sentence(results)
    if inferred:
        out.append(inferred)
    release = {n: r["release"] for n, r in results["regimes"].items() if "release" in r}
    if has_qis and release:
        linkage = "; ".join(
            f"{regime_label(n)} {_percent(r['cross_release_linkage'])}"
            for n, r in release.items()
            if r["cross_release_linkage"]["mean"] is not None
        )
        qi_only = next(iter(release.values()))["cross_release_linkage_qi_only"]
        if linkage and qi_only["mean"] is not None:
            out.append(
                "Released scores beside the quasi-identifiers link a citizen's records at two"
                f" firms to each other (share of pairs of firms): {linkage}; the"
                f" quasi-identifiers alone link {_percent(qi_only)}."
            )
    view = results.get("server_view")
    if view:
        first = view["first_round"]
        sides = []
        if "plain" in first:
            sides.append(
                "without secure aggregation it reads each firm's default rate from round 1 with"
                f" error {_rate(first['plain']['default_rate_error'])} and its size exactly"
            )
        if "secagg" in first:
            sides.append(
                f"with secure aggregation its error is {_rate(first['secagg']['default_rate_error'])}"
            )
        run = view["disaggregation"]["run"]
        out.append(
            "From what the federation actually sent it, "
            + "; ".join(sides)
            + f", against {_rate(first['baseline']['default_rate_error'])} for the best guess"
            " shared by every firm (the firms' heterogeneity). Solving its sums across rounds for"
            f" each firm (participation matrix of rank {run['rank']['mean']:.1f} for"
            f" {run['firms']['mean']:.0f} firms) reads firm sizes with relative error"
            f" {_rate(run['size_error'])}."
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
.warning{background:#fff4f4;padding:.6em;border-left:3px solid #c44e52}
"""


def _lead_section(results: dict[str, Any]) -> str:
    """The opening answer (`experiments.report.lead`), when its figures ran."""
    paragraphs = lead_paragraphs(results)
    if not paragraphs:
        return ""
    return (
        '<section class="summary"><h2>What a unified national score would reveal, to whom</h2>'
        + "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
        + "<p><small>Mean [95 % interval] over seeds; the sections below give every figure."
        "</small></p></section>"
    )


def render_html(results: dict[str, Any]) -> str:
    config = results["config"]
    name = html.escape(config["experiment"]["name"])
    seeds = ", ".join(map(str, results["seeds"]))
    sections = [
        f"<h1>fedscore: {name}</h1>",
        f"<p>Source: {html.escape(config['data']['source'])}; seeds {seeds}; results schema v{results['schema_version']}.</p>",
        reproducible_noise_notice(results),
        policy_notice(results),
        _lead_section(results),
        _data_section(results),
        '<section class="summary"><h2>What each regime reveals to whom</h2>'
        + "".join(f"<p>{html.escape(p)}</p>" for p in summary_paragraphs(results))
        + "</section>",
        "<h2>Side by side</h2>" + leakage_table(results),
        "<h2>Utility</h2>"
        + utility_table(results)
        + (paired_table(results) if results.get("paired") else "")
        + _figure("Utility per regime", utility_figure(results)),
    ]
    if results.get("tuning"):
        sections.append(
            "<h2>Tuning and convergence</h2>"
            + tuning_table(results)
            + _figure("Validation loss against passes", convergence_figure(results))
            + "<h3>Calibration before decisions</h3>"
            + calibration_table(results)
        )
    if "exposure" in results:
        sections.append(
            "<h2>Exposure</h2>"
            + exposure_table(results)
            + _figure("Exposure per party", exposure_figure(results))
            + release_table(results)
        )
    if "server_view" in results:
        sections.append("<h2>Server view</h2>" + server_view_table(results))
    if any("membership" in r for r in results["regimes"].values()):
        sections.append(
            "<h2>Membership inference</h2>"
            + membership_table(results)
            + _figure("Loss-threshold attack, log-scale ROC", membership_figure(results, "loss"))
            + _figure("LiRA (online), log-scale ROC", membership_figure(results, "lira"))
            + _figure(
                "LiRA per citizen (all of a citizen's rows IN or OUT together), log-scale ROC",
                membership_figure(results, "citizen_lira"),
            )
        )
    if any(r.get("attribute_inference") for r in results["regimes"].values()):
        sections.append(
            "<h2>Attribute inference</h2>"
            + _figure("Sensitive attributes from the released score", attribute_figure(results))
            + attribute_table(results)
        )
    if results.get("inference"):
        sections.append(
            "<h2>Inference by party</h2>"
            + party_table(results)
            + knowledge_table(results)
            + cross_context_table(results)
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
        + tier_change_table(results)
        + gains_table(results)
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
