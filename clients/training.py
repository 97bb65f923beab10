"""One training function for every regime, so regimes differ only in the data they see."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class TrainSettings:
    """Local optimisation settings, the same for the central operator and for every firm."""

    epochs: int = 5
    batch_size: int = 256
    learning_rate: float = 0.01
    weight_decay: float = 0.0


def _as_tensors(features: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    if features.ndim != 2:
        raise ValueError(f"features must be 2-D (rows, n_features), got shape {features.shape}")
    if labels.shape != (features.shape[0],):
        raise ValueError(f"labels must have shape ({features.shape[0]},), got {labels.shape}")
    return (
        torch.as_tensor(features, dtype=torch.float32),
        torch.as_tensor(labels, dtype=torch.float32),
    )


def train_model(
    model: nn.Module,
    features: np.ndarray,
    labels: np.ndarray,
    settings: TrainSettings,
    seed: int,
) -> float:
    """Minibatch Adam on binary cross-entropy, in place; returns the mean loss of the last epoch.

    features: (rows, n_features) float32, already scaled; labels: (rows,) in {0, 1}.
    The batch order comes from `seed` alone, so a run is repeatable.
    """
    x, y = _as_tensors(features, labels)
    if len(y) == 0:
        raise ValueError("cannot train on an empty table")
    optimiser = torch.optim.Adam(
        model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
    )
    loss_fn = nn.BCEWithLogitsLoss()
    generator = torch.Generator().manual_seed(seed)
    model.train()
    last_epoch_loss = float("nan")
    for _ in range(settings.epochs):
        order = torch.randperm(len(y), generator=generator)
        total, seen = 0.0, 0
        for start in range(0, len(y), settings.batch_size):
            batch = order[start : start + settings.batch_size]
            optimiser.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[batch]), y[batch])
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(batch)
            seen += len(batch)
        last_epoch_loss = total / seen
    return last_epoch_loss


@torch.no_grad()
def predict_default(model: nn.Module, features: np.ndarray) -> np.ndarray:
    """Probability of default, shape (rows,) float64."""
    model.eval()
    logits = model(torch.as_tensor(features, dtype=torch.float32))
    return torch.sigmoid(logits).double().numpy()


@torch.no_grad()
def per_example_loss(model: nn.Module, features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Binary cross-entropy per row, shape (rows,): the signal membership inference reads."""
    model.eval()
    x, y = _as_tensors(features, labels)
    return (
        nn.functional.binary_cross_entropy_with_logits(model(x), y, reduction="none")
        .double()
        .numpy()
    )
