"""Inference by party for one seed, and the score consumer's inference for one regime.

`party_figures` lays each party's holdings out by citizen (`inference.Holding`) and runs the
same learner for every party (`inference.infer`); `consumer_figures` does the same for a
released score at three levels of attacker knowledge, and infers each firm's customership from
the score (cross-context inference: a national score may reveal which services a citizen uses).
"""

from __future__ import annotations

import itertools
from dataclasses import fields
from typing import Any

import numpy as np
import numpy.typing as npt

from clients.streams import Stream, generator
from experiments.config import InferenceSection
from experiments.leakage.attribute import score_design
from experiments.leakage.inference import (
    Holding,
    InferenceFigure,
    Population,
    infer,
    kfold,
    one_hot,
    server_inference,
)
from experiments.regimes.standalone import Holdout
from experiments.world.tables import ID, World

KNOWLEDGE_LEVELS = ("kyc", "quasi_identifiers", "quasi_identifiers_and_memberships")
"""What a score consumer knows beside the score: the QIs every firm's KYC holds (age, sex,
region in the synthetic world); all QIs; all QIs and which firms the citizen uses."""
PAIR_MAX, PAIR_MEDIAN = "colluding_pair:max", "colluding_pair:median"

Named = dict[str, dict[str, Any]]


def _named(names: list[str], computed: list[InferenceFigure]) -> dict[str, dict[str, Any]]:
    return {name: figure.to_json() for name, figure in zip(names, computed, strict=True)}


def _over_pairs(per_pair: list[list[InferenceFigure]]) -> tuple[list[Any], list[Any]]:
    """Per target: the pair with the highest AUC (its whole figure), and the median over pairs
    of every field (null where no pair has it)."""
    best, median = [], []
    for target in zip(*per_pair, strict=True):
        aucs = np.array([f.auc for f in target])
        best.append(target[int(np.argmax(np.nan_to_num(aucs, nan=-1.0)))].to_json())
        values = {key: np.array([float(getattr(f, key)) for f in target]) for key in _FIELDS}
        median.append(
            {
                key: None if np.isnan(column).all() else float(np.nanmedian(column))
                for key, column in values.items()
            }
        )
    return best, median


_FIELDS = tuple(f.name for f in fields(InferenceFigure))


def party_figures(world: World, seed: int, settings: InferenceSection) -> Named:
    """Party -> target -> figure (`InferenceFigure.to_json`), for one seed's world."""
    population = Population.of(world)
    ids = world.truth[ID].to_numpy()
    order = generator(Stream.INFERENCE_ROWS, seed).permutation(len(ids))
    firms = {f: Holding.of(t, world.feature_columns(f), ids) for f, t in world.firms.items()}
    government = Holding.of(world.government, world.columns_of("government", {"government"}), ids)
    names, professions = population.names, population.professions

    def run(holds: npt.NDArray[np.bool_], held: Any) -> tuple[list[InferenceFigure], Any]:
        citizens = np.sort(order[holds[order]][: settings.rows])
        folds = kfold(len(citizens), settings.folds, seed)
        targets = population.targets[citizens]
        known = population.knowledge(citizens)
        return infer(targets, professions, known, held(citizens), folds), targets

    everyone = np.ones(len(ids), dtype=bool)
    central, central_targets = run(
        everyone,
        lambda c: np.hstack([government.at(c), *(h.at(c) for h in firms.values())]),
    )
    out: Named = {
        "central_operator": _named(names, central),
        "coordinating_server": _named(names, server_inference(central_targets, central)),
    }
    for firm, holding in firms.items():
        # the presence flag is constant over its own customers: left out
        figures, _ = run(holding.holds, lambda c, h=holding: h.at(c)[:, :-1])
        out[f"firm:{firm}"] = _named(names, figures)
    pairs = list(itertools.combinations(firms, 2))
    if len(pairs) > settings.max_pairs:
        chosen = generator(Stream.INFERENCE_ROWS, seed, 1).choice(
            len(pairs), settings.max_pairs, replace=False
        )
        pairs = [pairs[i] for i in sorted(chosen)]
    if pairs:
        per_pair = [
            run(
                firms[a].holds | firms[b].holds,
                lambda c, a=firms[a], b=firms[b]: np.hstack([a.at(c), b.at(c)]),
            )[0]
            for a, b in pairs
        ]
        best, median = _over_pairs(per_pair)
        out[PAIR_MAX] = dict(zip(names, best, strict=True))
        out[PAIR_MEDIAN] = dict(zip(names, median, strict=True))
    return out


def _consumer_rows(holdout: Holdout, seed: int, rows: int) -> npt.NDArray[np.intp]:
    """Held-out pairs, one per citizen (the row attribute inference uses), up to `rows`."""
    rng = generator(Stream.ATTRIBUTE_ROWS, seed)
    order = rng.permutation(len(holdout.pairs))
    first = np.sort(order[~holdout.pairs[ID].iloc[order].duplicated().to_numpy()])
    keep = generator(Stream.INFERENCE_ROWS, seed, 2).permutation(len(first))[:rows]
    chosen: npt.NDArray[np.intp] = first[np.sort(keep)]
    return chosen


def kyc_names(world: World) -> list[str]:
    """The QIs every firm's table holds (its know-your-customer columns)."""
    qis = [c.name for c in world.columns_of("truth", {"quasi-identifier"})]
    held = [{c.name for c in world.columns_of(f, {"quasi-identifier"})} for f in world.firms]
    return [q for q in qis if all(q in h for h in held)]


def consumer_figures(
    world: World,
    holdout: Holdout,
    probabilities: npt.NDArray[np.float64],
    seed: int,
    settings: InferenceSection,
) -> dict[str, Any]:
    """What a consumer of the released scores infers, for one regime.

    `score_consumer`: level -> target -> figure, the score plus the level's knowledge against
    that knowledge alone; `cross_context`: firm -> figure, the citizen's customership of the
    firm from the score plus all QIs against the QIs alone. probabilities: (pairs,) aligned
    with `holdout.pairs`.
    """
    population = Population.of(world)
    rows = _consumer_rows(holdout, seed, settings.rows)
    ids = holdout.pairs[ID].to_numpy()[rows]
    citizens = _positions(world, ids)
    score = score_design(np.asarray(probabilities, dtype=np.float64)[rows])
    memberships = np.stack(
        [np.isin(ids, t[ID].to_numpy()) for t in world.firms.values()], axis=1
    ).astype(np.float64)
    kyc = one_hot(world.truth.iloc[citizens][kyc_names(world)])
    qi, occupation = population.knowledge(citizens)
    levels = {
        "kyc": (kyc, np.zeros((len(rows), 0))),
        "quasi_identifiers": (qi, occupation),
        "quasi_identifiers_and_memberships": (np.hstack([qi, memberships]), occupation),
    }
    folds = kfold(len(rows), settings.folds, seed)
    targets = population.targets[citizens]
    consumer = {
        level: _named(population.names, infer(targets, population.professions, known, score, folds))
        for level, known in levels.items()
    }
    no_professions = np.zeros(memberships.shape[1], dtype=bool)
    customership = infer(memberships, no_professions, (qi, occupation), score, folds)
    return {
        "score_consumer": consumer,
        "cross_context": _named(list(world.firms), customership),
    }


def _positions(world: World, ids: npt.NDArray[Any]) -> npt.NDArray[np.intp]:
    """Rows of the truth table holding `ids`."""
    truth_ids = world.truth[ID].to_numpy()
    order = np.argsort(truth_ids)
    positions: npt.NDArray[np.intp] = order[np.searchsorted(truth_ids, ids, sorter=order)]
    return positions
