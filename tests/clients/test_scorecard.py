import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from clients.scorecard import (
    SCORE_MAX,
    SCORE_MIN,
    privilege_tier,
    score_from_default_probability,
    tier_names,
)

probabilities = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@given(st.lists(probabilities, min_size=1, max_size=200))
def test_scores_stay_on_the_350_950_scale(pds: list[float]) -> None:
    scores = score_from_default_probability(np.array(pds))

    assert np.all(scores >= SCORE_MIN)
    assert np.all(scores <= SCORE_MAX)


@given(probabilities, probabilities)
def test_a_higher_default_probability_never_scores_higher(a: float, b: float) -> None:
    low, high = sorted((a, b))

    score_low, score_high = score_from_default_probability(np.array([low, high]))

    assert score_low >= score_high


def test_points_to_double_odds_scaling_matches_the_definition() -> None:
    # Prepare: odds 20:1 sit at the base score; doubling the odds adds pdo points.
    pd_at_base = 1 / 21
    pd_at_double = 1 / 41

    # Execute
    at_base, at_double = score_from_default_probability(
        np.array([pd_at_base, pd_at_double]), base_score=650, base_odds=20, pdo=50
    )

    # Assert
    assert at_base == np.float64(650.0) or abs(at_base - 650.0) < 1e-9
    assert abs(at_double - at_base - 50.0) < 1e-9


def test_extreme_probabilities_clip_to_the_ends_of_the_scale() -> None:
    scores = score_from_default_probability(np.array([0.0, 1.0]))

    assert list(scores) == [SCORE_MAX, SCORE_MIN]


def test_tiers_are_cumulative_and_named_by_threshold() -> None:
    thresholds = {"visa_fast_track": 750, "hotel_deposit_free": 600, "car_rental_deposit_free": 650}

    tiers = privilege_tier(np.array([350, 599.9, 600, 649, 700, 750, 950]), thresholds)

    assert list(tiers) == [0, 0, 1, 1, 2, 3, 3]
    assert tier_names(thresholds) == [
        "none",
        "hotel_deposit_free",
        "car_rental_deposit_free",
        "visa_fast_track",
    ]
