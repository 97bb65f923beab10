"""The seeded synthetic population of citizens and the eight pilot firms that observe it.

Every number of the causal model is a constant defined once in this module;
`experiments/world/WORLD.md` embeds tables rendered from these constants
(`causal_model_markdown`) and a test checks the two agree, so every leakage figure measured on
the world has a documented ground truth.

Each component (a population variable, a firm's coverage, one column at one firm) draws from its
own generator derived from the seed and the component's name, so adding a column changes nothing
else, and the same (n_citizens, seed) always gives the same world.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from experiments.world.tables import ID, LABEL, ColumnInfo, Kind, Role, World

GENERATOR_VERSION = "1.0.0"

FIRMS: tuple[str, ...] = (
    "ecommerce",
    "payments",
    "social_network",
    "matchmaking",
    "p2p_lending",
    "ride_hailing",
    "telecom",
    "travel",
)
SENSITIVE: tuple[str, ...] = (
    "ethnic_minority",
    "religious_practice",
    "chronic_health",
    "political_expression",
)
LATENTS: tuple[str, ...] = (
    "income_capacity",
    "reliability",
    "spending_propensity",
    "digital_engagement",
)

FloatArray = npt.NDArray[np.float64]
Link = Literal["logistic", "exp", "poisson", "bernoulli", "linear"]

# ---------------------------------------------------------------- quasi-identifiers
AGE_MIN, AGE_SPAN = 18, 62
"""age = AGE_MIN + floor(AGE_SPAN * Beta(AGE_BETA)): 18..79 years."""
AGE_BETA = (2.2, 3.0)
AGE_CENTRE, AGE_SCALE = 42.0, 14.0
"""age_z = (age - AGE_CENTRE) / AGE_SCALE, the age driver used by every equation."""
P_MALE = 0.51

REGIONS: tuple[str, ...] = ("north", "northeast", "east", "south_central", "southwest", "northwest")
"""China's six macro regions (the 31 provinces grouped), so regions are coarse quasi-identifiers."""
REGION_SHARE = (0.12, 0.08, 0.30, 0.27, 0.14, 0.09)
REGION_P_MINORITY = (0.05, 0.06, 0.02, 0.08, 0.25, 0.30)
REGION_URBAN_LOGIT = (0.5, 0.6, 0.8, 0.2, -0.2, -0.3)
REGION_INCOME = (0.2, -0.1, 0.4, 0.1, -0.3, -0.4)

URBAN_LOGIT = {"age_z": -0.4, "ethnic_minority": -0.4}
"""hukou = urban with probability sigmoid(REGION_URBAN_LOGIT[region] + these terms)."""

EDUCATION: tuple[str, ...] = (
    "primary",
    "junior_secondary",
    "senior_secondary",
    "vocational_college",
    "university",
)
EDUCATION_LATENT = {"urban": 0.9, "age_z": -0.5, "ethnic_minority": -0.3}
"""education = number of EDUCATION_CUTS below (these terms + N(0, 1))."""
EDUCATION_CUTS = (-0.8, 0.3, 1.0, 1.6)

SINGLE_LOGIT = {"intercept": -1.2, "age_z": -2.2}
"""marital_status = single (never married, divorced or widowed) with probability sigmoid(...)."""

OCCUPATIONS: tuple[str, ...] = (
    "farmer",
    "factory_worker",
    "service_worker",
    "office_worker",
    "self_employed",
    "student",
    "retired",
    "unemployed",
    "teacher",
    "accountant",
    "journalist",
    "doctor",
    "veterinarian",
    "tour_guide",
)
SCRUTINIZED = ("teacher", "accountant", "journalist", "doctor", "veterinarian", "tour_guide")
OCCUPATION_LOGIT: dict[str, tuple[float, float, float, float]] = {
    # occupation: (intercept, per education level above 2, urban, age_z); softmax over occupations
    "farmer": (1.0, -0.6, -2.0, 0.4),
    "factory_worker": (1.0, -0.3, 0.0, -0.2),
    "service_worker": (1.0, -0.1, 0.5, -0.3),
    "office_worker": (-1.0, 0.6, 1.0, 0.0),
    "self_employed": (0.0, 0.0, 0.3, 0.2),
    "student": (-3.5, 0.5, 0.3, -3.0),
    "retired": (-3.0, 0.0, 0.5, 3.0),
    "unemployed": (-1.0, -0.3, 0.0, 0.0),
    "teacher": (-2.5, 0.7, 0.3, 0.0),
    "accountant": (-2.8, 0.7, 0.6, 0.0),
    "journalist": (-4.5, 0.8, 1.0, -0.3),
    "doctor": (-3.6, 0.9, 0.8, 0.1),
    "veterinarian": (-3.8, 0.6, -0.3, 0.0),
    "tour_guide": (-3.6, 0.3, 0.5, -0.5),
}
OCCUPATION_INCOME = {
    "farmer": -0.4,
    "factory_worker": -0.1,
    "service_worker": -0.1,
    "office_worker": 0.2,
    "self_employed": 0.1,
    "student": -0.3,
    "retired": -0.2,
    "unemployed": -0.6,
    "teacher": 0.1,
    "accountant": 0.3,
    "journalist": 0.2,
    "doctor": 0.6,
    "veterinarian": 0.1,
    "tour_guide": 0.0,
}

# ---------------------------------------------------------------- sensitive attributes
SENSITIVE_LOGIT: dict[str, dict[str, float]] = {
    # ethnic_minority is Bernoulli(REGION_P_MINORITY[region]); the others are logistic in these
    "religious_practice": {"intercept": -2.3, "ethnic_minority": 2.0, "age_z": 0.3, "urban": -0.3},
    "chronic_health": {"intercept": -1.9, "age_z": 1.1},
    "political_expression": {
        "intercept": -2.6,
        "education_z": 0.4,
        "urban": 0.5,
        "age_z": -0.3,
        "journalist": 2.0,
    },
}

# ---------------------------------------------------------------- latent traits
LATENT_EQUATIONS: dict[str, dict[str, float]] = {
    # latent = sum(coef * driver) + N(0, noise); income_capacity also gets REGION_INCOME[region]
    # and OCCUPATION_INCOME[occupation]. education_z = education level - 2 (0..4 -> -2..2).
    "income_capacity": {
        "education_z": 0.35,
        "urban": 0.3,
        "age_z": 0.1,
        "age_z_squared": -0.25,
        "male": 0.15,
        "chronic_health": -0.25,
        "noise": 0.7,
    },
    "reliability": {"age_z": 0.2, "education_z": 0.1, "married": 0.1, "noise": 0.9},
    "spending_propensity": {"age_z": -0.3, "urban": 0.2, "noise": 0.9},
    "digital_engagement": {"age_z": -0.8, "urban": 0.6, "education_z": 0.25, "noise": 0.6},
}

# ---------------------------------------------------------------- default
DEFAULT_COEFFICIENTS = {"income_capacity": -0.9, "reliability": -1.3, "spending_propensity": 0.5}
"""P(default_12m) = sigmoid(intercept + sum(coef * latent)): latent traits only."""
TARGET_BASE_RATE = 0.07
"""The intercept is solved (bisection) so the mean true PD over the population equals this."""

# ---------------------------------------------------------------- firms
COVERAGE_LOGIT: dict[str, dict[str, float]] = {
    # P(citizen is a customer) = sigmoid(intercept + sum(coef * driver)), independent per firm
    "ecommerce": {
        "intercept": 0.4,
        "digital_engagement": 1.0,
        "urban": 0.4,
        "income_capacity": 0.3,
        "male": -0.3,
    },
    "payments": {"intercept": 0.8, "digital_engagement": 0.9, "urban": 0.6, "income_capacity": 0.2},
    "social_network": {"intercept": 0.3, "digital_engagement": 1.2, "age_z": -0.5},
    "matchmaking": {
        "intercept": -2.6,
        "single": 2.2,
        "age_z": -0.6,
        "male": 0.4,
        "digital_engagement": 0.4,
    },
    "p2p_lending": {
        "intercept": -2.4,
        "reliability": -0.9,
        "income_capacity": -0.4,
        "spending_propensity": 0.6,
        "digital_engagement": 0.4,
    },
    "ride_hailing": {
        "intercept": -1.0,
        "urban": 1.4,
        "income_capacity": 0.6,
        "digital_engagement": 0.6,
    },
    "telecom": {"intercept": 2.8, "digital_engagement": 0.3},
    "travel": {"intercept": -1.9, "income_capacity": 1.1, "urban": 0.7, "age_z": 0.2},
}


@dataclass(frozen=True)
class FirmLens:
    """How one firm measures the common schema, so the same column means slightly different
    things at each firm: eta = intercept + bias + signal * (loadings . drivers)
    + noise * column_noise * N(0, 1)."""

    signal: float
    bias: float
    noise: float


NEUTRAL_LENS = FirmLens(signal=1.0, bias=0.0, noise=1.0)
"""Domain columns and government records: measured exactly as their Measure says."""

FIRM_LENS: dict[str, FirmLens] = {
    "ecommerce": FirmLens(signal=1.0, bias=0.0, noise=0.5),
    "payments": FirmLens(signal=1.1, bias=0.1, noise=0.4),
    "social_network": FirmLens(signal=0.6, bias=-0.1, noise=0.9),
    "matchmaking": FirmLens(signal=0.5, bias=0.2, noise=1.0),
    "p2p_lending": FirmLens(signal=0.9, bias=-0.3, noise=0.7),
    "ride_hailing": FirmLens(signal=0.7, bias=0.1, noise=0.8),
    "telecom": FirmLens(signal=0.8, bias=0.0, noise=0.6),
    "travel": FirmLens(signal=0.8, bias=0.3, noise=0.7),
}


@dataclass(frozen=True)
class Measure:
    """One observed column: value = link(intercept + sum(coef * driver) + noise * N(0, 1)),
    clipped to the public range [low, high]. A Poisson link draws a count with that log-mean."""

    name: str
    kind: Kind
    link: Link
    intercept: float
    loadings: tuple[tuple[str, float], ...]
    noise: float
    low: float
    high: float
    description: str
    role: Role = "common"
    proxies: str | None = None


COMMON_SCHEMA: tuple[Measure, ...] = (
    Measure("on_time_payment_rate", "continuous", "logistic", 2.2,
            (("reliability", 1.0), ("income_capacity", 0.3)), 0.5, 0.0, 1.0,
            "share of bills paid on time over 12 months"),
    Measure("late_payments_12m", "count", "poisson", -1.0,
            (("reliability", -0.9), ("income_capacity", -0.3), ("spending_propensity", 0.3)),
            0.4, 0.0, 24.0, "payments more than 7 days late in 12 months"),
    Measure("max_days_past_due", "count", "poisson", 0.5,
            (("reliability", -1.0), ("income_capacity", -0.4)), 0.6, 0.0, 180.0,
            "longest arrear in 12 months, days"),
    Measure("monthly_spend", "continuous", "exp", 7.6,
            (("income_capacity", 0.7), ("spending_propensity", 0.4)), 0.4, 0.0, 100_000.0,
            "mean monthly spend observed by the firm, CNY"),
    Measure("income_estimate", "continuous", "exp", 8.7,
            (("income_capacity", 0.8),), 0.3, 0.0, 200_000.0,
            "firm's estimate of monthly income, CNY"),
    Measure("account_balance_avg", "continuous", "exp", 8.5,
            (("income_capacity", 1.0), ("reliability", 0.3), ("spending_propensity", -0.3)),
            0.6, 0.0, 2_000_000.0, "mean balance held with or seen by the firm, CNY"),
    Measure("credit_utilisation", "continuous", "logistic", -0.6,
            (("spending_propensity", 0.7), ("income_capacity", -0.5), ("reliability", -0.5)),
            0.5, 0.0, 1.0, "share of granted credit in use"),
    Measure("tenure_months", "count", "poisson", 3.3,
            (("age_z", 0.5), ("reliability", 0.2)), 0.5, 0.0, 240.0,
            "months since the account was opened"),
    Measure("transactions_per_month", "count", "poisson", 2.8,
            (("digital_engagement", 0.6), ("spending_propensity", 0.4), ("income_capacity", 0.2)),
            0.4, 0.0, 1000.0, "transactions per month"),
    Measure("dispute_rate", "continuous", "logistic", -3.2,
            (("reliability", -0.6), ("spending_propensity", 0.3)), 0.5, 0.0, 1.0,
            "share of transactions disputed or charged back"),
    Measure("overdraft_days_12m", "count", "poisson", 0.3,
            (("income_capacity", -0.8), ("reliability", -0.6), ("spending_propensity", 0.3)),
            0.5, 0.0, 365.0, "days with a negative balance in 12 months"),
    Measure("address_changes_5y", "count", "poisson", -0.5,
            (("age_z", -0.5), ("reliability", -0.3)), 0.4, 0.0, 20.0,
            "delivery or billing address changes in 5 years"),
    Measure("login_days_per_month", "count", "poisson", 2.5,
            (("digital_engagement", 0.5),), 0.3, 0.0, 31.0, "days per month with a login"),
    Measure("autopay_enabled", "binary", "bernoulli", 0.0,
            (("reliability", 0.6), ("digital_engagement", 0.5)), 0.3, 0.0, 1.0,
            "automatic bill payment switched on"),
    Measure("night_activity_share", "continuous", "logistic", -1.8,
            (("spending_propensity", 0.4), ("age_z", -0.4)), 0.4, 0.0, 1.0,
            "share of activity between 23:00 and 05:00"),
    Measure("credit_lines_open", "count", "poisson", 0.8,
            (("income_capacity", 0.4), ("spending_propensity", 0.3), ("age_z", 0.2)),
            0.4, 0.0, 30.0, "open credit lines known to the firm"),
)  # fmt: skip


def _domain(
    name: str, kind: Kind, link: Link, intercept: float, loadings: tuple[tuple[str, float], ...],
    noise: float, low: float, high: float, description: str, proxies: str | None = None,
) -> Measure:  # fmt: skip
    role: Role = "domain" if proxies is None else "sensitive-proxy"
    if proxies is not None:
        description = f"{description} (proxy of {proxies})"
    return Measure(
        name, kind, link, intercept, loadings, noise, low, high, description, role, proxies
    )


DOMAIN_COLUMNS: dict[str, tuple[Measure, ...]] = {
    "ecommerce": (
        _domain("pharmacy_purchases_12m", "count", "poisson", 0.3,
                (("chronic_health", 1.3), ("age_z", 0.3)), 0.4, 0.0, 200.0,
                "pharmacy and medical-supply orders in 12 months", "chronic_health"),
        _domain("ethnic_food_share", "continuous", "logistic", -3.0,
                (("ethnic_minority", 1.8),), 0.5, 0.0, 1.0,
                "share of grocery spend on halal or regional ethnic foods", "ethnic_minority"),
        _domain("luxury_goods_share", "continuous", "logistic", -2.5,
                (("income_capacity", 0.8), ("spending_propensity", 0.6)), 0.5, 0.0, 1.0,
                "share of spend on luxury brands"),
    ),
    "payments": (
        _domain("charity_donations_12m", "count", "poisson", -0.5,
                (("religious_practice", 1.4), ("income_capacity", 0.3)), 0.5, 0.0, 100.0,
                "donations to temples, mosques, churches and charities in 12 months",
                "religious_practice"),
        _domain("gambling_merchant_share", "continuous", "logistic", -4.0,
                (("spending_propensity", 0.8), ("reliability", -0.5)), 0.5, 0.0, 1.0,
                "share of payments to lottery and gaming merchants"),
        _domain("peer_transfers_per_month", "count", "poisson", 1.5,
                (("digital_engagement", 0.5), ("single", 0.2)), 0.4, 0.0, 500.0,
                "person-to-person transfers per month"),
    ),
    "social_network": (
        _domain("contacts_mean_score", "continuous", "linear", 600.0,
                (("reliability", 45.0), ("income_capacity", 35.0)), 50.0, 350.0, 950.0,
                "mean 350-950 score of the citizen's contacts (homophily)"),
        _domain("posting_activity", "count", "poisson", 1.5,
                (("political_expression", 0.9), ("digital_engagement", 0.5), ("age_z", -0.2)),
                0.5, 0.0, 1000.0, "posts per month", "political_expression"),
        _domain("flagged_posts_12m", "count", "poisson", -2.5,
                (("political_expression", 2.0),), 0.5, 0.0, 100.0,
                "posts flagged or removed by moderation in 12 months", "political_expression"),
        _domain("minority_language_content_share", "continuous", "logistic", -4.0,
                (("ethnic_minority", 2.5),), 0.5, 0.0, 1.0,
                "share of content in a minority language", "ethnic_minority"),
    ),
    "matchmaking": (
        _domain("dating_activity", "count", "poisson", 2.0,
                (("single", 1.0), ("age_z", -0.4), ("digital_engagement", 0.3)), 0.5, 0.0, 500.0,
                "messages and matches per month"),
        _domain("profile_completeness", "continuous", "logistic", 0.5,
                (("reliability", 0.5), ("digital_engagement", 0.3)), 0.5, 0.0, 1.0,
                "share of profile fields filled in"),
        _domain("religion_stated_on_profile", "binary", "bernoulli", -2.5,
                (("religious_practice", 2.5),), 0.3, 0.0, 1.0,
                "a religion is stated on the dating profile", "religious_practice"),
    ),
    "p2p_lending": (
        _domain("loan_applications_12m", "count", "poisson", 0.3,
                (("reliability", -0.6), ("spending_propensity", 0.5)), 0.4, 0.0, 50.0,
                "loan applications in 12 months"),
        _domain("loan_amount_requested", "continuous", "exp", 9.5,
                (("income_capacity", 0.6), ("spending_propensity", 0.3)), 0.5, 0.0, 1_000_000.0,
                "amount of the latest loan request, CNY"),
        _domain("medical_loan_purpose", "binary", "bernoulli", -3.0,
                (("chronic_health", 2.0),), 0.3, 0.0, 1.0,
                "latest loan requested for medical costs", "chronic_health"),
    ),
    "ride_hailing": (
        _domain("visits_near_religious_sites_12m", "count", "poisson", -1.5,
                (("religious_practice", 2.2),), 0.5, 0.0, 365.0,
                "trips ending within 200 m of a place of worship in 12 months",
                "religious_practice"),
        _domain("hospital_trips_12m", "count", "poisson", -1.0,
                (("chronic_health", 1.6), ("age_z", 0.3)), 0.5, 0.0, 365.0,
                "trips ending at a hospital in 12 months", "chronic_health"),
        _domain("night_trips_share", "continuous", "logistic", -2.0,
                (("spending_propensity", 0.5), ("age_z", -0.5)), 0.5, 0.0, 1.0,
                "share of trips between 23:00 and 05:00"),
        _domain("petition_office_visits_12m", "count", "poisson", -4.0,
                (("political_expression", 2.5),), 0.4, 0.0, 50.0,
                "trips ending at a letters-and-visits (petition) office in 12 months",
                "political_expression"),
    ),
    "telecom": (
        _domain("vpn_usage_days_per_month", "count", "poisson", -0.5,
                (("political_expression", 1.5), ("digital_engagement", 0.6)), 0.5, 0.0, 31.0,
                "days per month with VPN traffic", "political_expression"),
        _domain("minority_region_call_share", "continuous", "logistic", -3.0,
                (("ethnic_minority", 2.3),), 0.5, 0.0, 1.0,
                "share of call minutes to minority autonomous regions", "ethnic_minority"),
        _domain("data_usage_gb_month", "continuous", "exp", 2.5,
                (("digital_engagement", 0.7), ("age_z", -0.2)), 0.4, 0.0, 1000.0,
                "mobile data per month, GB"),
    ),
    "travel": (
        _domain("trips_per_year", "count", "poisson", 1.0,
                (("income_capacity", 0.6), ("age_z", 0.1)), 0.4, 0.0, 100.0,
                "booked trips per year"),
        _domain("pilgrimage_destination_trips", "count", "poisson", -2.5,
                (("religious_practice", 2.0),), 0.4, 0.0, 20.0,
                "trips to pilgrimage destinations in 5 years", "religious_practice"),
        _domain("international_trip_share", "continuous", "logistic", -2.0,
                (("income_capacity", 0.7),), 0.5, 0.0, 1.0,
                "share of trips abroad"),
    ),
}  # fmt: skip

GOVERNMENT_RECORDS: tuple[Measure, ...] = (
    Measure("traffic_violations_5y", "count", "poisson", -0.8,
            (("reliability", -0.6), ("male", 0.6), ("urban", 0.4), ("age_z", -0.3)), 0.4,
            0.0, 100.0, "recorded traffic violations in 5 years", "government"),
    Measure("court_debtor", "binary", "bernoulli", -4.0,
            (("reliability", -1.0), ("income_capacity", -0.8)), 0.3, 0.0, 1.0,
            "on the court's list of dishonest judgement debtors", "government"),
    Measure("tax_arrears", "binary", "bernoulli", -3.2,
            (("reliability", -0.7), ("income_capacity", -0.3)), 0.3, 0.0, 1.0,
            "has overdue tax with the tax bureau", "government"),
)  # fmt: skip

DRIVERS: tuple[str, ...] = (
    *LATENTS,
    *SENSITIVE,
    "age_z",
    "urban",
    "male",
    "single",
)
"""Everything a measured column may load on: latent traits, sensitive attributes, a few QIs."""


# ================================================================ generation


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


def _population(n: int, seed: int) -> _Population:
    """Citizens: quasi-identifiers, sensitive attributes, latent traits and the default label."""
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
    intercept = _calibrate_intercept(linear_predictor, TARGET_BASE_RATE)
    probability = _sigmoid(intercept + linear_predictor)
    default = (_rng(seed, "label", LABEL).random(n) < probability).astype(np.int8)
    drivers[LABEL] = default.astype(np.float64)

    truth = pd.DataFrame(
        {
            ID: ids,
            "age": age.astype(np.int16),
            "sex": pd.Categorical.from_codes(male.astype(np.int8), ["female", "male"]),
            "region": pd.Categorical.from_codes(region, list(REGIONS)),
            "hukou": pd.Categorical.from_codes(urban.astype(np.int8), ["rural", "urban"]),
            "education": pd.Categorical.from_codes(education, list(EDUCATION), ordered=True),
            "occupation": pd.Categorical.from_codes(occupation, list(OCCUPATIONS)),
            "marital_status": pd.Categorical.from_codes(
                single.astype(np.int8), ["married", "single"]
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


def generate_world(n_citizens: int = 50_000, seed: int = 0) -> World:
    """A seeded synthetic population and the eight pilot firms' views of it (see WORLD.md)."""
    if isinstance(n_citizens, bool) or not isinstance(n_citizens, int) or n_citizens < 100:
        raise ValueError(f"n_citizens must be an int >= 100, got {n_citizens!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    population = _population(n_citizens, seed)
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
    return World(
        truth=population.truth,
        government=_government_table(population, seed),
        firms=firms,
        columns=_column_infos(),
        meta=meta,
    )


# ================================================================ documentation

DOC_BEGIN = "<!-- BEGIN GENERATED: experiments.world.causal_model_markdown -->"
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
