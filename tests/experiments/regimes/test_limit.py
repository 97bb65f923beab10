"""The federated limit: every firm's training rows, the common columns, nothing held out."""

from __future__ import annotations

import numpy as np

from experiments.config import parse_config
from experiments.regimes.limit import run_federated_limit
from experiments.regimes.standalone import Holdout
from experiments.world.synthetic import generate_world
from experiments.world.tables import ID, LABEL


def test_the_limit_never_reads_a_held_out_or_validation_label() -> None:
    # Prepare: the same world twice, the second with every held-out and validation label flipped
    config = parse_config({"experiment": {"name": "limit"}, "training": {"epochs": 2}})
    world = generate_world(3000, seed=1)
    holdout = Holdout.draw(world, 0.2, seed=1, validation_fraction=0.2)
    flipped = generate_world(3000, seed=1)
    for table in flipped.firms.values():
        ids = table[ID].to_numpy()
        hidden = holdout.is_test(ids) | holdout.is_validation(ids)
        table.loc[hidden, LABEL] = 1 - table.loc[hidden, LABEL]
    # Execute
    first = run_federated_limit(world, holdout, config, seed=1)
    second = run_federated_limit(flipped, holdout, config, seed=1)
    # Assert: the same model, every pair scored
    assert np.array_equal(first.probabilities, second.probabilities)
    assert not np.isnan(first.probabilities).any()
    assert first.validation_probabilities is not None
    assert not np.isnan(first.validation_probabilities).any()


def test_the_limit_learns_from_pooled_rows() -> None:
    # Prepare
    training = {"epochs": 10, "learning_rate": 0.1}
    config = parse_config({"experiment": {"name": "limit"}, "training": training})
    world = generate_world(3000, seed=0)
    holdout = Holdout.draw(world, 0.2, seed=0)
    # Execute
    output = run_federated_limit(world, holdout, config, seed=0)
    # Assert: it ranks held-out pairs well above chance
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(holdout.pairs[LABEL], output.probabilities) > 0.7
