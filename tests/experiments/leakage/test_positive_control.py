"""The positive control of membership inference, through the code the experiment runs.

A memorising model (an MLP trained for many epochs on a few hundred citizens, each firm its own)
must light citizen-level LiRA up; a logistic model held near the base rate by a strong L2
penalty must leave it near chance (a lightly penalised one does not: on 75 rows a firm's
logistic model memorises too, citizen LiRA AUC 0.59 at weight decay 0.01). The synthetic world
defaults 8 % of the time, and a model that memorises cannot tell non-defaulters apart by much,
which caps what AUC can reach (0.64 here, 0.59 per row); TPR at 1 % FPR shows the rest.
"""

import numpy as np
import pytest
import torch

from experiments.config import parse_config
from experiments.leakage.attacks import membership_figures, membership_surface
from experiments.regimes.standalone import Holdout, run_local_only
from experiments.world.synthetic import generate_world


@pytest.fixture(autouse=True)
def one_thread():
    """As the harness runs: idle torch threads busy-wait on a loaded machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _attack(model: dict, training: dict) -> dict:
    world = generate_world(400, seed=3)
    holdout = Holdout.draw(world, 0.5, seed=0)
    config = parse_config(
        {
            "experiment": {"name": "positive-control", "seeds": [0]},
            "model": model,
            "training": training,
            "membership": {"pool": 400, "shadows": 8},
        }
    )
    output = run_local_only(world, holdout, config, 0)
    return membership_figures(membership_surface(world, holdout, config, 0, output), config, 0, {})


@pytest.mark.slow
def test_a_memorising_model_lights_up_citizen_lira_and_a_penalised_one_does_not() -> None:
    # Execute
    memorising = _attack(
        {"kind": "mlp", "hidden": 128},
        {"epochs": 200, "learning_rate": 0.1, "batch_size": 64, "weight_decay": 0.0},
    )
    penalised = _attack(
        {"kind": "logistic"},
        {"epochs": 5, "learning_rate": 0.01, "batch_size": 64, "weight_decay": 1.0},
    )

    summary = {
        name: {a: round(f["auc"], 3) for a, f in figures.items()}
        for name, figures in (("memorising", memorising), ("penalised", penalised))
    }

    # Assert: well above chance when memorising, and more per citizen than per row
    citizen = memorising["citizen_lira"]
    assert citizen["n_members"] == citizen["n_nonmembers"] >= 100
    assert citizen["auc"] > 0.6, summary
    assert citizen["auc"] > memorising["lira"]["auc"]
    assert citizen["tpr_at_1_percent_fpr"] > 0.04
    assert abs(penalised["citizen_lira"]["auc"] - 0.5) < 0.08, summary
    assert penalised["citizen_lira"]["auc"] < citizen["auc"] - 0.1
    assert np.isfinite([memorising[a]["auc"] for a in memorising]).all()
