"""Firm identity must not predict a held-out default under any default partition."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from experiments.regimes.standalone import Holdout
from experiments.world import datasets
from experiments.world.checks import DataError
from experiments.world.tables import ID, LABEL, World

TEST_FRACTION = 0.2


def firm_identity_auc(world: World, seed: int) -> float:
    """Score each held-out pair by its firm's training default rate alone; the AUC of that."""
    holdout = Holdout.draw(world, TEST_FRACTION, seed)
    rate = {
        firm: float(t[LABEL].to_numpy()[~holdout.is_test(t[ID].to_numpy())].mean())
        for firm, t in world.firms.items()
    }
    scores = holdout.pairs["firm"].map(rate).fillna(0.5).to_numpy()
    return float(roc_auc_score(holdout.pairs[LABEL].to_numpy(), scores))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_default_german_credit_split_leaks_no_label(seed: int) -> None:
    # Prepare / Execute
    world = datasets.load_german_credit(seed=seed, test_fraction=TEST_FRACTION)
    # Assert
    assert world.meta["partition"]["label_skew"] is False
    assert firm_identity_auc(world, seed) <= 0.6


def test_the_default_lending_club_split_leaks_no_label() -> None:
    # Prepare
    try:
        world = datasets.load_lending_club(seed=0)
    except datasets.DatasetNotFound:
        pytest.skip("modeldata's lending_club is not installed")
    # Execute / Assert
    assert world.meta["partition"]["method"] == "column"
    assert firm_identity_auc(world, 0) <= 0.6


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_label_skew_is_explicit_flagged_and_reads_training_labels_only(seed: int) -> None:
    # Prepare / Execute
    skewed = datasets.load_german_credit(
        alpha=0.3, seed=seed, split="label-skew", test_fraction=TEST_FRACTION
    )
    leaky = datasets.load_german_credit(alpha=0.3, seed=seed, split="label-skew")
    # Assert: flagged; held-out labels unread, so firm identity says nothing about them,
    # whereas the same split over every row lets it
    assert skewed.meta["partition"]["label_skew"] is True
    assert skewed.meta["partition"]["from_training_rows"] is True
    assert firm_identity_auc(skewed, seed) <= 0.6
    assert firm_identity_auc(leaky, seed) > 0.65


def test_a_file_split_over_a_covariate_is_label_free_and_a_wrong_column_is_named(
    tmp_path: Path,
) -> None:
    # Prepare: a table whose covariate is independent of the label
    rng = np.random.default_rng(0)
    rows = 2_000
    frame = pd.DataFrame(
        {
            "income": rng.normal(size=rows),
            "segment": rng.choice(["a", "b", "c", "d"], rows),
            "bad": (rng.random(rows) < 0.2).astype(int),
        }
    )
    path = tmp_path / "loans.csv"
    frame.to_csv(path, index=False)
    # Execute
    world = datasets.load_table(
        path,
        label="bad",
        dirichlet_alpha=0.3,
        dirichlet_column="segment",
        n_firms=4,
        test_fraction=TEST_FRACTION,
    )
    # Assert
    assert world.meta["partition"]["method"] == "dirichlet-covariate"
    assert firm_identity_auc(world, 0) <= 0.6
    with pytest.raises(DataError, match="dirichlet_column"):
        datasets.load_table(path, label="bad", dirichlet_alpha=0.3, dirichlet_column="nope")
