"""The score models: a logistic-regression scorecard and a small MLP behind one interface.

Both map a (batch, n_features) float32 tensor to (batch,) logits of default; every regime
(unified, local-only, federated) builds its model here so they differ only in what data they see.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from clients.settings import ModelKind


class LogisticScorecard(nn.Module):
    """Logistic regression: one weight per feature, readable as scorecard points."""

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.linear(x)  # nn.Module.__call__ is typed Any
        return logits.squeeze(-1)


class ScoreMLP(nn.Module):
    """One hidden layer: enough to pick up interactions the scorecard misses."""

    def __init__(self, n_features: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.net(x)  # nn.Module.__call__ is typed Any
        return logits.squeeze(-1)


class BaseRateScore(nn.Module):
    """A constant default probability: what a firm can say when its data hold one class only."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        if not 0.0 < rate < 1.0:
            raise ValueError(f"rate must be in (0, 1), got {rate}")
        self.logit = nn.Parameter(
            torch.tensor(float(np.log(rate / (1.0 - rate)))), requires_grad=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logit.expand(x.shape[0])


def make_model(kind: ModelKind, n_features: int, hidden: int = 32, seed: int = 0) -> nn.Module:
    """Same kind, features and seed give the same initial weights (federated clients rely on it)."""
    if n_features < 1:
        raise ValueError(f"n_features must be >= 1, got {n_features}")
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        if kind == "logistic":
            return LogisticScorecard(n_features)
        if kind == "mlp":
            if hidden < 1:
                raise ValueError(f"model.hidden must be >= 1, got {hidden}")
            return ScoreMLP(n_features, hidden)
        raise ValueError(f"model.kind must be 'logistic' or 'mlp', got {kind!r}")
    finally:
        torch.random.set_rng_state(generator_state)


def get_weights(model: nn.Module) -> list[np.ndarray]:
    """Parameters as float32 arrays, in `state_dict` order (what federated rounds exchange)."""
    return [t.detach().cpu().numpy().copy() for t in model.state_dict().values()]


def set_weights(model: nn.Module, weights: list[np.ndarray]) -> None:
    state = model.state_dict()
    if len(weights) != len(state):
        raise ValueError(f"expected {len(state)} weight arrays, got {len(weights)}")
    new_state = {}
    for (name, current), w in zip(state.items(), weights, strict=True):
        if tuple(w.shape) != tuple(current.shape):
            raise ValueError(
                f"weight {name!r}: expected shape {tuple(current.shape)}, got {w.shape}"
            )
        new_state[name] = torch.as_tensor(w, dtype=current.dtype)
    model.load_state_dict(new_state)


def flatten_weights(weights: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([w.ravel() for w in weights]).astype(np.float64)


def unflatten_weights(flat: np.ndarray, like: list[np.ndarray]) -> list[np.ndarray]:
    sizes = [w.size for w in like]
    if flat.size != sum(sizes):
        raise ValueError(f"flat vector has {flat.size} values, model needs {sum(sizes)}")
    parts = np.split(flat, np.cumsum(sizes)[:-1])
    return [p.reshape(w.shape).astype(w.dtype) for p, w in zip(parts, like, strict=True)]
