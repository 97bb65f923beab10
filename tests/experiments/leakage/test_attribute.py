"""Attribute inference with known answers: a planted proxy is found, noise adds nothing."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments.leakage.attribute import AttributeResult, attribute_inference

REGIONS = np.array(["north", "northeast", "east", "south", "southwest", "northwest"])


def citizens(n: int, seed: int, prevalence_by_region: np.ndarray | None = None):
    """QIs like the synthetic world's, and an attribute that depends on region (so the
    QI-only baseline has something to find)."""
    rng = np.random.default_rng(seed)
    region = rng.integers(0, len(REGIONS), n)
    quasi_identifiers = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n).astype(np.int16),
            "sex": pd.Categorical(rng.choice(["female", "male"], n)),
            "region": pd.Categorical(REGIONS[region]),
        }
    )
    if prevalence_by_region is None:
        prevalence_by_region = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    attribute = (rng.random(n) < prevalence_by_region[region]).astype(np.int8)
    return quasi_identifiers, attribute, rng


@pytest.mark.parametrize("learner", ["logistic", "boosting"])
def test_a_planted_perfect_proxy_is_recovered(learner) -> None:
    quasi_identifiers, attribute, _ = citizens(2_000, seed=0)
    scores = 600.0 + 50.0 * attribute  # the score moves by the attribute and nothing else

    result = attribute_inference(scores, quasi_identifiers, attribute, seed=0, learner=learner)

    assert result.auc_score_and_qi > 0.99
    assert result.auc_qi_only < 0.75
    assert result.advantage > 0.2
    assert result.mcc_score_and_qi > 0.95


def test_a_proxy_hidden_in_both_tails_is_found_by_the_linear_learner() -> None:
    quasi_identifiers, attribute, rng = citizens(4_000, seed=1)
    magnitude = np.where(attribute == 1, rng.uniform(2.0, 3.0, 4_000), rng.uniform(0, 2.0, 4_000))
    scores = magnitude * rng.choice([-1.0, 1.0], 4_000)  # extremes either way: not monotone

    result = attribute_inference(scores, quasi_identifiers, attribute, seed=0)

    assert result.auc_score_and_qi > 0.95


def test_a_pure_noise_score_gives_no_advantage_over_the_baseline() -> None:
    quasi_identifiers, attribute, rng = citizens(4_000, seed=2)
    scores = rng.normal(600.0, 80.0, 4_000)

    result = attribute_inference(scores, quasi_identifiers, attribute, seed=0)

    # Both fits see the same rows and folds, so sampling noise cancels in the difference; the
    # noise columns can only cost a little overfitting. Each AUC's own sd here is ~0.009; over
    # ten seeds the advantage stayed within ±0.0012.
    assert result.auc_qi_only > 0.7
    assert abs(result.advantage) < 0.01


def test_a_score_computed_from_the_quasi_identifiers_adds_nothing() -> None:
    quasi_identifiers, attribute, _ = citizens(4_000, seed=3)
    region_points = {name: 20.0 * i for i, name in enumerate(REGIONS)}
    scores = 500.0 + quasi_identifiers["region"].map(region_points).to_numpy(dtype=float)

    result = attribute_inference(scores, quasi_identifiers, attribute, seed=0)

    assert abs(result.advantage) < 0.02


def test_a_rare_attribute_is_flagged_and_judged_by_g_mean_and_mcc() -> None:
    quasi_identifiers, attribute, rng = citizens(
        4_000, seed=4, prevalence_by_region=np.full(6, 0.04)
    )
    scores = np.where(attribute == 1, 450.0, 700.0) + rng.normal(0.0, 10.0, 4_000)

    result = attribute_inference(scores, quasi_identifiers, attribute, seed=0)

    assert result.rare and result.prevalence < 0.1
    assert result.g_mean_score_and_qi > 0.95
    assert result.mcc_score_and_qi > 0.9
    assert result.mcc_qi_only < 0.1  # region carries no signal here: the baseline is blind


def test_the_same_seed_repeats_and_the_result_serialises_to_plain_json() -> None:
    quasi_identifiers, attribute, rng = citizens(1_000, seed=5)
    scores = rng.normal(size=1_000) + attribute

    first = attribute_inference(scores, quasi_identifiers, attribute, seed=7)
    second = attribute_inference(scores, quasi_identifiers, attribute, seed=7)
    payload = json.loads(json.dumps(first.to_json()))

    assert first == second
    assert payload["auc_score_and_qi"] == first.auc_score_and_qi
    assert payload["learner"] == "logistic" and payload["n_folds"] == 5


ABOVE_QUANTILE_SUBSAMPLE = 10_016
"""More rows than scikit-learn's QuantileTransformer fits on by default (10,000): above that it
draws a random subsample, which once made the figures change from one process to the next."""

_CHILD = """
import json, sys
import pandas as pd
from experiments.leakage.attribute import attribute_inference
data = pd.read_pickle(sys.argv[1])
result = attribute_inference(data["scores"], data["qis"], data["attribute"], seed=3).to_json()
print(json.dumps({k: v.hex() if isinstance(v, float) else v for k, v in result.items()}))
"""


def test_the_figures_are_bit_identical_in_two_fresh_processes(tmp_path: Path) -> None:
    quasi_identifiers, attribute, rng = citizens(ABOVE_QUANTILE_SUBSAMPLE, seed=8)
    scores = rng.normal(size=ABOVE_QUANTILE_SUBSAMPLE) + 0.3 * attribute
    data = tmp_path / "data.pkl"
    pd.to_pickle({"scores": scores, "qis": quasi_identifiers, "attribute": attribute}, data)
    root = Path(__file__).resolve().parents[3]
    environment = {**os.environ, "PYTHONPATH": str(root)}

    runs = [
        subprocess.run(
            [sys.executable, "-c", _CHILD, str(data)],
            capture_output=True, text=True, check=True, cwd=root, env=environment,
        ).stdout
        for _ in range(2)
    ]  # fmt: skip

    assert runs[0] == runs[1]
    assert json.loads(runs[0])["n_rows"] == ABOVE_QUANTILE_SUBSAMPLE


def test_the_global_numpy_random_state_is_neither_read_nor_advanced() -> None:
    quasi_identifiers, attribute, rng = citizens(ABOVE_QUANTILE_SUBSAMPLE, seed=9)
    scores = rng.normal(size=ABOVE_QUANTILE_SUBSAMPLE) + 0.3 * attribute
    np.random.seed(0)
    before = np.random.get_state(legacy=False)

    first = attribute_inference(scores, quasi_identifiers, attribute, seed=4)
    after = np.random.get_state(legacy=False)
    second = attribute_inference(scores, quasi_identifiers, attribute, seed=4)

    assert first == second
    assert after["state"]["key"].tolist() == before["state"]["key"].tolist()
    assert after["state"]["pos"] == before["state"]["pos"]


def test_to_json_turns_nan_into_none() -> None:
    result = AttributeResult(
        n_rows=10, prevalence=0.5, rare=False, learner="logistic", n_folds=5,
        auc_score_and_qi=float("nan"), auc_qi_only=0.5, advantage=float("nan"),
        g_mean_score_and_qi=0.0, g_mean_qi_only=0.0, mcc_score_and_qi=0.0, mcc_qi_only=0.0,
    )  # fmt: skip

    payload = result.to_json()

    assert payload["auc_score_and_qi"] is None and payload["advantage"] is None
    assert payload["auc_qi_only"] == 0.5


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"scores": np.r_[np.nan, np.zeros(99)]}, "scores must be a finite 1-D array"),
        ({"attribute": np.full(100, 2)}, "attribute must be binary"),
        ({"attribute": np.r_[np.ones(3), np.zeros(97)]}, "at least n_folds=5 rows of each value"),
        ({"attribute": np.zeros(99)}, "attribute must have the scores' shape"),
        ({"quasi_identifiers": pd.DataFrame(index=range(100))}, "at least one column"),
        ({"learner": "forest"}, "learner must be 'logistic' or 'boosting'"),
        ({"n_folds": 1}, "n_folds must be >= 2"),
    ],
)
def test_bad_input_is_rejected_by_name(change, message) -> None:
    quasi_identifiers, attribute, rng = citizens(100, seed=6)
    arguments = {
        "scores": rng.normal(size=100),
        "quasi_identifiers": quasi_identifiers,
        "attribute": attribute,
        "seed": 0,
    }

    with pytest.raises(ValueError, match=message):
        attribute_inference(**{**arguments, **change})
