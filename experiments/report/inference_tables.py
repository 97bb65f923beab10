"""The report's inference tables: what each party infers, what the released score adds at each
level of attacker knowledge, and which firms a score reveals a citizen uses."""

from __future__ import annotations

import html
from typing import Any

from experiments.report.reading import ordered_regimes, regime_label
from experiments.report.tables import _cell, _table

PARTY_LABELS = {
    "central_operator": "Central operator (national database)",
    "colluding_pair:max": "Two colluding firms (best pair)",
    "colluding_pair:median": "Two colluding firms (median pair)",
    "coordinating_server": "Federated coordinating server",
}
LEVEL_LABELS = {
    "kyc": "KYC (age, sex, region)",
    "quasi_identifiers": "all quasi-identifiers",
    "quasi_identifiers_and_memberships": "QIs + firm memberships",
}


def _mean(summary: dict[str, Any] | None) -> float | None:
    return None if summary is None else summary.get("mean")


def _percent(summary: dict[str, Any] | None) -> str:
    value = _mean(summary)
    return "–" if value is None else f"{100 * value:.0f} %"


def _headline_targets(figures: dict[str, Any]) -> list[str]:
    """Sensitive attributes and the scrutinized professions together (one each would crowd
    the table; they are in results.json)."""
    return [t for t in figures if not t.startswith("occupation=")]


def _inferred(figure: dict[str, Any]) -> str:
    baseline = _mean(figure["auc_baseline"])
    base = "–" if baseline is None else f"{baseline:.3f}"
    return (
        f"{_cell(figure['auc'])}<br><small>QIs alone {base}; top 1 %: "
        f"{_percent(figure['watch_list_precision'])} (prevalence "
        f"{_percent(figure['prevalence'])})</small>"
    )


def _party_order(parties: list[str]) -> list[str]:
    fixed = ["central_operator", "colluding_pair:max", "colluding_pair:median"]
    firms = sorted(p for p in parties if p.startswith("firm:"))
    return [p for p in fixed if p in parties] + firms + ["coordinating_server"]


def party_table(results: dict[str, Any]) -> str:
    """Per party (and per regime's score consumer who knows all QIs): AUC of inferring each
    sensitive attribute, beside the QIs alone and the precision of its top-1 % list."""
    inference = results.get("inference") or {}
    if not inference:
        return ""
    targets = _headline_targets(inference["central_operator"])
    rows = [
        [
            html.escape(PARTY_LABELS.get(party, party.replace("firm:", "Firm alone: "))),
            *(_inferred(inference[party][t]) for t in targets),
        ]
        for party in _party_order(list(inference))
    ]
    for name in ordered_regimes(results):
        consumer = (results["regimes"][name].get("score_consumer") or {}).get("quasi_identifiers")
        if consumer:
            label = f"Score consumer: {regime_label(name)} + QIs"
            rows.append([html.escape(label), *(_inferred(consumer[t]) for t in targets)])
    return _table(
        ["party", *targets],
        rows,
        "What each party infers about each citizen: cross-validated AUC from what it holds"
        " (plus the quasi-identifiers), the QIs alone beside it, and the share of its top-1 %"
        " 'watch list' who are in the group. Firms over their own customers; the server holds"
        " no row about any citizen, so it knows only the prior (AUC 0.5).",
    )


def knowledge_table(results: dict[str, Any]) -> str:
    """Per regime and knowledge level: what the released score adds, beside the baseline AUC."""
    rows: list[list[str]] = []
    targets: list[str] = []
    for name in ordered_regimes(results):
        levels = results["regimes"][name].get("score_consumer") or {}
        for level, figures in levels.items():
            targets = targets or _headline_targets(figures)
            rows.append(
                [
                    html.escape(regime_label(name)),
                    html.escape(LEVEL_LABELS.get(level, level)),
                    *(
                        f"{_cell(figures[t]['advantage'])}<br><small>baseline "
                        f"{_cell(figures[t]['auc_baseline'])}</small>"
                        for t in targets
                    ),
                ]
            )
    if not rows:
        return ""
    return _table(
        ["regime", "attacker knows", *targets],
        rows,
        "Attribute inference by attacker knowledge: AUC advantage of the released score plus"
        " that knowledge over the knowledge alone (its AUC below). The weaker the attacker,"
        " the more the score can add.",
    )


def cross_context_table(results: dict[str, Any]) -> str:
    """Per regime: advantage of the released score in inferring each firm's customership."""
    rows: list[list[str]] = []
    firms: list[str] = []
    for name in ordered_regimes(results):
        figures = results["regimes"][name].get("cross_context") or {}
        if not figures:
            continue
        firms = firms or list(figures)
        rows.append(
            [
                html.escape(regime_label(name)),
                *(
                    f"{_cell(figures[f]['advantage'])}<br><small>QIs alone "
                    f"{_cell(figures[f]['auc_baseline'])}</small>"
                    for f in firms
                ),
            ]
        )
    if not rows:
        return ""
    return _table(
        ["regime", *firms],
        rows,
        "Cross-context inference: AUC advantage of the released score plus the QIs, over the"
        " QIs alone, in inferring whether a citizen is a customer of each firm (the AUC of the"
        " QIs alone below).",
    )


def inference_sentence(results: dict[str, Any]) -> str | None:
    """One plain sentence on who infers a sensitive attribute how well (political expression
    where the world has it), built from the figures; None without inference figures."""
    inference = results.get("inference") or {}
    central = inference.get("central_operator")
    if not central:
        return None
    target = "political_expression" if "political_expression" in central else next(iter(central))

    def auc(figure: dict[str, Any]) -> float:
        return float(_mean(figure["auc"]) or float("nan"))

    figure = central[target]
    firms = {p: f[target] for p, f in inference.items() if p.startswith("firm:")}
    best_firm = max(firms, key=lambda p: auc(firms[p]), default=None)
    words = target.replace("_", " ")
    sentence = (
        f"From the joined national table its operator infers {words} with AUC "
        f"{auc(figure):.3f} (quasi-identifiers alone {_mean(figure['auc_baseline']) or 0:.3f}); "
        f"its top-1 % list is {_percent(figure['watch_list_precision'])} precise at "
        f"{_percent(figure['prevalence'])} prevalence."
    )
    if best_firm is not None:
        sentence += (
            f" The best single firm ({best_firm.removeprefix('firm:')}) reaches "
            f"{auc(firms[best_firm]):.3f} over its own customers"
        )
        pair = inference.get("colluding_pair:max")
        sentence += (
            f", the best two colluding firms {auc(pair[target]):.3f}" if pair else ""
        ) + "."
    sentence += (
        " The federated coordinating server holds no row about any citizen: it knows only the"
        " prior (AUC 0.5)."
    )
    unified = (results["regimes"].get("unified", {}).get("score_consumer") or {}).get("kyc")
    if unified and target in unified:
        advantage = _mean(unified[target]["advantage"])
        if advantage is not None:
            sentence += (
                f" A consumer of the unified score who knows only age, sex and region gains"
                f" {advantage:+.3f} AUC on it."
            )
    return sentence
