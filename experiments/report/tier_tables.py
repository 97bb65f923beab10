"""The report's tier tables: tier changes beside their floors, and who gains or loses."""

from __future__ import annotations

import html
from typing import Any

from experiments.report.reading import ordered_regimes, regime_label
from experiments.report.tables import _cell, _table


def tier_change_table(results: dict[str, Any]) -> str:
    """Per regime: tier shares, and tier changes against unified, the true PD's tier and the
    regime's own retraining noise floor."""
    names = ordered_regimes(results)
    tiers = list(results["regimes"][names[0]]["decisions"]["tier_share"])
    rows = []
    for name in names:
        d = results["regimes"][name]["decisions"]
        rows.append(
            [
                html.escape(regime_label(name)),
                *(_cell(d["tier_share"][t]) for t in tiers),
                _cell(d.get("tier_changed_vs_unified")),
                _cell(d.get("tier_changed_vs_truth")),
                _cell(d.get("tier_changed_vs_retrained")),
            ]
        )
    return _table(
        [
            "regime",
            *(f"share: {t}" for t in tiers),
            "tier ≠ unified",
            "tier ≠ true PD's",
            "tier ≠ retrained (noise floor)",
        ],
        rows,
        "Tiers from each regime's calibrated PD. A change against unified means something only"
        " beside the regime's own floor (the same regime retrained with another seed) and its"
        " distance from the true PD's tier (synthetic worlds); – where there is none.",
    )


def gains_table(results: dict[str, Any]) -> str:
    """Per group and regime: the shares gaining and losing a privilege against unified."""
    names = [
        n
        for n in ordered_regimes(results)
        if results["regimes"][n]["decisions"].get("privilege_gained_vs_unified")
    ]
    if not names:
        return ""
    groups = list(results["regimes"][names[0]]["decisions"]["privilege_gained_vs_unified"])
    rows = []
    for group in groups:
        row = [html.escape(group)]
        for name in names:
            d = results["regimes"][name]["decisions"]
            gained = d["privilege_gained_vs_unified"][group]
            lost = d["privilege_lost_vs_unified"][group]
            row.append(f"+{_cell(gained)} / −{_cell(lost)}")
        rows.append(row)
    return _table(
        ["group", *(regime_label(n) for n in names)],
        rows,
        "Against the unified score, per group: share of the group's held-out pairs that gain a"
        " privilege (+) and that lose one (−) under each regime.",
    )
