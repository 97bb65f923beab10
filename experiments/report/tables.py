"""The report's tables, one per section, drawn from results.json as HTML; and the headline
leakage rows that the terminal summary shares.
"""

from __future__ import annotations

import html
from typing import Any

from experiments.report.reading import mean_and_error, ordered_regimes, regime_label


def _cell(summary: dict[str, Any] | None, digits: int = 3) -> str:
    if summary is None or summary.get("mean") is None:
        return "–"
    mean, half = mean_and_error(summary)
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
        first = (view or {}).get("first_round", {})
        side = {"federated_plain": "plain", "federated_secagg": "secagg"}.get(name)
        if side is None or side not in first:
            return "–"
        return number(first[side]["default_rate_error"]["mean"], 4)

    rows = []
    for name in ordered_regimes(results):
        regime = results["regimes"][name]
        membership = regime.get("membership", {})
        lira = membership.get("lira") or membership.get("loss") or {}
        citizen = membership.get("citizen_lira") or membership.get("citizen_loss") or {}
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
        cross_context = [
            f["advantage"]["mean"]
            for f in (regime.get("cross_context") or {}).values()
            if f["advantage"]["mean"] is not None
        ]
        rows.append(
            (
                name,
                [
                    number(regime["utility"]["auc"]["mean"]),
                    number(cells, 0),
                    server_error(name),
                    number(lira.get("auc", {}).get("mean")),
                    number(lira.get("tpr_at_1_percent_fpr", {}).get("mean"), 4),
                    number(citizen.get("auc", {}).get("mean")),
                    number(max(advantages, default=None), 4),
                    number(max(gaps, default=None)),
                    number(regime["decisions"].get("tier_changed_vs_unified", {}).get("mean")),
                    epsilon_cell(regime.get("privacy")),
                    number(max(cross_context, default=None)),
                ],
            )
        )
    return rows


def epsilon_cell(privacy: dict[str, Any] | None) -> str:
    """`firm 1.00 / citizen median 1.90, max 2.80`: the worst firm's per-record ε, then ε per
    citizen composed over their firms (`–` without DP)."""
    if not privacy:
        return "–"
    firm = privacy.get("epsilon", {}).get("mean")
    median = (privacy.get("citizen_epsilon_median") or {}).get("mean")
    largest = (privacy.get("citizen_epsilon_max") or {}).get("mean")
    if firm is None:
        return "–"
    if median is None or largest is None:
        return f"{firm:.2f}"
    return f"firm {firm:.2f} / citizen median {median:.2f}, max {largest:.2f}"


LEAKAGE_HEADER = [
    "AUC",
    "most raw cells one party holds",
    "server's error on a firm's default rate",
    "membership AUC (LiRA, per row)",
    "TPR at 1 % FPR",
    "membership AUC per citizen (LiRA)",
    "max attribute advantage",
    "max parity gap",
    "tier differs from unified",
    "ε spent (per record, worst firm / per citizen over their firms)",
    "max cross-context advantage",
]


LEAKAGE_SHORT = [
    "AUC",
    "raw cells",
    "srv err",
    "MIA AUC",
    "TPR@1%",
    "cit. MIA",
    "attr adv",
    "gap",
    "tier Δ",
    "ε",
    "x-ctx",
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
            _cell(results["regimes"][n].get("within_firm_auc")),
        ]
        for n in ordered_regimes(results)
    ]
    for name, reference in (results.get("references") or {}).items():
        rows.append(
            [
                f"<i>{html.escape(name)} (reference)</i>",
                *(_cell(reference["utility"][m]) for m in metrics),
                _cell(reference.get("within_firm_auc")),
            ]
        )
    return _table(
        ["regime", "AUC", "KS", "Brier", "ECE", "within-firm AUC"],
        rows,
        "Utility (mean ± 95 % half-interval over seeds); within-firm AUC: each firm's AUC over"
        " its own held-out customers, weighted by their number (the data section gives each"
        " firm's n). federated_limit (reference, not released): one central model on every"
        " firm's rows with the common columns, the model FedAvg approximates",
    )


def exposure_table(results: dict[str, Any]) -> str:
    """What each party holds. No uniqueness column: every party that holds a table holds
    national ids, so it has identified its citizens already (`release_table` measures what is
    released)."""
    # On a table each row is one person at one firm: no links across domains to show.
    links = "data" not in results
    rows = [
        [
            html.escape(party),
            _cell(e["cells"], 0),
            _cell(e["sensitive_proxy_cells"], 0),
            *([_cell(e["linked_citizens"], 0)] if links else []),
        ]
        for party, e in results["exposure"].items()
    ]
    return _table(
        [
            "party",
            "raw cells",
            "sensitive-proxy cells",
            *(["citizens linked across domains"] if links else []),
        ],
        rows,
        "Exposure: what each party holds in raw form (all of them by national id)",
    )


def release_table(results: dict[str, Any]) -> str:
    """How identifiable each regime's release (scores beside quasi-identifiers) is."""
    rows = []
    for name in ordered_regimes(results):
        release = results["regimes"][name].get("release")
        if release is None:
            continue
        rows.append(
            [
                html.escape(regime_label(name)),
                _cell(release["unique_share"]),
                _cell(release["unique_share_qi_only"]),
                _cell(release["cross_release_linkage"]),
                _cell(release["cross_release_linkage_qi_only"]),
                _cell(release["register_linkage"]),
            ]
        )
    return _table(
        [
            "regime",
            "unique on QIs + score band",
            "unique on QIs alone",
            "contexts linked by QIs + score band",
            "by QIs alone",
            "linked to identity via the register",
        ],
        rows,
        "What is released: one record per held-out (firm, citizen) pair, quasi-identifiers"
        " beside the score in 10-point bands, without id (share of records; linkage: share of"
        " a citizen's pairs of firms whose records match each other uniquely)",
    )


def server_view_table(results: dict[str, Any]) -> str:
    view = results["server_view"]
    first = view["first_round"]
    labels = {
        "default_rate_error": "a firm's default rate (from its training Brier score)",
        "size_error": "a firm's training rows (relative error)",
    }
    sides = [s for s in ("plain", "secagg") if s in first]
    headers = {
        "plain": "without secure aggregation (each firm's vector)",
        "secagg": "with it (the sum only)",
    }
    rows = [
        [
            html.escape(text),
            *(_cell(first[s][m], 4) for s in sides),
            _cell(first["baseline"][m], 4),
        ]
        for m, text in labels.items()
    ]
    tables = _table(
        [
            "what the server infers from round 1",
            *(headers[s] for s in sides),
            "heterogeneity baseline (best guess shared by all firms)",
        ],
        rows,
        "Server view from the run itself: inference error about one firm, mean over firms"
        " (0 = learnt exactly)",
    )
    run = view["disaggregation"]["run"]
    tables += _table(
        [
            "rank",
            "firms",
            "size error (relative)",
            "default-rate error",
            "rounds with a sum",
            "firms per round",
        ],
        [
            [
                _cell(run["rank"], 1),
                _cell(run["firms"], 0),
                _cell(run["size_error"], 4),
                _cell(run["default_rate_error"], 4),
                _cell(run["completed_round_share"], 2),
                _cell(run["mean_participants"], 1),
            ]
        ],
        "Disaggregation on the run's own sums and participants ([federation] fraction < 1"
        " changes who joins each round; with every firm in every round the rank is 1)",
    )
    policies = view["disaggregation"].get("policies")
    if policies is None:
        return tables
    texts = {
        "any": "every online firm joins (participation changes)",
        "fixed": "defence: fixed participation (all firms or no round)",
        "groups": "defence: minimum participant set (firms tied in pairs)",
    }
    rows = [
        [
            html.escape(text),
            _cell(policies[p]["rank"], 1),
            _cell(policies[p]["relative_error"], 3),
            _cell(policies[p]["completed_round_share"], 2),
            _cell(policies[p]["mean_participants"], 1),
        ]
        for p, text in texts.items()
    ]
    return tables + _table(
        ["participation", "rank", "recovery error", "rounds completed", "firms per round"],
        rows,
        "Disaggregation of the firms' real round-1 vectors under simulated participation"
        " (Lam et al. 2021): what each defence costs",
    )


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


NOISE_SOURCES = {
    "os-generator": "each firm's OS generator",
    "run-seed": "run seed: the server could regenerate it",
}
"""How the report names results.json's `privacy.noise`."""


def reproducible_noise_regimes(results: dict[str, Any]) -> list[str]:
    """The DP regimes whose noise came from public seeds (`[federation] reproducible = true`)."""
    return [
        n
        for n in ordered_regimes(results)
        if results["regimes"][n].get("privacy", {}).get("noise") == "run-seed"
    ]


def privacy_table(results: dict[str, Any]) -> str:
    rows = [
        [
            html.escape(regime_label(n)),
            _cell(results["regimes"][n]["privacy"]["target_epsilon"], 2),
            _cell(results["regimes"][n]["privacy"]["epsilon"], 2),
            _cell(results["regimes"][n]["privacy"].get("citizen_epsilon_median"), 2),
            _cell(results["regimes"][n]["privacy"].get("citizen_epsilon_max"), 2),
            f"{results['regimes'][n]['privacy']['delta']['mean']:.0e}",
            html.escape(NOISE_SOURCES[results["regimes"][n]["privacy"]["noise"]]),
            _cell(results["regimes"][n]["utility"]["auc"]),
        ]
        for n in ordered_regimes(results)
        if "privacy" in results["regimes"][n]
    ]
    return _table(
        [
            "regime",
            "target ε",
            "ε spent (worst firm)",
            "ε per citizen (median)",
            "ε per citizen (max)",
            "δ",
            "DP noise from",
            "AUC",
        ],
        rows,
        "Privacy budget of the DP regimes (Opacus RDP accountant, over all rounds); a citizen's "
        "ε composes the RDP of every firm they are a customer of",
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


def tuning_table(results: dict[str, Any]) -> str:
    """Per regime and seed: the grid's size, the chosen point and passes, the budget spent."""
    tuning = results.get("tuning") or {}
    rows = []
    for name in [*ordered_regimes(results), *(results.get("references") or {})]:
        if name not in tuning:
            continue
        for seed, record in zip(results["seeds"], tuning[name]["per_seed"], strict=False):
            firms = [("", record)] if "grid" in record else list(record.items())
            for firm, r in firms:
                note = " (non-private tuning)" if r.get("tuned_without_dp") else ""
                rows.append(
                    [
                        html.escape(regime_label(name) + note),
                        str(seed) + (f" · {html.escape(firm)}" if firm else ""),
                        f"{r['learning_rate']:g}",
                        f"{r['weight_decay']:g}",
                        f"{r['passes']} {r['unit']}",
                        f"{r['passes_run']} of {r['budget']}",
                        str(r["models_trained"]),
                        str(r["validation_rows"]),
                    ]
                )
    return _table(
        [
            "regime",
            "seed",
            "learning rate",
            "weight decay",
            "chosen",
            "passes run (budget)",
            "grid points",
            "validation rows",
        ],
        rows,
        "Each regime tuned on the same validation citizens with the same grid and budget"
        " (federated: rounds of `local_epochs` epochs each; the budget counts epochs over the"
        " data for every regime). Early stopping ends a grid once its best validation loss has"
        " not improved for `patience` passes.",
    )


def calibration_table(results: dict[str, Any]) -> str:
    """ECE and mean PD on the held-out pairs before and after calibration, per regime."""
    rows = []
    for name in ordered_regimes(results):
        calibration = results["regimes"][name].get("calibration")
        if not calibration:
            continue
        rows.append(
            [html.escape(regime_label(name))]
            + [
                _cell(calibration[key])
                for key in ("ece_before", "ece_after", "mean_pd_before", "mean_pd_after", "slope")
            ]
        )
    return _table(
        ["regime", "ECE before", "ECE after", "mean PD before", "mean PD after", "Platt slope"],
        rows,
        "Each regime's PD is calibrated (Platt scaling) on the validation pairs before it is"
        " mapped to points and tiers; the figures here are on the held-out pairs. The map is"
        " monotone, so AUC and KS do not change.",
    )


def paired_table(results: dict[str, Any]) -> str:
    """a − b per seed, summarised: the comparisons the headline makes."""
    rows = []
    for pair, difference in (results.get("paired") or {}).items():
        cells = []
        for metric in ("auc", "ks", "brier", "ece"):
            summary = difference[metric]
            low, high = summary["ci95"]
            cells.append(
                "–"
                if summary["mean"] is None
                else f"{summary['mean']:+.3f} <small>[{low:+.3f}, {high:+.3f}]</small>"
            )
        rows.append([html.escape(pair.replace(" - ", " − ")), *cells])
    return _table(
        ["a − b", "ΔAUC", "ΔKS", "ΔBrier", "ΔECE"],
        rows,
        "Paired differences: computed within each seed (same world, same held-out citizens),"
        " then the mean and its 95 % interval over seeds, clipped to [−1, 1]. An interval"
        " that excludes 0 is a difference the seeds agree on.",
    )
