"""The synthetic world's causal model: every number of it, as constants defined once here.

`experiments/world/synthetic.py` draws the world from these constants and
`experiments/world/world_doc.py` renders them into the tables of `experiments/world/WORLD.md`; a
test checks the two agree, so every leakage figure measured on the world has a documented ground
truth. The module is long by nature: it is the coefficient tables (the common credit schema, each
firm's domain columns and the government records are one `Measure` per column), and splitting a
table across modules would only make it harder to read whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from experiments.world.tables import Kind, Role

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
