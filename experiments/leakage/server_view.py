"""Server view: what the coordinating server infers about each firm from what a run sent it.

Measured on the federation's own run, from `server/rounds.py`'s `received.jsonl`: per round the
sum the server obtained and, in the clear (`secagg = "none"`), each firm's own contribution
vector (layout in `clients/participant.py`). The inference is the one the vector offers in
closed form, stated so that it can be checked:

- a firm's size: the vector's weight entry is n / S with S the public `weight_scale`, so
  n = weight · S, exactly for one firm's vector; from a sum of k firms, the mean size;
- a firm's default rate: its training Brier score B = brier / weight (after its local
  training), read as a rate through B = ȳ (1 − ȳ), i.e. ȳ = (1 − √(1 − 4B)) / 2 (the root below
  1/2: defaulters are the minority in a credit book). A model that ranks makes B smaller than
  ȳ (1 − ȳ) by its resolution, so the reading is low (by about 15 % at pilot8 scale, the same
  for every firm, so it still ranks them); one barely trained makes B larger. It is the same
  reading for a firm's vector and for a sum.

Round 1 is read: the update every firm trains from the same agreed weights, before the server
has averaged anything. With secure aggregation the server has only the sum, so every firm gets
the same guess; the heterogeneity baseline is the best such shared guess (the one that minimises
the mean error over the firms, which the server cannot know), so a server that only sees sums
cannot beat it in a round every firm joins. Without secure aggregation it reads each firm.

Across rounds, the disaggregation attack (Lam et al., ICML 2021) solves for individual vectors
from sums over changing participant sets: on the run's own sums and participant sets
(`real_disaggregation`; a run where every firm joins every round gives a rank-1 system and
nothing back), and on the plain run's real first-round vectors under simulated participation
policies that say what a defence costs (`participation_schedule`, `disaggregation_attack`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from clients.participant import CONTRIBUTION_TAIL
from clients.streams import Stream, generator
from experiments.world.tables import ID, LABEL, World

if TYPE_CHECKING:  # the regimes import torch; the server view needs only the split's methods
    from experiments.regimes.standalone import Holdout

WEIGHT_AT = -len(CONTRIBUTION_TAIL)
"""Index of the weight entry (n / S) in a contribution vector."""
BRIER_AT = WEIGHT_AT + CONTRIBUTION_TAIL.index("brier")
"""Index of the training Brier sum (/ S)."""


@dataclass(frozen=True)
class ReceivedRound:
    """What the server received in one training round."""

    round_number: int
    contributors: list[int]
    aggregate: np.ndarray
    individual: dict[int, np.ndarray]  # node -> its vector; empty under secure aggregation


def read_received(path: Path) -> list[ReceivedRound]:
    """The rounds of a run's `received.jsonl`, in order; a round written twice (a crash between
    the file and the checkpoint, then a resume) keeps its last line."""
    rounds: dict[int, ReceivedRound] = {}
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        entry = json.loads(line)
        rounds[int(entry["round"])] = ReceivedRound(
            round_number=int(entry["round"]),
            contributors=[int(n) for n in entry["contributors"]],
            aggregate=np.asarray(entry["aggregate"], dtype=np.float64),
            individual={
                int(n): np.asarray(v, dtype=np.float64) for n, v in entry["individual"].items()
            },
        )
    return [rounds[r] for r in sorted(rounds)]


@dataclass(frozen=True)
class FirmFigures:
    """A firm's training rows and their default rate: the truth, or the server's reading."""

    rows: float
    default_rate: float


def rate_from_brier(brier_per_row: float) -> float:
    """ȳ from B = ȳ (1 − ȳ), the root below 1/2 (B above 1/4 reads as 1/2)."""
    return float((1.0 - np.sqrt(max(0.0, 1.0 - 4.0 * brier_per_row))) / 2.0)


def read_vector(vector: np.ndarray, weight_scale: float, firms: int = 1) -> FirmFigures:
    """The server's reading of one firm's vector (`firms` = 1) or of a sum over `firms`."""
    weight = float(vector[WEIGHT_AT])
    if not weight > 0:
        return FirmFigures(rows=0.0, default_rate=float("nan"))
    return FirmFigures(
        rows=weight * weight_scale / firms,
        default_rate=rate_from_brier(float(vector[BRIER_AT]) / weight),
    )


METRICS = ("default_rate_error", "size_error")


def errors(guess: FirmFigures, truth: FirmFigures) -> dict[str, float]:
    """|inferred − true default rate|, and |inferred − true rows| / true rows."""
    return {
        "default_rate_error": abs(guess.default_rate - truth.default_rate),
        "size_error": abs(guess.rows - truth.rows) / truth.rows,
    }


def match_nodes(sizes: Mapping[int, float], truth: Mapping[str, FirmFigures]) -> dict[int, str]:
    """Node -> firm, pairing the sizes the nodes reveal with the firms' sizes one to one.

    The evaluator needs it, not the server (which knows each node's firm from its registration):
    simulated nodes carry random ids, and a firm's vector in the clear gives its size to the row.
    """
    nodes, firms = list(sizes), list(truth)
    cost = np.abs(
        np.array([sizes[n] for n in nodes])[:, None] - np.array([truth[f].rows for f in firms])
    )
    rows, columns = linear_sum_assignment(cost)
    return {nodes[r]: firms[c] for r, c in zip(rows, columns, strict=True)}


def heterogeneity_baseline(truth: Mapping[str, FirmFigures]) -> dict[str, dict[str, float]]:
    """Per firm, the errors of the best guess shared by every firm (per metric, the firm value
    that minimises the mean error: the mean absolute error is smallest at a data point)."""
    firms = list(truth)
    best: dict[str, FirmFigures] = {}
    for metric in METRICS:
        candidates = [truth[f] for f in firms]
        best[metric] = min(
            candidates,
            key=lambda c: float(np.mean([errors(c, truth[f])[metric] for f in firms])),
        )
    return {f: {m: errors(best[m], truth[f])[m] for m in METRICS} for f in firms}


def first_round_view(
    received: ReceivedRound, truth: Mapping[str, FirmFigures], weight_scale: float
) -> dict[str, dict[str, float]]:
    """Per firm, the server's errors from round 1 as received: each firm's own vector where it
    has one, else the round's sum (a firm that sat the round out gets the sum's reading too)."""
    pooled = read_vector(received.aggregate, weight_scale, len(received.contributors))
    readings = {n: read_vector(v, weight_scale) for n, v in received.individual.items()}
    firm_of = match_nodes({n: r.rows for n, r in readings.items()}, truth) if readings else {}
    guess = {f: pooled for f in truth} | {firm_of[n]: r for n, r in readings.items()}
    return {f: errors(guess[f], truth[f]) for f in truth}


def mean_over_firms(per_firm: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Each metric's mean over the firms."""
    return {m: float(np.mean([e[m] for e in per_firm.values()])) for m in METRICS}


def real_disaggregation(
    rounds: list[ReceivedRound],
    truth: Mapping[str, FirmFigures],
    weight_scale: float,
    planned_rounds: int,
) -> dict[str, float]:
    """The disaggregation attack on a run's own sums and participant sets.

    Least squares per node over the rounds' sums; each node's estimate is read as a vector
    (`read_vector`). Reported: the rank of the participation matrix (at the number of firms,
    every constant entry, such as a firm's size, comes back up to quantisation), the size and
    default-rate errors of the estimates, the rounds the server saw over those planned, and the
    mean firms per round. Nodes are paired with firms one to one by size (`match_nodes`), which
    flatters the attack only where its estimates are poor: the server itself knows which node
    is which firm.
    """
    nodes = sorted({n for r in rounds for n in r.contributors})
    participation = np.array([[n in r.contributors for n in nodes] for r in rounds], dtype=bool)
    sums = np.stack([r.aggregate for r in rounds])
    estimates, rank = disaggregate(participation, sums)
    readings = {n: read_vector(estimates[i], weight_scale) for i, n in enumerate(nodes)}
    firm_of = match_nodes({n: r.rows for n, r in readings.items()}, truth)
    by_firm = {firm_of[n]: errors(r, truth[firm_of[n]]) for n, r in readings.items()}
    per_firm = {f: by_firm[f] for f in truth if f in by_firm}  # summed in firm order: repeatable
    return {
        "rank": float(rank),
        "firms": float(len(truth)),
        **mean_over_firms(per_firm),
        "completed_round_share": len(rounds) / planned_rounds,
        "mean_participants": float(participation.sum(1).mean()),
    }


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
    # Firms with the same participation are indistinguishable; the minimum-norm solution gives
    # each of them an equal part of their group's total. Solving per group (groups in sorted
    # order) makes the estimates independent of the column order, which for simulated nodes
    # follows their random ids: the same seed then gives the same figures to the last bit.
    patterns, group = np.unique(participation.T.astype(np.float64), axis=0, return_inverse=True)
    counts = np.bincount(group.ravel()).astype(np.float64)
    scaled = patterns.T * np.sqrt(counts)  # min ||x||^2 = sum over groups of total^2 / count
    solved, _, rank, _ = np.linalg.lstsq(scaled, sums, rcond=None)
    totals = solved * np.sqrt(counts)[:, None]
    return totals[group.ravel()] / counts[group.ravel()][:, None], int(rank)


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


DISAGGREGATION_ROUNDS = 20
"""Rounds the server observes in the simulated participation policies."""
DISAGGREGATION_AVAILABILITY = 0.75
"""Chance that a firm is online in a round (its dropouts change the participant set)."""


def firm_truth(world: World, holdout: Holdout) -> dict[str, FirmFigures]:
    """Each firm's training rows (what a federated firm trains on) and their default rate."""
    truth = {}
    for firm, table in world.firms.items():
        labels = table[LABEL].to_numpy()[holdout.is_fit(table[ID].to_numpy())]
        truth[firm] = FirmFigures(rows=float(len(labels)), default_rate=float(labels.mean()))
    return truth


SERVER_VIEW_RUNS = {"plain": "federated_plain", "secagg": "federated_secagg"}
"""The federated regimes whose runs the server view reads: in the clear, and through ours
(`experiments.regimes.federated`'s names; that module imports Flower, so not from there)."""


def server_view_figures(
    world: World,
    holdout: Holdout,
    weight_scale: float,
    seed: int,
    runs: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any] | None:
    """What the coordinating server inferred about each firm in this seed's federated runs.

    `runs`: regime -> its output's info (run directory, history). From round 1 as received, in
    the clear and through secure aggregation, beside the heterogeneity baseline; the
    disaggregation attack on the secure run's own sums (the plain run's when there is none);
    and the participation policies on the plain run's real round-1 vectors. None when neither
    regime ran.
    """
    from server.rounds import RECEIVED_FILE  # Flower loads only when a federated regime ran

    received = {
        view: read_received(Path(runs[regime]["run_dir"]) / RECEIVED_FILE)
        for view, regime in SERVER_VIEW_RUNS.items()
        if regime in runs
    }
    if not received:
        return None
    truth, scale = firm_truth(world, holdout), weight_scale
    per_firm = {"baseline": heterogeneity_baseline(truth)}
    for view, rounds in received.items():
        per_firm[view] = first_round_view(rounds[0], truth, scale)
    attacked = "secagg" if "secagg" in received else "plain"
    planned = len(runs[SERVER_VIEW_RUNS[attacked]]["history"])
    disaggregation: dict[str, Any] = {
        "run": real_disaggregation(received[attacked], truth, scale, planned)
    }
    if "plain" in received:
        first = received["plain"][0].individual
        # In firm order, not node order: simulated node ids are random per run, and the seeded
        # schedules below must meet the same firms in every run of the same seed.
        sizes = {node: read_vector(vector, scale).rows for node, vector in first.items()}
        firm_of = match_nodes(sizes, truth)
        order = {firm: i for i, firm in enumerate(truth)}
        vectors = np.stack([first[n] for n in sorted(first, key=lambda n: order[firm_of[n]])])
        rng = generator(Stream.DISAGGREGATION, seed)
        disaggregation["policies"] = {}
        for policy in ("any", "fixed", "groups"):
            participation, share = participation_schedule(
                DISAGGREGATION_ROUNDS, len(vectors), DISAGGREGATION_AVAILABILITY, policy, rng
            )
            attack = disaggregation_attack(vectors, participation, share)
            disaggregation["policies"][policy] = attack.to_json()
    return {
        "first_round": {
            **{view: mean_over_firms(errors) for view, errors in per_firm.items()},
            "per_firm": per_firm,
        },
        "disaggregation": disaggregation,
    }
