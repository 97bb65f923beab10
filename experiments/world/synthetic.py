"""The seeded synthetic population of citizens and the eight pilot firms that observe it.

Every number of the causal model is a constant of `experiments/world/causal_model.py`; this module
only draws from it.

Each component (a population variable, a firm's coverage, one column at one firm) draws from its
own generator derived from the seed and the component's name, so adding a column changes nothing
else, and the same (n_citizens, seed) always gives the same world.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

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
    LATENTS,
    NEUTRAL_LENS,
    OCCUPATION_INCOME,
    OCCUPATION_LOGIT,
    OCCUPATIONS,
    P_MALE,
    REGION_INCOME,
    REGION_P_MINORITY,
    REGION_SHARE,
    REGION_URBAN_LOGIT,
    REGIONS,
    SENSITIVE,
    SENSITIVE_LOGIT,
    SINGLE_LOGIT,
    TARGET_BASE_RATE,
    URBAN_LOGIT,
    FirmLens,
    Measure,
)
from experiments.world.policy import PolicySettings, policy_group
from experiments.world.tables import ID, LABEL, ColumnInfo, World

GENERATOR_VERSION = "1.0.0"

FloatArray = npt.NDArray[np.float64]


def _rng(seed: int, *component: str) -> np.random.Generator:
    """A generator that depends on the seed and the component's name only (not on call order)."""
    key = tuple(zlib.crc32(part.encode()) for part in component)
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _sigmoid(x: FloatArray) -> FloatArray:
    result: FloatArray = 0.5 * (1.0 + np.tanh(0.5 * x))
    return result


def _linear(
    terms: dict[str, float], drivers: dict[str, FloatArray], rows: npt.NDArray[np.bool_] | None
) -> FloatArray:
    """intercept + sum(coef * driver), on all citizens or on the selected rows."""
    size = len(next(iter(drivers.values()))) if rows is None else int(rows.sum())
    eta = np.full(size, terms.get("intercept", 0.0))
    for name, coef in terms.items():
        if name in {"intercept", "noise"}:
            continue
        values = drivers[name] if rows is None else drivers[name][rows]
        eta += coef * values
    return eta


def _measure(
    measure: Measure,
    drivers: dict[str, FloatArray],
    rows: npt.NDArray[np.bool_] | None,
    rng: np.random.Generator,
    lens: FirmLens | None = None,
) -> npt.NDArray[Any]:
    """Draw one column for the selected citizens through a firm's lens, clipped to its range."""
    lens = lens or NEUTRAL_LENS
    signal = _linear(dict(measure.loadings), drivers, rows)
    eta = measure.intercept + lens.bias + lens.signal * signal
    eta += (lens.noise * measure.noise) * rng.standard_normal(len(eta))
    if measure.link == "logistic":
        values: npt.NDArray[Any] = _sigmoid(eta)
    elif measure.link == "exp":
        values = np.exp(eta)
    elif measure.link == "poisson":
        values = rng.poisson(np.exp(np.minimum(eta, np.log(measure.high) + 1.0)))
    elif measure.link == "bernoulli":
        values = rng.random(len(eta)) < _sigmoid(eta)
    else:
        values = eta
    values = np.clip(values, measure.low, measure.high)
    if measure.kind == "count":
        return values.astype(np.int32)
    if measure.kind == "binary":
        return values.astype(np.int8)
    return values.astype(np.float32)


def _categorical_draw(logits: FloatArray, rng: np.random.Generator) -> npt.NDArray[np.int8]:
    """One category per row from a (rows x categories) logit matrix, by inverse CDF."""
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    cumulative = np.cumsum(probs, axis=1)
    threshold = rng.random(len(logits)) * cumulative[:, -1]
    codes: npt.NDArray[np.int8] = (cumulative < threshold[:, None]).sum(axis=1).astype(np.int8)
    clipped: npt.NDArray[np.int8] = np.minimum(codes, logits.shape[1] - 1)
    return clipped


def _national_ids(n: int, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    """Unique 12-digit ids with random gaps, in shuffled order (row position reveals nothing)."""
    gaps = rng.integers(1, 1000, size=n, dtype=np.int64)
    ids = 110_000_000_000 + np.cumsum(gaps)
    return rng.permutation(ids)


def _calibrate_intercept(linear_predictor: FloatArray, target: float) -> float:
    """The intercept whose mean sigmoid over the population equals `target` (by bisection)."""
    low, high = -20.0, 20.0
    for _ in range(60):
        mid = 0.5 * (low + high)
        if float(_sigmoid(mid + linear_predictor).mean()) < target:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)


@dataclass
class _Population:
    truth: pd.DataFrame
    drivers: dict[str, FloatArray]
    default_intercept: float


def _population(n: int, seed: int, policy: PolicySettings | None = None) -> _Population:
    """Citizens: quasi-identifiers, sensitive attributes, latent traits and the default label.

    An active `policy` adds its strength to its group's default logit (no draw changes)."""
    ids = _national_ids(n, _rng(seed, "population", "national_id"))
    age = AGE_MIN + np.floor(AGE_SPAN * _rng(seed, "population", "age").beta(*AGE_BETA, size=n))
    age_z = (age - AGE_CENTRE) / AGE_SCALE
    male = (_rng(seed, "population", "sex").random(n) < P_MALE).astype(np.float64)
    region = _rng(seed, "population", "region").choice(len(REGIONS), size=n, p=REGION_SHARE)
    region = region.astype(np.int8)
    minority = (
        _rng(seed, "population", "ethnic_minority").random(n)
        < np.asarray(REGION_P_MINORITY)[region]
    ).astype(np.float64)
    drivers: dict[str, FloatArray] = {"age_z": age_z, "male": male, "ethnic_minority": minority}

    urban_logit = np.asarray(REGION_URBAN_LOGIT)[region] + _linear(URBAN_LOGIT, drivers, None)
    urban = (_rng(seed, "population", "hukou").random(n) < _sigmoid(urban_logit)).astype(float)
    drivers["urban"] = urban
    education_latent = _linear(EDUCATION_LATENT, drivers, None)
    education_latent += _rng(seed, "population", "education").standard_normal(n)
    education = np.searchsorted(np.asarray(EDUCATION_CUTS), education_latent).astype(np.int8)
    drivers["education_z"] = education.astype(np.float64) - 2.0
    single = _rng(seed, "population", "marital").random(n) < _sigmoid(
        _linear(SINGLE_LOGIT, drivers, None)
    )
    drivers["single"] = single.astype(np.float64)
    drivers["married"] = 1.0 - drivers["single"]

    occupation_terms = np.asarray([OCCUPATION_LOGIT[o] for o in OCCUPATIONS])  # (K, 4)
    design = np.stack([np.ones(n), drivers["education_z"], urban, age_z], axis=1)  # (n, 4)
    occupation = _categorical_draw(
        design @ occupation_terms.T, _rng(seed, "population", "occupation")
    )
    drivers["journalist"] = (occupation == OCCUPATIONS.index("journalist")).astype(np.float64)

    for attribute, terms in SENSITIVE_LOGIT.items():
        draw = _rng(seed, "population", attribute).random(n)
        drivers[attribute] = (draw < _sigmoid(_linear(terms, drivers, None))).astype(np.float64)

    drivers["age_z_squared"] = age_z**2
    for latent, terms in LATENT_EQUATIONS.items():
        value = _linear(terms, drivers, None)
        value += terms["noise"] * _rng(seed, "latent", latent).standard_normal(n)
        if latent == "income_capacity":
            value += np.asarray(REGION_INCOME)[region]
            value += np.asarray([OCCUPATION_INCOME[o] for o in OCCUPATIONS])[occupation]
        drivers[latent] = value

    linear_predictor = _linear(DEFAULT_COEFFICIENTS, drivers, None)
    if policy is not None and policy.active:  # strength 0 leaves the world untouched
        group = policy_group(policy.target, drivers, occupation)
        linear_predictor = linear_predictor + policy.strength * group
    intercept = _calibrate_intercept(linear_predictor, TARGET_BASE_RATE)
    probability = _sigmoid(intercept + linear_predictor)
    default = (_rng(seed, "label", LABEL).random(n) < probability).astype(np.int8)
    drivers[LABEL] = default.astype(np.float64)

    truth = pd.DataFrame(
        {
            ID: ids,
            "age": age.astype(np.int16),
            "sex": pd.Categorical.from_codes(male.astype(np.int8), pd.Index(["female", "male"])),
            "region": pd.Categorical.from_codes(region, pd.Index(REGIONS)),
            "hukou": pd.Categorical.from_codes(urban.astype(np.int8), pd.Index(["rural", "urban"])),
            "education": pd.Categorical.from_codes(education, pd.Index(EDUCATION), ordered=True),
            "occupation": pd.Categorical.from_codes(occupation, pd.Index(OCCUPATIONS)),
            "marital_status": pd.Categorical.from_codes(
                single.astype(np.int8), pd.Index(["married", "single"])
            ),
            **{s: drivers[s].astype(np.int8) for s in SENSITIVE},
            **{latent: drivers[latent].astype(np.float32) for latent in LATENTS},
            "default_probability": probability.astype(np.float32),
            LABEL: default,
        }
    )
    drivers["sex_code"] = male
    drivers["region_code"] = region.astype(np.float64)
    drivers["age"] = age
    return _Population(truth=truth, drivers=drivers, default_intercept=intercept)


def _firm_table(
    firm: str, members: npt.NDArray[np.bool_], population: _Population, seed: int
) -> pd.DataFrame:
    drivers = population.drivers
    table: dict[str, npt.NDArray[Any]] = {
        ID: population.truth[ID].to_numpy()[members],
        "age": drivers["age"][members].astype(np.int16),
        "sex": drivers["sex_code"][members].astype(np.int8),
        "region": drivers["region_code"][members].astype(np.int8),
    }
    for measure in COMMON_SCHEMA:
        rng = _rng(seed, "firm", firm, measure.name)
        table[measure.name] = _measure(measure, drivers, members, rng, FIRM_LENS[firm])
    for measure in DOMAIN_COLUMNS[firm]:
        table[measure.name] = _measure(
            measure, drivers, members, _rng(seed, "firm", firm, measure.name)
        )
    table[LABEL] = population.truth[LABEL].to_numpy()[members]
    return pd.DataFrame(table)


def _government_table(population: _Population, seed: int) -> pd.DataFrame:
    table: dict[str, npt.NDArray[Any]] = {ID: population.truth[ID].to_numpy()}
    for measure in GOVERNMENT_RECORDS:
        rng = _rng(seed, "government", measure.name)
        table[measure.name] = _measure(measure, population.drivers, None, rng)
    return pd.DataFrame(table)


def _column_infos() -> list[ColumnInfo]:
    """Every column of every table with its role, range and meaning (the manifest)."""
    columns = [
        ColumnInfo(ID, "truth", "id", "categorical", "national id (real-name registration)"),
        ColumnInfo("age", "truth", "quasi-identifier", "continuous", "age in years", 18.0, 79.0),
        ColumnInfo("sex", "truth", "quasi-identifier", "categorical", "female / male"),
        ColumnInfo("region", "truth", "quasi-identifier", "categorical",
                   "macro region: " + ", ".join(REGIONS)),
        ColumnInfo("hukou", "truth", "quasi-identifier", "categorical",
                   "household registration: rural / urban"),
        ColumnInfo("education", "truth", "quasi-identifier", "categorical",
                   "highest level: " + ", ".join(EDUCATION)),
        ColumnInfo("occupation", "truth", "quasi-identifier", "categorical",
                   "occupation: " + ", ".join(OCCUPATIONS)),
        ColumnInfo("marital_status", "truth", "quasi-identifier", "categorical",
                   "married / single"),
        *[ColumnInfo(s, "truth", "sensitive", "binary", f"1 if {s.replace('_', ' ')}", 0.0, 1.0)
          for s in SENSITIVE],
        *[ColumnInfo(latent, "truth", "latent", "continuous",
                     f"latent trait {latent} (see WORLD.md)") for latent in LATENTS],
        ColumnInfo("default_probability", "truth", "latent", "continuous",
                   "true 12-month probability of default from the known logistic model",
                   0.0, 1.0),
        ColumnInfo(LABEL, "truth", "label", "binary", "defaulted within 12 months", 0.0, 1.0),
        ColumnInfo(ID, "government", "id", "categorical", "national id"),
        *[ColumnInfo(m.name, "government", "government", m.kind, m.description, m.low, m.high)
          for m in GOVERNMENT_RECORDS],
    ]  # fmt: skip
    for firm in FIRMS:
        columns += [
            ColumnInfo(ID, firm, "id", "categorical", "national id (real-name registration)"),
            ColumnInfo("age", firm, "quasi-identifier", "continuous", "KYC age in years",
                       18.0, 79.0),
            ColumnInfo("sex", firm, "quasi-identifier", "binary", "KYC sex: 0 female, 1 male",
                       0.0, 1.0),
            ColumnInfo("region", firm, "quasi-identifier", "categorical",
                       "KYC region code: " + ", ".join(f"{i} {r}" for i, r in enumerate(REGIONS)),
                       0.0, float(len(REGIONS) - 1)),
            *[ColumnInfo(m.name, firm, m.role, m.kind, m.description, m.low, m.high)
              for m in (*COMMON_SCHEMA, *DOMAIN_COLUMNS[firm])],
            ColumnInfo(LABEL, firm, "label", "binary", "defaulted within 12 months", 0.0, 1.0),
        ]  # fmt: skip
    return columns


def causal_edges() -> list[dict[str, Any]]:
    """The causal model as data: one edge per (driver -> column) with its coefficient.

    Common-schema edges carry the firm's effective coefficient (signal x loading), so each
    firm's copy of a column is listed with what drives it there.
    """
    edges: list[dict[str, Any]] = []
    for target, terms in (*SENSITIVE_LOGIT.items(), *LATENT_EQUATIONS.items()):
        edges += [{"source": d, "target": f"truth.{target}", "coefficient": c}
                  for d, c in terms.items() if d not in {"intercept", "noise"}]  # fmt: skip
    edges += [{"source": f"region={r}", "target": "truth.income_capacity", "coefficient": c}
              for r, c in zip(REGIONS, REGION_INCOME, strict=True)]  # fmt: skip
    edges += [{"source": f"occupation={o}", "target": "truth.income_capacity", "coefficient": c}
              for o, c in OCCUPATION_INCOME.items()]  # fmt: skip
    edges += [{"source": d, "target": f"truth.{LABEL}", "coefficient": c}
              for d, c in DEFAULT_COEFFICIENTS.items()]  # fmt: skip
    for firm in FIRMS:
        lens = FIRM_LENS[firm]
        for measure in COMMON_SCHEMA:
            edges += [
                {
                    "source": d,
                    "target": f"{firm}.{measure.name}",
                    "coefficient": round(lens.signal * c, 6),
                }
                for d, c in measure.loadings
            ]
        for measure in DOMAIN_COLUMNS[firm]:
            edges += [{"source": d, "target": f"{firm}.{measure.name}", "coefficient": c}
                      for d, c in measure.loadings]  # fmt: skip
    for measure in GOVERNMENT_RECORDS:
        edges += [{"source": d, "target": f"government.{measure.name}", "coefficient": c}
                  for d, c in measure.loadings]  # fmt: skip
    return edges


def _membership(
    world_ids: npt.NDArray[np.int64], firms: dict[str, pd.DataFrame]
) -> npt.NDArray[np.bool_]:
    """(citizens x firms) boolean matrix: is citizen i a customer of firm j."""
    return np.stack([np.isin(world_ids, t[ID].to_numpy()) for t in firms.values()], axis=1)


def _overlap(membership: npt.NDArray[np.bool_], names: list[str]) -> dict[str, dict[str, Any]]:
    counts = membership.T.astype(np.float64) @ membership.astype(np.float64)  # (firms, firms)
    sizes = np.diag(counts)
    union = sizes[:, None] + sizes[None, :] - counts
    jaccard = np.divide(counts, union, out=np.zeros_like(counts), where=union > 0)
    return {
        "jaccard": {a: {b: round(float(jaccard[i, j]), 6) for j, b in enumerate(names)}
                    for i, a in enumerate(names)},
        "counts": {a: {b: int(counts[i, j]) for j, b in enumerate(names)}
                   for i, a in enumerate(names)},
    }  # fmt: skip


SUMMARY_COLUMNS = ("on_time_payment_rate", "monthly_spend", "late_payments_12m")


def world_summary(world: World) -> dict[str, Any]:
    """Coverage, overlap, firms per citizen, per-firm default rate and means of a few common
    columns: what shows at a glance whether firms are overlapping and non-IID."""
    names = world.firm_names
    ids = world.truth[ID].to_numpy()
    membership = _membership(ids, world.firms)
    firms_per_citizen = np.bincount(membership.sum(axis=1), minlength=len(names) + 1)
    shared = [c for c in SUMMARY_COLUMNS if all(c in t.columns for t in world.firms.values())]
    return {
        "citizens": len(ids),
        "base_rate": round(float(world.truth[LABEL].mean()), 6),
        "coverage": {f: round(len(t) / max(len(ids), 1), 6) for f, t in world.firms.items()},
        "default_rate": {f: round(float(t[LABEL].mean()), 6) for f, t in world.firms.items()},
        "firms_per_citizen": {str(k): int(v) for k, v in enumerate(firms_per_citizen)},
        "overlap_jaccard": _overlap(membership, names)["jaccard"],
        "common_means": {
            f: {c: round(float(t[c].mean()), 4) for c in shared} for f, t in world.firms.items()
        },
    }


def generate_world(
    n_citizens: int = 50_000, seed: int = 0, policy: PolicySettings | None = None
) -> World:
    """A seeded synthetic population and the eight pilot firms' views of it (see WORLD.md);
    `policy` is the positive control of `experiments/world/policy.py`."""
    if isinstance(n_citizens, bool) or not isinstance(n_citizens, int) or n_citizens < 100:
        raise ValueError(f"n_citizens must be an int >= 100, got {n_citizens!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    population = _population(n_citizens, seed, policy)
    memberships: dict[str, npt.NDArray[np.bool_]] = {}
    for firm in FIRMS:
        p_member = _sigmoid(_linear(COVERAGE_LOGIT[firm], population.drivers, None))
        memberships[firm] = _rng(seed, "coverage", firm).random(n_citizens) < p_member
    firms = {f: _firm_table(f, memberships[f], population, seed) for f in FIRMS}
    membership = np.stack([memberships[f] for f in FIRMS], axis=1)
    firms_per_citizen = np.bincount(membership.sum(axis=1), minlength=len(FIRMS) + 1)
    meta: dict[str, Any] = {
        "source": "synthetic",
        "generator": "experiments.world.synthetic",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "n_citizens": n_citizens,
        "base_rate": round(float(population.truth[LABEL].mean()), 6),
        "coverage": {f: round(float(m.mean()), 6) for f, m in memberships.items()},
        "firms_per_citizen": {str(k): int(v) for k, v in enumerate(firms_per_citizen)},
        "overlap": _overlap(membership, list(FIRMS)),
        "default_rate": {f: round(float(t[LABEL].mean()), 6) for f, t in firms.items()},
        "causal_model": {
            "default": {
                "link": "logistic",
                "intercept": round(population.default_intercept, 6),
                "coefficients": DEFAULT_COEFFICIENTS,
                "target_base_rate": TARGET_BASE_RATE,
            },
            "firm_lens": {f: vars(lens) for f, lens in FIRM_LENS.items()},
            "coverage_logits": COVERAGE_LOGIT,
            "edges": causal_edges(),
        },
    }
    if policy is not None and policy.active:
        meta["policy"] = policy.model_dump()
    return World(
        truth=population.truth,
        government=_government_table(population, seed),
        firms=firms,
        columns=_column_infos(),
        meta=meta,
    )
