"""A valid `RoundConfig` with small, fixed values, for tests to vary one field at a time: never
in production."""

from __future__ import annotations

from clients.round_config import RoundConfig


def round_config(**changes: object) -> RoundConfig:
    """Round 2 of 5 of a small logistic model without DP; `changes` override by field name."""
    values: dict[str, object] = {
        "model_kind": "logistic",
        "model_hidden": 8,
        "n_features": 5,
        "model_seed": 0,
        "epochs": 1,
        "batch_size": 64,
        "learning_rate": 0.01,
        "weight_decay": 0.0,
        "weight_scale": 1000.0,
        "seed": 3,
        "round_number": 2,
        "total_rounds": 5,
        "dp_epsilon": 0.0,
        "dp_delta": 1e-5,
        "dp_max_grad_norm": 1.0,
        "reproducible": False,
        "train": True,
        "evaluate_weights": False,
        **changes,
    }
    return RoundConfig(**values)  # type: ignore[arg-type]
