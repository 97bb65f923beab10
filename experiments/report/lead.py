"""The report's opening answer: what a unified national score would reveal, to whom, compared
with federated scores. Every sentence is built from results.json and carries its interval over
seeds, so a reader can check each claim against the tables below it.
"""

from __future__ import annotations

from typing import Any

FEDERATED = ("federated_secagg", "federated_plain", "federated_flower_secagg")
"""The federated regime a sentence compares with: the first of these that ran."""
TARGET = "political_expression"
"""The sensitive attribute the lead names first (the seed fear), when the world has it."""


def interval(summary: dict[str, Any] | None, digits: int = 3, signed: bool = False) -> str:
    """`0.928 [0.921, 0.935]`: the mean and its 95 % interval over seeds."""
    if not summary or summary.get("mean") is None:
        return "–"
    sign = "+" if signed else ""
    low, high = summary.get("ci95") or (None, None)
    text = f"{summary['mean']:{sign}.{digits}f}"
    if low is None or high is None:
        return text
    return f"{text} [{low:{sign}.{digits}f}, {high:{sign}.{digits}f}]"


def _target(figures: dict[str, Any]) -> str:
    return TARGET if TARGET in figures else next(iter(figures))


def _words(name: str) -> str:
    return name.replace("_", " ").replace("occupation=", "")


def _who_infers(results: dict[str, Any]) -> str | None:
    inference = results.get("inference") or {}
    operator = inference.get("central_operator")
    if not operator:
        return None
    target = _target(operator)
    figure = operator[target]
    firms = {p: f[target] for p, f in inference.items() if p.startswith("firm:") and target in f}
    best = max(firms, key=lambda p: firms[p]["auc"]["mean"] or 0.0, default=None)
    sentence = (
        f"The operator of the national database infers {_words(target)} with AUC "
        f"{interval(figure['auc'])}, against {interval(figure['auc_baseline'])} from the"
        f" quasi-identifiers alone; its top 1 % of suspects is "
        f"{interval(figure['watch_list_precision'], 2)} precise at "
        f"{interval(figure['prevalence'], 2)} prevalence."
    )
    if best is not None:
        sentence += (
            f" The best-placed single firm ({best.removeprefix('firm:')}) reaches "
            f"{interval(firms[best]['auc'])} over its own customers"
        )
        pair = inference.get("colluding_pair:max", {}).get(target)
        sentence += (f", two colluding firms {interval(pair['auc'])}" if pair else "") + "."
    if "coordinating_server" in inference:
        sentence += (
            " The coordinating server of the federation receives only sums of model updates"
            " and holds no row about any citizen: it can do no better than the prior (AUC 0.5)."
        )
    return sentence


def _what_the_score_reveals(results: dict[str, Any]) -> str | None:
    regimes = results["regimes"]
    unified = (regimes.get("unified") or {}).get("score_consumer") or {}
    kyc = unified.get("kyc")
    if not kyc:
        return None
    target = _target(kyc)
    federated = next((n for n in FEDERATED if n in regimes), None)
    sentence = (
        f"Whoever receives a unified score beside a citizen's age, sex and region infers "
        f"{_words(target)} with an advantage of {interval(kyc[target]['advantage'], signed=True)}"
        f" AUC over those three alone ({interval(kyc[target]['auc_baseline'])})"
    )
    other = ((regimes.get(federated) or {}).get("score_consumer") or {}).get("kyc", {})
    if federated and target in other:
        sentence += f"; from a federated score {interval(other[target]['advantage'], signed=True)}"
    sentence += "."
    contexts = {n: r.get("cross_context") or {} for n, r in regimes.items()}
    if contexts.get("unified"):
        firm = max(contexts["unified"], key=lambda f: contexts["unified"][f]["advantage"]["mean"])
        sentence += (
            f" The same score tells which firms a citizen uses: customership of {firm} with an"
            f" advantage of {interval(contexts['unified'][firm]['advantage'], signed=True)}"
        )
        if federated and firm in contexts.get(federated, {}):
            advantage = contexts[federated][firm]["advantage"]
            sentence += f" (federated score {interval(advantage, signed=True)})"
        sentence += "."
    return sentence


def _membership_and_privacy(results: dict[str, Any]) -> str | None:
    regimes = results["regimes"]
    parts = []
    for name in ("unified", *FEDERATED):
        citizen = ((regimes.get(name) or {}).get("membership") or {}).get("citizen_lira")
        if citizen:
            parts.append(f"{name} {interval(citizen['auc'])}")
    if not parts:
        return None
    sentence = (
        "Whether a citizen's records trained a score (membership inference, all of a citizen's"
        f" rows in or out together, LiRA AUC; 0.5 is chance): {'; '.join(parts)}."
    )
    private = [(n, r["privacy"]) for n, r in regimes.items() if r.get("privacy")]
    for name, privacy in private:
        if privacy.get("citizen_epsilon_median"):
            sentence += (
                f" Under {name}, each firm spends ε = {interval(privacy['epsilon'], 2)} on its"
                f" records, but a citizen who is a customer of several firms is protected at"
                f" ε = {interval(privacy['citizen_epsilon_median'], 2)} (median) and up to"
                f" {interval(privacy['citizen_epsilon_max'], 2)}."
            )
            break
    return sentence


def _what_it_costs(results: dict[str, Any]) -> str | None:
    paired = results.get("paired") or {}
    federated = next((n for n in FEDERATED if n in results["regimes"]), None)
    gain = paired.get(f"unified - {federated}")
    if not gain:
        return None
    sentence = (
        "What the national join buys: the unified score's AUC minus the federated score's is "
        f"{interval(gain['auc'], signed=True)} (paired over seeds)"
    )
    limit = paired.get(f"{federated} - federated_limit")
    if limit:
        sentence += (
            f"; the federated score minus one central model on the same rows and features,"
            f" {interval(limit['auc'], signed=True)}"
        )
    local = paired.get(f"{federated} - local_only")
    if local:
        sentence += f"; minus each firm's own score, {interval(local['auc'], signed=True)}"
    return sentence + "."


def lead_paragraphs(results: dict[str, Any]) -> list[str]:
    """The answer, sentence by sentence; a sentence whose figures did not run is left out."""
    sentences = [
        _who_infers(results),
        _what_the_score_reveals(results),
        _membership_and_privacy(results),
        _what_it_costs(results),
    ]
    return [s for s in sentences if s]
