"""Server view: what the coordinating server infers about one firm from what it receives.

The probe is the round a semi-honest server learns most from in closed form: the first FedAvg
round from zero weights, in which each firm sends one full-batch logistic-regression gradient
step (FedSGD), packed like the federation's masked vector: [w·g_weights, w·g_bias, w], with
w = n_firm / n_public_bound so every coordinate fits the clipping bound.

At zero weights every prediction is 1/2, so for a firm's gradient g:
- g_bias = 1/2 − ȳ                      → its default rate, exactly;
- g_weights / g_bias = Σ(1/2 − y_i)x_i / Σ(1/2 − y_i), a mean of its feature rows that
  weights non-defaulters +1 and defaulters −1: close to its feature means;
- from one record, g_weights / g_bias = x exactly (gradient inversion).
Without secure aggregation the server applies these to each firm's vector; with it, only to
the sum that `protocol.run_round` hands the server, and the error against each firm's truth is
what the firm kept private. Across rounds, the disaggregation attack (Lam et al., ICML 2021)
solves for individual vectors from sums over changing participant sets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from protocol import SecAggConfig, run_round


def probe_gradient(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Full-batch logistic-loss gradient at zero weights: shape (d + 1,), the bias last.

    features: (rows, d) scaled to [0, 1]; labels: (rows,) in {0, 1}.
    """
    residual = 0.5 - labels.astype(np.float64)  # sigmoid(0) − y
    return np.append(features.T.astype(np.float64) @ residual, residual.sum()) / len(labels)


def pack(gradient: np.ndarray, rows: int, public_bound: int) -> np.ndarray:
    """The vector a firm contributes: its gradient weighted by its share, then the share."""
    weight = rows / public_bound
    return np.append(weight * gradient, weight)


@dataclass(frozen=True)
class Inference:
    """What the server concludes from one received vector (one firm's, or a sum)."""

    default_rate: float
    feature_means: np.ndarray  # (d,)


def infer(vector: np.ndarray) -> Inference:
    """Invert `pack` ∘ `probe_gradient`: weighted mean gradient, then the closed forms above."""
    gradient = vector[:-1] / vector[-1]
    g_weights, g_bias = gradient[:-1], gradient[-1]
    return Inference(default_rate=0.5 - g_bias, feature_means=g_weights / g_bias)


def invert_single_record(gradient: np.ndarray) -> np.ndarray:
    """A record's features from its own logistic gradient: x = g_weights / g_bias (exact)."""
    features: np.ndarray = gradient[:-1] / gradient[-1]
    return features


@dataclass(frozen=True)
class ServerViewResult:
    """Per firm, the server's inference error with individual updates and with the sum only.

    Errors: |default-rate estimate − truth|; mean |feature-mean estimate − truth| over the
    scaled features; max |reconstructed − true| of a single record. Lower = more revealed.
    """

    plain: dict[str, dict[str, float]]
    secagg: dict[str, dict[str, float]]
    survivors: int
    aggregate_exact: bool
    vectors: np.ndarray  # (firms, d + 2): each firm's packed probe, what a plain server receives

    def to_json(self) -> dict[str, object]:
        return {
            "plain": self.plain,
            "secagg": self.secagg,
            "survivors": self.survivors,
            "aggregate_exact": self.aggregate_exact,
        }


def _errors(
    inference: Inference, features: np.ndarray, labels: np.ndarray, single: np.ndarray
) -> dict[str, float]:
    return {
        "default_rate_error": float(abs(inference.default_rate - labels.mean())),
        "feature_mean_error": float(np.mean(np.abs(inference.feature_means - features.mean(0)))),
        "single_record_error": float(np.max(np.abs(single - features[0]))),
    }


def server_view(
    firm_data: dict[str, tuple[np.ndarray, np.ndarray]], public_bound: int, seed: int
) -> ServerViewResult:
    """Run the probe round both ways and measure what the server learns about each firm.

    firm_data: firm -> (features (rows, d) in [0, 1], labels (rows,)). For the single-record
    measure, the firm's probe is replaced by the gradient of its first record alone (a round in
    which one customer's data moved its update), the other firms sending full batches.
    """
    firms = list(firm_data)
    vectors = {
        f: pack(probe_gradient(x, y), len(y), public_bound) for f, (x, y) in firm_data.items()
    }
    config = SecAggConfig(num_clients=len(firms), clip=1.0, scale=2.0**20, modulus_bits=32)
    round_ = run_round(config, [vectors[f] for f in firms], rounding_seed=seed, round_number=0)
    summed = infer(round_.aggregate.float_sum)
    plain: dict[str, dict[str, float]] = {}
    secagg: dict[str, dict[str, float]] = {}
    for index, firm in enumerate(firms):
        x, y = firm_data[firm]
        one = probe_gradient(x[:1], y[:1])
        plain[firm] = _errors(infer(vectors[firm]), x, y, invert_single_record(one))
        single_sum = run_round(
            config,
            [pack(one, 1, public_bound) if f == firm else vectors[f] for f in firms],
            rounding_seed=seed + index + 1,
            round_number=index + 1,
        ).aggregate.float_sum
        secagg[firm] = _errors(summed, x, y, invert_single_record(single_sum[:-1] / single_sum[-1]))
    return ServerViewResult(
        plain=plain,
        secagg=secagg,
        survivors=len(round_.survivors),
        aggregate_exact=round_.exact,
        vectors=np.stack([vectors[f] for f in firms]),
    )


@dataclass(frozen=True)
class Disaggregation:
    """Recovery of individual vectors from sums over changing participant sets."""

    rank: int
    firms: int
    relative_error: float  # ||estimate − truth|| / ||truth|| over all firms' vectors
    completed_round_share: float  # the defence's cost: share of rounds that could run ...
    mean_participants: float  # ... and firms per completed round (fewer = slower learning)

    def to_json(self) -> dict[str, float | int]:
        return {
            "rank": self.rank,
            "firms": self.firms,
            "relative_error": self.relative_error,
            "completed_round_share": self.completed_round_share,
            "mean_participants": self.mean_participants,
        }


def disaggregate(participation: np.ndarray, sums: np.ndarray) -> tuple[np.ndarray, int]:
    """Least-squares individual vectors from round sums.

    participation: (rounds, firms) bool, who is in each round's sum; sums: (rounds, d).
    Returns (firms, d) estimates (minimum-norm where the system is underdetermined) and the
    rank of the participation matrix: with full column rank, constant vectors come back exactly.
    """
    matrix = participation.astype(np.float64)
    estimates, _, rank, _ = np.linalg.lstsq(matrix, sums, rcond=None)
    return estimates, int(rank)


def participation_schedule(
    rounds: int,
    firms: int,
    availability: float,
    policy: str,
    rng: np.random.Generator,
    group_size: int = 2,
    minimum: int = 2,
) -> tuple[np.ndarray, float]:
    """Who takes part in each round under a participation policy, and the share of rounds run.

    Each firm is available in a round with probability `availability`. Policies:
    - "any": every available firm joins (a round runs when at least `minimum` are available);
    - "fixed": a round runs only when every firm is available (the same set every time);
    - "groups": firms are tied in fixed groups of `group_size` that join only all together.
    """
    available = rng.random((rounds, firms)) < availability
    if policy == "any":
        joined = available
        runs = joined.sum(1) >= minimum
    elif policy == "fixed":
        runs = np.asarray(available.all(1))  # numpy types .all(axis) as a scalar or an array
        joined = np.broadcast_to(runs[:, None], available.shape).copy()
    elif policy == "groups":
        group = np.arange(firms) // group_size
        whole = np.stack([available[:, group == g].all(1) for g in np.unique(group)], axis=1)
        joined = whole[:, group]
        runs = joined.sum(1) >= minimum
    else:
        raise ValueError(f"policy must be 'any', 'fixed' or 'groups', got {policy!r}")
    return joined[runs], float(runs.mean())


def disaggregation_attack(
    firm_vectors: np.ndarray, participation: np.ndarray, completed_share: float
) -> Disaggregation:
    """Attack the sums the server sees under `participation` (rounds, firms).

    firm_vectors: (firms, d), each firm's vector, the same every round (the part Lam et al.
    exploit: a firm's weight and metric sums, or its average update over rounds).
    """
    sums = participation.astype(np.float64) @ firm_vectors
    estimates, rank = disaggregate(participation, sums)
    error = np.linalg.norm(estimates - firm_vectors) / np.linalg.norm(firm_vectors)
    return Disaggregation(
        rank=rank,
        firms=firm_vectors.shape[0],
        relative_error=float(error),
        completed_round_share=completed_share,
        mean_participants=float(participation.sum(1).mean()) if len(participation) else 0.0,
    )
