"""Membership inference with known answers: memorising models leak, blind models do not.

The torch models are the project's own (`make_model`, `train_model`); each attack trains 17 tiny
logistic models (< 0.1 s each).
"""

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from clients.model import make_model
from clients.training import TrainSettings, per_example_loss, predict_default, train_model
from experiments.leakage.membership import (
    MAX_CURVE_POINTS,
    PROBABILITY_FLOOR,
    attack_scores_loss,
    binary_cross_entropy,
    lira_online,
    logit_confidence,
    membership_split,
    roc_summary,
    shadow_membership,
    tpr_at_fpr,
)


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Tiny models train fastest on one thread: on a loaded 2-core machine, torch's second
    thread busy-waits and made 16 shadow trainings take a minute instead of a second."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def null_auc_tolerance(n_members: int, n_nonmembers: int, sigmas: float = 4.5) -> float:
    """Mann–Whitney: under a random split the AUC has sd sqrt((m + k + 1) / (12 m k))."""
    return sigmas * math.sqrt((n_members + n_nonmembers + 1) / (12 * n_members * n_nonmembers))


class MemorisingWorld:
    """More dimensions than rows and random labels: a logistic model can only memorise.

    Rows are nearly orthogonal unit vectors, so a model's weights span its training rows and
    predict about 0.5 on anything else: members get near-zero loss, non-members about log 2.
    """

    n, dimensions = 200, 400
    recipe = TrainSettings(epochs=100, batch_size=200, learning_rate=0.1)

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.features = (rng.standard_normal((self.n, self.dimensions)) / 20.0).astype(np.float32)
        self.labels = (rng.random(self.n) < 0.5).astype(np.float32)

    def train(self, member_mask: np.ndarray, seed: int):
        model = make_model("logistic", self.dimensions, seed=seed)
        with one_torch_thread():
            train_model(
                model, self.features[member_mask], self.labels[member_mask], self.recipe, seed=seed
            )
        return model

    def shadow(self, member_mask: np.ndarray, shadow_index: int) -> np.ndarray:
        return predict_default(self.train(member_mask, seed=1_000 + shadow_index), self.features)


class LearnableWorld:
    """Few features and a true logistic signal: a model generalises, so a blind target is fair."""

    dimensions = 5
    recipe = TrainSettings(epochs=10, batch_size=100, learning_rate=0.05)

    def __init__(self, n: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.features = rng.standard_normal((n, self.dimensions)).astype(np.float32)
        logits = self.features @ np.linspace(-1.0, 1.0, self.dimensions) - 1.0
        self.labels = (rng.random(n) < 1 / (1 + np.exp(-logits))).astype(np.float32)

    def train(self, member_mask: np.ndarray, seed: int):
        model = make_model("logistic", self.dimensions, seed=seed)
        with one_torch_thread():
            train_model(
                model, self.features[member_mask], self.labels[member_mask], self.recipe, seed=seed
            )
        return model

    def shadow(self, member_mask: np.ndarray, shadow_index: int) -> np.ndarray:
        return predict_default(self.train(member_mask, seed=1_000 + shadow_index), self.features)


@pytest.fixture(scope="module")
def memorised():
    world = MemorisingWorld(seed=0)
    members = membership_split(world.n, seed=0)
    target = world.train(members, seed=0)
    return world, members, target


# ------------------------------------------------------------------ known answers, attacks


def test_loss_attack_finds_the_members_of_a_memorising_model(memorised) -> None:
    world, members, target = memorised

    losses = per_example_loss(target, world.features, world.labels)
    result = roc_summary(attack_scores_loss(losses), members)

    assert result.auc > 0.9


@pytest.mark.parametrize("variance", ["global", "per_example"])
def test_lira_finds_the_members_of_a_memorising_model(memorised, variance) -> None:
    world, members, target = memorised

    lira = lira_online(
        world.labels,
        predict_default(target, world.features),
        world.shadow,
        n_shadows=16,
        seed=3,
        variance=variance,
    )
    result = roc_summary(lira.scores, members)

    assert result.auc > 0.9
    assert result.tpr_at_1_percent_fpr > 0.1


def test_both_attacks_are_at_chance_on_a_model_that_never_saw_the_pool() -> None:
    pool = LearnableWorld(n=1_000, seed=1)
    outside = LearnableWorld(n=1_000, seed=2)
    target = outside.train(np.ones(1_000, dtype=bool), seed=0)
    members = membership_split(1_000, seed=4)
    tolerance = null_auc_tolerance(500, 500)  # 4.5 sd = 0.082

    losses = per_example_loss(target, pool.features, pool.labels)
    loss_auc = roc_summary(attack_scores_loss(losses), members).auc
    lira = lira_online(
        pool.labels, predict_default(target, pool.features), pool.shadow, n_shadows=16, seed=5
    )
    lira_auc = roc_summary(lira.scores, members).auc

    assert abs(loss_auc - 0.5) < tolerance
    assert abs(lira_auc - 0.5) < tolerance


def test_lira_scores_are_the_gaussian_likelihood_ratio_per_candidate() -> None:
    rng = np.random.default_rng(7)
    labels = (rng.random(12) < 0.4).astype(np.float64)
    target = rng.uniform(0.05, 0.95, 12)
    shadow_predictions = rng.uniform(0.05, 0.95, (12, 8))

    lira = lira_online(
        labels, target, lambda mask, j: shadow_predictions[:, j], n_shadows=8, seed=1
    )

    phi = logit_confidence(labels[:, None].repeat(8, 1).ravel(), shadow_predictions.ravel())
    phi = phi.reshape(12, 8)
    target_phi = logit_confidence(labels, target)
    inside, outside = lira.membership, ~lira.membership
    mean_in = np.array([phi[i, inside[i]].mean() for i in range(12)])
    mean_out = np.array([phi[i, outside[i]].mean() for i in range(12)])
    std_in = np.sqrt(sum(((phi[i, inside[i]] - mean_in[i]) ** 2).sum() for i in range(12)) / 36)
    std_out = np.sqrt(sum(((phi[i, outside[i]] - mean_out[i]) ** 2).sum() for i in range(12)) / 36)
    expected = norm.logpdf(target_phi, mean_in, std_in) - norm.logpdf(target_phi, mean_out, std_out)
    np.testing.assert_allclose(lira.scores, expected, rtol=1e-10)
    np.testing.assert_allclose(lira.std_in, std_in)


def test_lira_progress_bar_does_not_change_the_scores() -> None:
    rng = np.random.default_rng(8)
    labels = (rng.random(20) < 0.5).astype(np.float64)
    predictions = rng.uniform(0.1, 0.9, (20, 4))

    quiet = lira_online(labels, predictions[:, 0], lambda m, j: predictions[:, j], 4, seed=2)
    shown = lira_online(
        labels, predictions[:, 0], lambda m, j: predictions[:, j], 4, seed=2, progress=True
    )

    np.testing.assert_array_equal(quiet.scores, shown.scores)


def test_lira_names_the_shadow_whose_predictions_are_malformed() -> None:
    labels = np.zeros(10)

    with pytest.raises(ValueError, match=r"shadow 0.*shape"):
        lira_online(labels, np.full(10, 0.5), lambda mask, j: np.full(9, 0.5), n_shadows=4)
    with pytest.raises(ValueError, match="variance"):
        lira_online(labels, np.full(10, 0.5), lambda m, j: np.full(10, 0.5), variance="local")


def test_lira_survives_a_deterministic_learner_with_zero_spread() -> None:
    labels = np.array([0, 1] * 10, dtype=np.float64)

    lira = lira_online(
        labels, np.where(labels == 1, 1.0, 0.0), lambda mask, j: np.where(mask, labels, 0.5), 4
    )

    assert np.isfinite(lira.scores).all()
    json.dumps(lira.to_json())


# ------------------------------------------------------------------ ground truth and helpers


def test_membership_split_takes_exactly_half_and_repeats_with_the_seed() -> None:
    first = membership_split(101, seed=9)

    assert first.dtype == np.bool_ and first.sum() == 50
    np.testing.assert_array_equal(first, membership_split(101, seed=9))
    assert not np.array_equal(first, membership_split(101, seed=10))


def test_shadow_membership_balances_every_candidate_and_every_shadow() -> None:
    membership = shadow_membership(101, 16, seed=0)

    assert membership.shape == (101, 16)
    assert (membership.sum(axis=1) == 8).all()
    assert set(membership.sum(axis=0)) == {50, 51}
    assert not np.array_equal(membership[:, 0], membership[:, 2])


@pytest.mark.parametrize("n_shadows", [2, 3, 15])
def test_shadow_membership_rejects_shadow_counts_without_in_and_out_spread(n_shadows) -> None:
    with pytest.raises(ValueError, match="n_shadows must be an even number >= 4"):
        shadow_membership(10, n_shadows, seed=0)


def test_confidences_are_clipped_at_float32_resolution() -> None:
    labels = np.array([1, 1, 0, 0])
    probabilities = np.array([1.0, 0.5, 1.0, 0.0])

    phi = logit_confidence(labels, probabilities)
    losses = binary_cross_entropy(labels, probabilities)

    assert np.isfinite(phi).all() and np.isfinite(losses).all()
    assert phi[0] == -phi[2] == pytest.approx(math.log((1 - PROBABILITY_FLOOR) / PROBABILITY_FLOOR))
    assert phi[1] == 0.0 and losses[1] == pytest.approx(math.log(2))


def test_confidence_rejects_probabilities_outside_the_unit_interval() -> None:
    with pytest.raises(ValueError, match=r"probabilities must be finite probabilities in \[0, 1\]"):
        logit_confidence(np.array([0, 1]), np.array([0.5, 1.2]))
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        logit_confidence(np.array([0, 2]), np.array([0.5, 0.5]))


# ------------------------------------------------------------------ the ROC summary


def test_tpr_at_fpr_interpolates_across_a_tie_on_a_hand_built_roc() -> None:
    # 200 non-members scored 0..199; 10 members above all, 10 tied with the top non-member
    # (score 199), 5 between the 2nd and 3rd non-member, 75 at the bottom.
    nonmember_scores = np.arange(200.0)
    member_scores = np.r_[np.full(10, 1_000.0), np.full(10, 199.0), np.full(5, 197.5), -np.ones(75)]
    scores = np.r_[member_scores, nonmember_scores]
    is_member = np.r_[np.ones(100, bool), np.zeros(200, bool)]

    result = roc_summary(scores, is_member)

    # Vertices: (0, .10) -> tie -> (.005, .20) -> (.010, .20) -> (.010, .25) -> (.015, .25).
    # At FPR .001 the tie segment gives .10 + .10 * (.001 / .005) = .12; at .01 the top of the
    # vertical run counts.
    assert result.tpr_at_0_1_percent_fpr == pytest.approx(0.12)
    assert result.tpr_at_1_percent_fpr == pytest.approx(0.25)
    assert result.auc == pytest.approx(roc_auc_score(is_member, scores))
    assert (result.n_members, result.n_nonmembers) == (100, 200)


def test_tpr_at_fpr_takes_the_top_of_a_vertical_run() -> None:
    fpr = np.array([0.0, 0.0, 0.0, 0.5, 1.0])
    tpr = np.array([0.0, 0.3, 0.6, 0.8, 1.0])

    values = tpr_at_fpr(fpr, tpr, [0.0, 0.25, 1.0])

    np.testing.assert_allclose(values, [0.6, 0.7, 1.0])


def test_roc_curve_is_thinned_to_a_log_grid_on_the_true_curve() -> None:
    rng = np.random.default_rng(0)
    scores = np.r_[rng.normal(1.0, 1.0, 3_000), rng.normal(0.0, 1.0, 3_000)]
    is_member = np.r_[np.ones(3_000, bool), np.zeros(3_000, bool)]

    result = roc_summary(scores, is_member)

    fpr, tpr = np.array(result.fpr), np.array(result.tpr)
    assert len(fpr) == MAX_CURVE_POINTS
    assert fpr[0] == 0.0 and fpr[1] == pytest.approx(1 / 3_000) and fpr[-1] == 1.0
    assert (np.diff(fpr) > 0).all() and (np.diff(tpr) >= 0).all()
    assert result.tpr_at_1_percent_fpr == pytest.approx(np.interp(0.01, fpr, tpr), abs=0.01)


def test_roc_summary_accepts_infinite_scores_and_serialises_to_plain_json() -> None:
    scores = np.array([np.inf, 3.0, 1.0, -np.inf])
    is_member = np.array([True, False, True, False])

    result = roc_summary(scores, is_member)
    payload = json.loads(json.dumps(result.to_json()))

    assert result.auc == pytest.approx(0.75)
    assert payload["auc"] == pytest.approx(0.75)
    assert payload["roc"]["fpr"][0] == 0.0 and payload["roc"]["tpr"][-1] == 1.0


@pytest.mark.parametrize(
    ("scores", "is_member", "message"),
    [
        (np.array([0.1, np.nan]), np.array([True, False]), "NaN"),
        (np.array([0.1, 0.2]), np.array([1, 0]), "is_member must be a bool array"),
        (np.array([0.1, 0.2]), np.array([True, True]), "both members and non-members"),
        (np.ones((2, 2)), np.ones((2, 2), bool), "1-D"),
    ],
)
def test_roc_summary_rejects_bad_input_by_name(scores, is_member, message) -> None:
    with pytest.raises(ValueError, match=message):
        roc_summary(scores, is_member)


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    ranks=arrays(np.int64, st.integers(4, 60), elements=st.integers(-20, 20)),
)
def test_roc_summary_is_invariant_to_strictly_increasing_transforms(data, ranks) -> None:
    is_member = data.draw(arrays(np.bool_, len(ranks)))
    if is_member.all() or not is_member.any():
        is_member[0] = not is_member[0]
    # Any strictly increasing map of the 41 possible values: cumulated positive random gaps.
    gaps = data.draw(arrays(np.float64, 41, elements=st.floats(1e-3, 1e3)))
    increasing = np.cumsum(gaps) - data.draw(st.floats(-1e4, 1e4))

    before = roc_summary(ranks.astype(np.float64), is_member)
    after = roc_summary(increasing[ranks + 20], is_member)

    assert before == after
