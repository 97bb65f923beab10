"""The generated part of `experiments/world/WORLD.md`: the causal model's tables, rendered from
the constants of `experiments/world/causal_model.py`.

After changing a constant, run `python -m experiments.world.world_doc` to rewrite the tables; a
test fails while WORLD.md and the constants disagree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from experiments.world.causal_model import (
    AGE_BETA,
    AGE_CENTRE,
    AGE_MIN,
    AGE_SCALE,
    AGE_SPAN,
    COMMON_SCHEMA,
    COVERAGE_LOGIT,
    DEFAULT_COEFFICIENTS,
    DOMAIN_COLUMNS,
    EDUCATION,
    EDUCATION_CUTS,
    EDUCATION_LATENT,
    FIRM_LENS,
    FIRMS,
    GOVERNMENT_RECORDS,
    LATENT_EQUATIONS,
    OCCUPATION_INCOME,
    OCCUPATION_LOGIT,
    OCCUPATIONS,
    P_MALE,
    REGION_INCOME,
    REGION_P_MINORITY,
    REGION_SHARE,
    REGION_URBAN_LOGIT,
    REGIONS,
    SCRUTINIZED,
    SENSITIVE_LOGIT,
    SINGLE_LOGIT,
    TARGET_BASE_RATE,
    URBAN_LOGIT,
    Measure,
)
from experiments.world.tables import LABEL

DOC_BEGIN = "<!-- BEGIN GENERATED: experiments.world.world_doc.causal_model_markdown -->"
DOC_END = "<!-- END GENERATED -->"
WORLD_DOC = Path(__file__).with_name("WORLD.md")


def _terms(terms: dict[str, float] | tuple[tuple[str, float], ...]) -> str:
    items = terms.items() if isinstance(terms, dict) else terms
    return " ".join(f"{c:+g}·{d}" for d, c in items if d not in {"intercept", "noise"})


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def _measure_rows(measures: tuple[Measure, ...]) -> list[tuple[Any, ...]]:
    return [
        (f"`{m.name}`", m.role, m.proxies or "", m.kind, m.link, f"{m.intercept:g}",
         _terms(m.loadings), f"{m.noise:g}", f"[{m.low:g}, {m.high:g}]")
        for m in measures
    ]  # fmt: skip


def causal_model_markdown() -> str:
    """The causal model's tables, rendered from this module's constants for WORLD.md."""
    measure_header = ("column", "role", "proxy of", "kind", "link", "intercept", "loadings",
                      "noise", "range")  # fmt: skip
    out = ["### Regions", ""]
    out += _table(
        ("region", "share", "P(ethnic_minority)", "urban logit", "income_capacity effect"),
        [(r, s, p, u, i) for r, s, p, u, i in zip(REGIONS, REGION_SHARE, REGION_P_MINORITY,
                                                   REGION_URBAN_LOGIT, REGION_INCOME, strict=True)],
    )  # fmt: skip
    out += ["", "### Other quasi-identifiers", ""]
    out += _table(
        ("variable", "model"),
        [
            ("age", f"{AGE_MIN} + floor({AGE_SPAN} * Beta{AGE_BETA}); "
                    f"age_z = (age - {AGE_CENTRE:g}) / {AGE_SCALE:g}"),
            ("sex", f"male with probability {P_MALE}"),
            ("hukou", f"urban ~ Bernoulli(sigmoid(region urban logit {_terms(URBAN_LOGIT)}))"),
            ("education", f"levels {', '.join(EDUCATION)}: count of cuts {EDUCATION_CUTS} below "
                          f"{_terms(EDUCATION_LATENT)} + N(0, 1); education_z = level - 2"),
            ("marital_status", f"single ~ Bernoulli(sigmoid({SINGLE_LOGIT['intercept']:g} "
                               f"{_terms(SINGLE_LOGIT)})); married = 1 - single"),
        ],
    )  # fmt: skip
    out += ["", "### Occupation (softmax over occupations)", ""]
    out += _table(
        ("occupation", "intercept", "education_z", "urban", "age_z", "income_capacity effect",
         "scrutinized"),
        [(o, *OCCUPATION_LOGIT[o], OCCUPATION_INCOME[o], "yes" if o in SCRUTINIZED else "")
         for o in OCCUPATIONS],
    )  # fmt: skip
    out += ["", "### Sensitive attributes (logistic)", ""]
    out += _table(
        ("attribute", "intercept", "terms"),
        [("ethnic_minority", "", "Bernoulli(P(ethnic_minority) of the region)")]
        + [(a, f"{t['intercept']:g}", _terms(t)) for a, t in SENSITIVE_LOGIT.items()],
    )
    out += ["", "### Latent traits (linear + Gaussian noise)", ""]
    out += _table(
        ("latent", "terms", "noise sd"),
        [(name, _terms(t) + (" + region and occupation effects" if name == "income_capacity"
                             else ""), f"{t['noise']:g}") for name, t in LATENT_EQUATIONS.items()],
    )  # fmt: skip
    out += ["", "### Default", ""]
    out += [
        f"P({LABEL}) = sigmoid(intercept {_terms(DEFAULT_COEFFICIENTS)}); the intercept is "
        f"solved by bisection so the population mean PD is {TARGET_BASE_RATE:g} (the realised "
        "value is `causal_model.default.intercept` in world.json)."
    ]
    drivers = sorted({d for t in COVERAGE_LOGIT.values() for d in t} - {"intercept"})
    out += ["", "### Firm coverage (logistic, one Bernoulli draw per citizen and firm)", ""]
    out += _table(
        ("firm", "intercept", *drivers),
        [(f, COVERAGE_LOGIT[f]["intercept"], *(COVERAGE_LOGIT[f].get(d, "") for d in drivers))
         for f in FIRMS],
    )  # fmt: skip
    out += ["", "### Firm lens on the common schema", ""]
    out += _table(
        ("firm", "signal", "bias", "noise"),
        [(f, FIRM_LENS[f].signal, FIRM_LENS[f].bias, FIRM_LENS[f].noise) for f in FIRMS],
    )
    out += ["", "### Common credit schema (at every firm, through the firm's lens)", ""]
    out += _table(measure_header, _measure_rows(COMMON_SCHEMA))
    for firm in FIRMS:
        out += ["", f"### Domain columns: {firm}", ""]
        out += _table(measure_header, _measure_rows(DOMAIN_COLUMNS[firm]))
    out += ["", "### Government records", ""]
    out += _table(measure_header, _measure_rows(GOVERNMENT_RECORDS))
    return "\n".join(out) + "\n"


def sync_world_doc(path: Path = WORLD_DOC) -> None:
    """Rewrite the generated part of WORLD.md from the constants (run after changing them)."""
    head, rest = path.read_text(encoding="utf-8").split(DOC_BEGIN, 1)
    _, tail = rest.split(DOC_END, 1)
    path.write_text(
        f"{head}{DOC_BEGIN}\n{causal_model_markdown()}{DOC_END}{tail}", encoding="utf-8"
    )


if __name__ == "__main__":
    sync_world_doc()
