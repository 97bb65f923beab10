"""Membership inference on a released default model: the loss-threshold attack and online LiRA.

Both attacks turn per-candidate evidence into a score (higher = more likely a training member);
`roc_summary` evaluates any such score against the known membership, so the two attacks share one
evaluation and differ only in how they score.

The standard experiment (Carlini et al., "Membership Inference Attacks From First Principles",
S&P 2022): the target model is trained on a random half of a candidate pool
(`membership_split`), so the ground truth is known; the attacker scores every candidate.

Array shapes: n = candidates in the pool, s = shadow models.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata
from sklearn.metrics import roc_curve

from clients.streams import Stream, generator

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]

ShadowTrainer = Callable[[BoolArray, int], npt.ArrayLike]
"""`train_and_score(member_mask (n,) bool, shadow_index) -> (n,) probability of default`.

Trains one shadow model on the candidates where `member_mask` is True, the way the target was
trained (central, one firm, or a federated run in process), and predicts every candidate.
"""

Variance = Literal["global", "per_example"]

FPR_LEVELS: tuple[float, float] = (0.001, 0.01)
"""The low false-positive rates at which membership leakage is reported (0.1 % and 1 %)."""

MAX_CURVE_POINTS = 500
"""ROC points kept for plotting; the summary numbers always use the full curve."""

PROBABILITY_FLOOR = float(np.finfo(np.float32).epsneg)
"""Confidences are clipped to [floor, 1 - floor]: the models predict in float32, whose largest
value below 1 is 1 - epsneg, so a confidence closer to 0 or 1 carries no information."""

MIN_SHADOW_STD = 1e-6
"""Lower bound on the Gaussians' spread, in logit units: a deterministic learner (every IN shadow
gives the same confidence) would otherwise divide by zero. It is at the float32 resolution of the
logit-scaled confidence, so it never reorders candidates that real spread separates."""

# ------------------------------------------------------------------------------ inputs


def _check_seed(seed: int) -> None:
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")


def _labels_and_probabilities(
    labels: npt.ArrayLike, probabilities: npt.ArrayLike, what: str = "probabilities"
) -> tuple[FloatArray, FloatArray]:
    y = np.asarray(labels)
    p = np.asarray(probabilities, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D (n,), got shape {y.shape}")
    if p.shape != y.shape:
        raise ValueError(f"{what} must have the labels' shape {y.shape}, got {p.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1 (default indicator)")
    if not (np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()):
        raise ValueError(f"{what} must be finite probabilities in [0, 1]")
    return y.astype(np.float64), p


def true_label_confidence(labels: npt.ArrayLike, probabilities: npt.ArrayLike) -> FloatArray:
    """The probability the model gives the candidate's own label, clipped to float32 resolution.

    labels: (n,) in {0, 1}; probabilities: (n,) predicted probability of default. Returns (n,).
    """
    y, p = _labels_and_probabilities(labels, probabilities)
    confidence = np.where(y == 1.0, p, 1.0 - p)
    return np.clip(confidence, PROBABILITY_FLOOR, 1.0 - PROBABILITY_FLOOR)


def logit_confidence(labels: npt.ArrayLike, probabilities: npt.ArrayLike) -> FloatArray:
    """φ = log(p / (1 − p)) of the true label's probability p: LiRA's statistic, shape (n,).

    The logit makes the confidence of a shadow model approximately Gaussian across shadows, which
    is what the likelihood-ratio test assumes.
    """
    confidence = true_label_confidence(labels, probabilities)
    return np.log(confidence) - np.log1p(-confidence)


def binary_cross_entropy(labels: npt.ArrayLike, probabilities: npt.ArrayLike) -> FloatArray:
    """Per-candidate loss −log p(true label), shape (n,), for models known only by predictions."""
    return -np.log(true_label_confidence(labels, probabilities))


def attack_scores_loss(losses: npt.ArrayLike) -> FloatArray:
    """Loss-threshold attack (Yeom et al., CSF 2018): training members have lower loss.

    losses: (n,) per-candidate loss of the target model. Returns (n,) scores, higher = member.
    """
    values = np.asarray(losses, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"losses must be 1-D (n,), got shape {values.shape}")
    if np.isnan(values).any():
        raise ValueError("losses must not contain NaN")
    return -values


# ------------------------------------------------------------------------------ ground truth


def membership_split(n: int, seed: int) -> BoolArray:
    """Which candidates the target model trains on: exactly ⌊n/2⌋ of them, drawn at random.

    Returns (n,) bool. Because the half is random and independent of everything else, the
    membership AUC of any attack on a model that ignores its training data is exactly the
    Mann–Whitney null distribution around 0.5.
    """
    if n < 2:
        raise ValueError(f"n must be >= 2 candidates, got {n}")
    _check_seed(seed)
    rng = generator(Stream.MEMBERSHIP_SPLIT, seed)
    return rng.permutation(np.arange(n) < n // 2)


def shadow_membership(n_examples: int, n_shadows: int, seed: int) -> BoolArray:
    """Training sets of the shadow models as a (n_examples, n_shadows) boolean matrix.

    Shadows come in complementary pairs (columns 2k and 2k+1 split the pool into a random half
    and the rest), so every shadow trains on half the pool and every candidate is IN for exactly
    n_shadows / 2 shadows and OUT for the others: no candidate lacks either Gaussian.
    """
    if n_examples < 2:
        raise ValueError(f"n_examples must be >= 2, got {n_examples}")
    if n_shadows < 4 or n_shadows % 2:
        raise ValueError(f"n_shadows must be an even number >= 4, got {n_shadows}")
    _check_seed(seed)
    rng = generator(Stream.SHADOW_MEMBERSHIP, seed)
    first_half = np.arange(n_examples) < n_examples // 2
    halves = rng.permuted(np.tile(first_half[:, None], (1, n_shadows // 2)), axis=0)
    membership = np.empty((n_examples, n_shadows), dtype=bool)
    membership[:, 0::2] = halves
    membership[:, 1::2] = ~halves
    return membership


# ------------------------------------------------------------------------------ evaluation


def _json_float(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _json_array(values: npt.ArrayLike) -> list[float | None]:
    """A 1-D array as plain floats, NaN and ±inf as None (JSON has neither)."""
    return [_json_float(v) for v in np.asarray(values, dtype=np.float64).ravel().tolist()]


@dataclass(frozen=True)
class MembershipResult:
    """How well a membership score separates members from non-members.

    `fpr`/`tpr` are points on the interpolated ROC (at most MAX_CURVE_POINTS, on a log-FPR grid
    when the full curve is longer), for plotting on log axes.
    """

    auc: float
    tpr_at_0_1_percent_fpr: float
    tpr_at_1_percent_fpr: float
    n_members: int
    n_nonmembers: int
    fpr: tuple[float, ...]
    tpr: tuple[float, ...]

    @property
    def smallest_resolvable_fpr(self) -> float:
        """One false positive: below this FPR the TPR is interpolated towards the (0, ·) vertex."""
        return 1.0 / self.n_nonmembers

    def to_json(self) -> dict[str, Any]:
        return {
            "auc": _json_float(self.auc),
            "tpr_at_0_1_percent_fpr": _json_float(self.tpr_at_0_1_percent_fpr),
            "tpr_at_1_percent_fpr": _json_float(self.tpr_at_1_percent_fpr),
            "n_members": self.n_members,
            "n_nonmembers": self.n_nonmembers,
            "roc": {"fpr": _json_array(self.fpr), "tpr": _json_array(self.tpr)},
        }


def _roc_vertices(scores: FloatArray, is_member: BoolArray) -> tuple[FloatArray, FloatArray]:
    """ROC vertices, one per distinct score, from (0, 0) to (1, 1).

    Scores are replaced by their dense ranks first: the ROC depends only on order and ties, and
    ranks make ±inf scores (a zero-loss candidate) legal.
    """
    ranks = rankdata(scores, method="dense")
    fpr, tpr, _ = roc_curve(is_member, ranks, drop_intermediate=False)
    return fpr, tpr


def tpr_at_fpr(fpr: FloatArray, tpr: FloatArray, targets: npt.ArrayLike) -> FloatArray:
    """The best TPR reachable at each target FPR, on the ROC of a discrete score.

    Between two adjacent vertices (thresholds) the attacker reaches every point of the segment
    by flipping a biased coin between the two thresholds (ties are broken at random), so the ROC
    is the piecewise-linear curve through the vertices and the TPR is read off it by linear
    interpolation. Where the curve is vertical (one FPR, several TPRs) the highest TPR counts.
    Unlike LiRA's reference code (last vertex with FPR strictly below the target), this neither
    understates the TPR when the target falls between vertices nor depends on how ties fall.
    """
    last_of_run = np.r_[fpr[1:] != fpr[:-1], True]
    return np.interp(np.asarray(targets, dtype=np.float64), fpr[last_of_run], tpr[last_of_run])


def _thinned_curve(
    fpr: FloatArray, tpr: FloatArray, n_nonmembers: int, max_points: int
) -> tuple[FloatArray, FloatArray]:
    if len(fpr) <= max_points:
        return fpr, tpr
    grid = np.r_[0.0, np.geomspace(1.0 / n_nonmembers, 1.0, max_points - 1)]
    return grid, tpr_at_fpr(fpr, tpr, grid)


def roc_summary(
    scores: npt.ArrayLike, is_member: npt.ArrayLike, max_curve_points: int = MAX_CURVE_POINTS
) -> MembershipResult:
    """AUC, TPR at 0.1 % and 1 % FPR, and a plotting ROC of a membership score.

    scores: (n,) higher = more likely member (±inf allowed, NaN not); is_member: (n,) bool ground
    truth. The AUC is the area under the interpolated ROC, i.e. ties count one half.
    """
    values = np.asarray(scores, dtype=np.float64)
    truth = np.asarray(is_member)
    if values.ndim != 1:
        raise ValueError(f"scores must be 1-D (n,), got shape {values.shape}")
    if truth.shape != values.shape or truth.dtype != np.bool_:
        raise ValueError(
            f"is_member must be a bool array of the scores' shape {values.shape}, "
            f"got {truth.dtype} {truth.shape}"
        )
    if np.isnan(values).any():
        raise ValueError("scores must not contain NaN")
    n_members = int(truth.sum())
    n_nonmembers = int(truth.size - n_members)
    if n_members == 0 or n_nonmembers == 0:
        raise ValueError(
            f"is_member needs both members and non-members, got {n_members} and {n_nonmembers}"
        )
    if max_curve_points < 3:
        raise ValueError(f"max_curve_points must be >= 3, got {max_curve_points}")
    fpr, tpr = _roc_vertices(values, truth)
    low, one_percent = tpr_at_fpr(fpr, tpr, FPR_LEVELS)
    curve_fpr, curve_tpr = _thinned_curve(fpr, tpr, n_nonmembers, max_curve_points)
    return MembershipResult(
        auc=float(np.trapezoid(tpr, fpr)),
        tpr_at_0_1_percent_fpr=float(low),
        tpr_at_1_percent_fpr=float(one_percent),
        n_members=n_members,
        n_nonmembers=n_nonmembers,
        fpr=tuple(float(v) for v in curve_fpr),
        tpr=tuple(float(v) for v in curve_tpr),
    )


# ------------------------------------------------------------------------------ LiRA


@dataclass(frozen=True, eq=False)
class LiraScores:
    """Online LiRA's output: the membership score and the Gaussians behind it.

    scores: (n,) log-likelihood ratio log N(φ; μ_in, σ_in) − log N(φ; μ_out, σ_out), higher =
    member. target_confidence: (n,) φ of the target model. shadow_confidence: (n, s) φ of each
    shadow. membership: (n, s) True where the candidate trained shadow j. mean_in, mean_out,
    std_in, std_out: (n,) (with a global variance, std_* repeat one value).
    """

    scores: FloatArray
    target_confidence: FloatArray
    shadow_confidence: FloatArray
    membership: BoolArray
    mean_in: FloatArray
    mean_out: FloatArray
    std_in: FloatArray
    std_out: FloatArray
    variance: Variance

    def __post_init__(self) -> None:
        for name in (
            "scores",
            "target_confidence",
            "shadow_confidence",
            "membership",
            "mean_in",
            "mean_out",
            "std_in",
            "std_out",
        ):
            getattr(self, name).setflags(write=False)

    @property
    def n_shadows(self) -> int:
        return int(self.membership.shape[1])

    def to_json(self) -> dict[str, Any]:
        return {
            "variance": self.variance,
            "n_shadows": self.n_shadows,
            "scores": _json_array(self.scores),
            "target_confidence": _json_array(self.target_confidence),
            "mean_in": _json_array(self.mean_in),
            "mean_out": _json_array(self.mean_out),
            "std_in": _json_array(self.std_in),
            "std_out": _json_array(self.std_out),
            "membership": self.membership.astype(int).tolist(),
        }


def _gaussian_fit(
    confidence: FloatArray, mask: BoolArray, variance: Variance
) -> tuple[FloatArray, FloatArray]:
    """Per-candidate mean and spread of φ over the shadows selected by `mask`, (n,) each.

    The global spread pools every candidate's deviations from its own mean (one degree of freedom
    per candidate spent on the mean), so it measures shadow-to-shadow noise, not how candidates
    differ from each other.
    """
    count = mask.sum(axis=1)
    mean = np.where(mask, confidence, 0.0).sum(axis=1) / count
    squared = np.where(mask, (confidence - mean[:, None]) ** 2, 0.0)
    if variance == "global":
        std = np.full(len(mean), math.sqrt(squared.sum() / (count.sum() - len(mean))))
    else:
        std = np.sqrt(squared.sum(axis=1) / (count - 1))
    return mean, np.maximum(std, MIN_SHADOW_STD)


def _gaussian_log_density(x: FloatArray, mean: FloatArray, std: FloatArray) -> FloatArray:
    return -np.log(std) - 0.5 * ((x - mean) / std) ** 2 - 0.5 * math.log(2.0 * math.pi)


def lira_online(
    labels: npt.ArrayLike,
    target_probabilities: npt.ArrayLike,
    train_and_score: ShadowTrainer,
    n_shadows: int = 16,
    seed: int = 0,
    variance: Variance = "global",
    progress: bool = False,
) -> LiraScores:
    """Online LiRA (Carlini et al. 2022): a likelihood-ratio test per candidate.

    labels: (n,) true default labels of the candidate pool; target_probabilities: (n,) the
    released model's predicted default probability on the pool. `train_and_score` trains one
    shadow per column of `shadow_membership(n, n_shadows, seed)` and returns (n,) predictions;
    it owns the pool's features and the training recipe, so any regime can be attacked.

    Each candidate's φ is modelled as N(μ_in, σ_in) over the shadows that trained on it and
    N(μ_out, σ_out) over the others, with per-candidate means. `variance="global"` (default) uses
    one σ_in and one σ_out for all candidates: the paper's recommendation when shadows are few
    (a per-candidate variance from 8 IN and 8 OUT values is too noisy to divide by).
    """
    if variance not in ("global", "per_example"):
        raise ValueError(f"variance must be 'global' or 'per_example', got {variance!r}")
    n = len(logit_confidence(labels, target_probabilities))  # bad input fails before training
    membership = shadow_membership(n, n_shadows, seed)
    predictions = np.empty((n, n_shadows), dtype=np.float64)
    for shadow in _shadow_indices(n_shadows, progress):
        scored = np.asarray(train_and_score(membership[:, shadow].copy(), shadow))
        try:
            _labels_and_probabilities(labels, scored)
        except ValueError as error:
            raise ValueError(f"train_and_score for shadow {shadow}: {error}") from error
        predictions[:, shadow] = scored
    return lira_from_shadows(labels, target_probabilities, predictions, membership, variance)


def lira_from_shadows(
    labels: npt.ArrayLike,
    target_probabilities: npt.ArrayLike,
    shadow_probabilities: npt.ArrayLike,
    membership: BoolArray,
    variance: Variance = "global",
) -> LiraScores:
    """Online LiRA from shadows already trained: `lira_online` without the training loop.

    shadow_probabilities: (n, s) each shadow's predicted default probability on the pool;
    membership: (n, s) True where the candidate was in shadow j's data. The membership need
    not come from `shadow_membership` over the candidates: a citizen-level pool gives every row
    of one citizen the same column (`experiments.leakage.citizens`); each candidate must still
    be IN for some shadows and OUT for others.
    """
    if variance not in ("global", "per_example"):
        raise ValueError(f"variance must be 'global' or 'per_example', got {variance!r}")
    target_confidence = logit_confidence(labels, target_probabilities)
    n = len(target_confidence)
    predictions = np.asarray(shadow_probabilities, dtype=np.float64)
    if predictions.ndim != 2 or predictions.shape[0] != n or membership.shape != predictions.shape:
        raise ValueError(
            f"shadow_probabilities and membership must both be (n, s) with n = {n}, got "
            f"{predictions.shape} and {membership.shape}"
        )
    if membership.dtype != np.bool_ or not (membership.any(1) & ~membership.all(1)).all():
        raise ValueError("membership must be bool with every candidate both IN and OUT somewhere")
    shadow_confidence = np.column_stack(
        [logit_confidence(labels, predictions[:, j]) for j in range(predictions.shape[1])]
    )
    mean_in, std_in = _gaussian_fit(shadow_confidence, membership, variance)
    mean_out, std_out = _gaussian_fit(shadow_confidence, ~membership, variance)
    scores = _gaussian_log_density(target_confidence, mean_in, std_in) - _gaussian_log_density(
        target_confidence, mean_out, std_out
    )
    return LiraScores(
        scores=scores,
        target_confidence=target_confidence,
        shadow_confidence=shadow_confidence,
        membership=membership,
        mean_in=mean_in,
        mean_out=mean_out,
        std_in=std_in,
        std_out=std_out,
        variance=variance,
    )


def _shadow_indices(n_shadows: int, progress: bool) -> Iterable[int]:
    """The shadow loop, behind a rich progress bar on stderr when asked (stdout stays data)."""
    if not progress:
        return range(n_shadows)
    from rich.console import Console
    from rich.progress import track

    return track(
        range(n_shadows),
        description="LiRA shadow models",
        total=n_shadows,
        console=Console(stderr=True),
        transient=True,
    )
