"""Inference by party and by score consumer: known answers, positive and negative controls."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from experiments.config import InferenceSection
from experiments.leakage.inference import (
    InferenceFigure,
    auc,
    infer,
    kfold,
    out_of_fold_scores,
    watch_list_precision,
)
from experiments.leakage.parties import (
    PAIR_MAX,
    PAIR_MEDIAN,
    consumer_figures,
    kyc_names,
    party_figures,
)
from experiments.regimes.standalone import Holdout
from experiments.world.synthetic import generate_world
from experiments.world.tables import ID, ColumnInfo, World

SETTINGS = InferenceSection(rows=3000, folds=5, max_pairs=6)
ATTRIBUTE = "political_expression"


@given(
    labels=st.lists(st.integers(0, 1), min_size=2, max_size=60),
    data=st.data(),
)
@settings(max_examples=50, deadline=None)
def test_auc_is_roc_auc_score_ties_included(labels: list[int], data: st.DataObject) -> None:
    # Prepare: scores with many ties
    scores = data.draw(st.lists(st.integers(0, 4), min_size=len(labels), max_size=len(labels)))
    y, s = np.array(labels), np.array(scores, dtype=float)

    # Execute
    ours = auc(y, s)

    # Assert
    if 0 < y.sum() < len(y):
        assert ours == pytest.approx(roc_auc_score(y, s))
    else:
        assert np.isnan(ours)


def test_watch_list_precision_known_answers() -> None:
    # Prepare: 1,000 rows, 100 in the group
    labels = np.zeros(1000)
    labels[:100] = 1

    # Execute / Assert: a perfect score lists only members; a constant one the prevalence
    assert watch_list_precision(labels, labels.copy()) == 1.0
    assert watch_list_precision(labels, np.zeros(1000)) == pytest.approx(0.1)
    assert watch_list_precision(labels, -labels) == 0.0


def test_out_of_fold_scores_never_see_their_own_row() -> None:
    # Prepare: a target that is pure noise, but one column copies it
    rng = np.random.default_rng(0)
    target = rng.integers(0, 2, size=(500, 1)).astype(float)
    design = np.hstack([target, rng.standard_normal((500, 3))])
    folds = kfold(500, 5, seed=0)
    flipped = target.copy()
    flipped[folds[0][1][0]] = 1 - flipped[folds[0][1][0]]

    # Execute: change one held-out row's label (not its columns)
    models = [(np.arange(4), np.array([0]), 1)]
    before = out_of_fold_scores(design, target, folds, models)[0]
    after = out_of_fold_scores(design, flipped, folds, models)[0]

    # Assert: that row's score is unchanged (its model never saw its label), and the copied
    # column is learnt from the other folds
    row = folds[0][1][0]
    assert before[row] == pytest.approx(after[row])
    assert auc(target[:, 0], before[:, 0]) > 0.99


def test_to_json_writes_nan_as_null() -> None:
    figure = InferenceFigure(10, 0.0, float("nan"), float("nan"), float("nan"), 0.0, 0.0)

    assert figure.to_json()["auc"] is None
    assert figure.to_json()["n_rows"] == 10


@pytest.fixture(scope="module")
def world() -> World:
    """A small world where ecommerce's table copies political expression (it must light up)
    and travel's own columns are replaced by noise (it must not)."""
    world = generate_world(6000, seed=2)
    truth = world.truth.set_index(ID)
    ecommerce = world.firms["ecommerce"]
    ecommerce["copied"] = truth.loc[ecommerce[ID], ATTRIBUTE].to_numpy()
    world.columns.append(
        ColumnInfo("copied", "ecommerce", "domain", "binary", "a copy of the attribute", 0, 1)
    )
    travel = world.firms["travel"]
    rng = np.random.default_rng(7)
    for column in world.feature_columns("travel"):
        travel[column.name] = rng.uniform(column.low or 0.0, column.high or 1.0, len(travel))
    return world


@pytest.fixture(scope="module")
def parties(world: World) -> dict[str, dict[str, dict[str, float]]]:
    return party_figures(world, 0, SETTINGS)


def test_a_firm_whose_table_copies_the_attribute_infers_it(
    parties: dict[str, dict[str, dict[str, float]]],
) -> None:
    # Assert: the firm, the central operator (who holds its table) and the best colluding pair
    for party in ("firm:ecommerce", "central_operator", PAIR_MAX):
        figure = parties[party][ATTRIBUTE]
        assert figure["auc"] > 0.97
        assert figure["advantage"] > 0.2
        assert figure["watch_list_precision"] == 1.0


def test_a_firm_holding_only_noise_infers_nothing_beyond_the_quasi_identifiers(
    parties: dict[str, dict[str, dict[str, float]]],
) -> None:
    # Assert: every target within the noise of ~1,400 citizens (100+ positives for attributes)
    for target in ("ethnic_minority", "religious_practice", "chronic_health", ATTRIBUTE):
        assert abs(parties["firm:travel"][target]["advantage"]) < 0.04


def test_the_coordinating_server_knows_only_the_prior(
    parties: dict[str, dict[str, dict[str, float]]],
) -> None:
    for target, figure in parties["coordinating_server"].items():
        central = parties["central_operator"][target]
        assert figure["auc"] == 0.5
        assert figure["watch_list_precision"] == pytest.approx(figure["prevalence"])
        assert figure["auc_baseline"] == central["auc_baseline"]


def test_every_party_has_every_target(parties: dict[str, dict[str, dict[str, float]]]) -> None:
    firms = {f"firm:{f}" for f in ("ecommerce", "payments", "telecom", "travel")}
    assert firms | {"central_operator", "coordinating_server", PAIR_MAX, PAIR_MEDIAN} <= set(
        parties
    )
    targets = set(parties["central_operator"])
    assert {ATTRIBUTE, "scrutinized_profession", "occupation=journalist"} <= targets
    assert all(set(figures) == targets for figures in parties.values())
    assert parties[PAIR_MEDIAN][ATTRIBUTE]["auc"] <= parties[PAIR_MAX][ATTRIBUTE]["auc"]


def test_a_score_that_reveals_an_attribute_or_a_firm_lights_up_the_consumer(world: World) -> None:
    # Prepare: one score that is the attribute plus noise, one that is pure noise
    holdout = Holdout.draw(world, 0.3, seed=0)
    ids = holdout.pairs[ID].to_numpy()
    rng = np.random.default_rng(3)
    attribute = world.truth.set_index(ID).loc[ids, ATTRIBUTE].to_numpy()
    revealing = attribute + 0.3 * rng.standard_normal(len(ids))
    p2p = np.isin(ids, world.firms["p2p_lending"][ID].to_numpy())
    cross = p2p + 0.3 * rng.standard_normal(len(ids))
    noise = rng.standard_normal(len(ids))

    # Execute
    revealed = consumer_figures(world, holdout, revealing, 0, SETTINGS)
    crossed = consumer_figures(world, holdout, cross, 0, SETTINGS)
    silent = consumer_figures(world, holdout, noise, 0, SETTINGS)

    # Assert: at every knowledge level, the baseline beside the advantage
    for level in ("kyc", "quasi_identifiers", "quasi_identifiers_and_memberships"):
        assert revealed["score_consumer"][level][ATTRIBUTE]["advantage"] > 0.2
        assert abs(silent["score_consumer"][level][ATTRIBUTE]["advantage"]) < 0.04
        assert 0.5 <= silent["score_consumer"][level][ATTRIBUTE]["auc_baseline"] < 0.8
    assert crossed["cross_context"]["p2p_lending"]["advantage"] > 0.2
    assert abs(silent["cross_context"]["p2p_lending"]["advantage"]) < 0.04


def test_kyc_is_what_every_firm_holds(world: World) -> None:
    assert kyc_names(world) == ["age", "sex", "region"]


def test_a_party_with_too_few_citizens_to_cross_validate_gets_null_figures() -> None:
    # Prepare: 6 citizens, 5 folds
    targets = np.array([[0.0], [1.0], [0.0], [1.0], [0.0], [1.0]])
    knowledge = (np.ones((6, 2)), np.zeros((6, 0)))

    # Execute
    (figure,) = infer(targets, np.array([False]), knowledge, np.ones((6, 1)), kfold(6, 5, 0))

    # Assert
    assert figure.to_json()["auc"] is None
    assert figure.n_rows == 0
