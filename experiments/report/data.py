"""The report's data section: the table a run came from, its split, each firm's size and
default rate, per-firm AUC with the number of held-out rows behind it, and every fallback.
"""

from __future__ import annotations

import html
from typing import Any

from experiments.report.reading import mean_and_error, ordered_regimes, regime_label

SMALL_HELDOUT = 20
SMALL_DEFAULTS = 5
"""Below these held-out rows or defaults, a firm's own AUC is too noisy to read (marked †)."""


def split_text(partition: dict[str, Any]) -> str:
    """The split in words, e.g. "one firm per value of 'region'"."""
    if partition.get("method") == "column":
        return f"one firm per value of {partition['column']!r}"
    if partition.get("method") == "dirichlet-covariate":
        return (
            f"a Dirichlet split over the levels of {partition['column']!r} into"
            f" {partition['n_firms']} firms (alpha = {partition['alpha']:g}; no label involved),"
            " drawn anew for each seed"
        )
    if "alpha" in partition:
        training = (
            " from the training rows' labels only (held-out rows join firms whatever their label)"
            if partition.get("from_training_rows")
            else " over every row's label, held-out rows included"
        )
        return (
            f"LABEL-SKEWED: a Dirichlet label-skew split into {partition['n_firms']} firms "
            f"(alpha = {partition['alpha']:g}), drawn anew for each seed{training}; firms differ"
            " in default rate by construction, so pooled figures reward firm identity"
            " (compare the within-firm AUC)"
        )
    return str(partition)


def _provenance(data: dict[str, Any]) -> list[str]:
    """Plain sentences: the file, its rows, the label, the roles and what was done to it."""
    lines = []
    name = data.get("file_name") or data.get("source", "?")
    digest = data.get("sha256")
    lines.append(
        f"Source: <b>{html.escape(str(name))}</b>"
        + (f" (SHA-256 <code>{digest}</code>)" if digest else "")
        + f", {data['rows']:,} rows used"
        + (
            f" of {data['rows_read']:,} read"
            if data.get("rows_read", data["rows"]) != data["rows"]
            else ""
        )
        + "."
    )
    label = data.get("label")
    if label:
        meaning = (
            f"{label['column']} = {label['positive']!r}"
            if label.get("positive") is not None
            else f"{label['column']} = 1"
        )
        lines.append(f"Default (label 1) means {html.escape(meaning)}.")
    if "partition" in data:
        lines.append(f"Firms: {html.escape(split_text(data['partition']))}.")
    roles = [
        ("features", "Features"),
        ("excluded", "Excluded"),
        ("sensitive", "Sensitive"),
        ("quasi_identifiers", "Quasi-identifiers"),
    ]
    for key, title in roles:
        if data.get(key) is not None:
            shown = ", ".join(map(str, data[key])) or "none"
            lines.append(f"{title}: {html.escape(shown)}.")
    impute = data.get("impute")
    if impute:
        counts = ", ".join(f"{c} {n}" for c, n in impute["missing_per_column"].items())
        lines.append(
            f"Missing values filled ({html.escape(impute['method'])}): {html.escape(counts)}."
        )
    if data.get("rows_dropped"):
        lines.append(f"Rows dropped for missing values: {data['rows_dropped']:,}.")
    for column, edges in data.get("bins", {}).items():
        lines.append(f"{html.escape(column)} grouped at {', '.join(f'{e:g}' for e in edges)}.")
    return lines


def _firm_rows(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    firms: dict[str, Any] = results["data"]["firms"]
    names = ordered_regimes(results)
    header = ["firm", "rows", "default rate", "held-out rows (defaults)"]
    header += [f"AUC: {regime_label(n)}" for n in names]
    rows = []
    for firm, f in firms.items():
        heldout, defaults = f["heldout"]["mean"] or 0.0, f["heldout_defaults"]["mean"] or 0.0
        small = heldout < SMALL_HELDOUT or defaults < SMALL_DEFAULTS
        cells = [
            html.escape(firm),
            f"{f['rows']['mean']:,.0f}",
            f"{f['default_rate']['mean']:.3f}",
            f"{heldout:,.0f} ({defaults:,.0f})" + (" †" if small else ""),
        ]
        for n in names:
            auc = results["regimes"][n].get("per_firm", {}).get(firm, {}).get("auc")
            if auc is None or auc["mean"] is None:
                cells.append("–")
            else:
                mean, half = mean_and_error(auc)
                cells.append(f"{mean:.3f} <small>± {half:.3f}</small>")
        rows.append(cells)
    return header, rows


def fallback_list(results: dict[str, Any]) -> str:
    """Every firm scored without a model, or a sentence that there was none."""
    found = results.get("fallbacks", [])
    if not found:
        return "<p>Fallbacks: none; every firm's score came from a trained model.</p>"
    items = "".join(
        f"<li>{html.escape(regime_label(f['regime']))}, seed {f['seed']}: firm "
        f"{html.escape(f['firm'])} scored by its base rate ({html.escape(f['reason'])})</li>"
        for f in found
    )
    return (
        f"<p>Fallbacks ({len(found)}): figures of these firms carry no model.</p><ul>{items}</ul>"
    )


def data_section(results: dict[str, Any]) -> str:
    """The "Data" section's HTML; empty for a synthetic world (its WORLD.md describes it)."""
    if "data" not in results:
        return fallback_list(results) if results.get("fallbacks") else ""
    header, rows = _firm_rows(results)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    caption = (
        "Firms: rows, default rate, held-out rows and per-firm AUC on them (mean ± 95 % "
        f"half-interval over seeds; † fewer than {SMALL_HELDOUT} held-out rows or "
        f"{SMALL_DEFAULTS} defaults: read that firm's AUC as noise)"
    )
    table = (
        f"<table><caption>{html.escape(caption)}</caption><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )
    text = "".join(f"<p>{line}</p>" for line in _provenance(results["data"]))
    return text + table + fallback_list(results)
