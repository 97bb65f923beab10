"""Server optimisers on the flat weight vector: FedAvg and FedAdam (Reddi et al., ICLR 2021).

Both take the weighted mean client update Δ (mean of w_local - w_global) as a pseudo-gradient.
Their state is plain arrays so a checkpoint can store and restore it exactly. `server_optimiser`
builds either from the `[federation]` settings, for the federation and for the LiRA shadows of
its recipe alike, so FedAdam's β1, β2 and τ have one source.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from server.settings import FederationSettings


@dataclass
class FedAvg:
    """w <- w + η Δ; η = 1 is McMahan et al.'s FedAvg."""

    learning_rate: float = 1.0

    def step(self, weights: np.ndarray, mean_update: np.ndarray) -> np.ndarray:
        return weights + self.learning_rate * mean_update

    def state(self) -> dict[str, np.ndarray]:
        return {}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        del state


@dataclass
class FedAdam:
    """Adam on the server with Δ as the negative gradient; τ bounds the adaptivity."""

    learning_rate: float
    beta1: float
    beta2: float
    tau: float
    first_moment: np.ndarray | None = field(default=None)
    second_moment: np.ndarray | None = field(default=None)

    def step(self, weights: np.ndarray, mean_update: np.ndarray) -> np.ndarray:
        if self.first_moment is None or self.second_moment is None:
            self.first_moment = np.zeros_like(weights)
            self.second_moment = np.zeros_like(weights)
        self.first_moment = self.beta1 * self.first_moment + (1 - self.beta1) * mean_update
        self.second_moment = self.beta2 * self.second_moment + (1 - self.beta2) * mean_update**2
        return weights + self.learning_rate * self.first_moment / (
            np.sqrt(self.second_moment) + self.tau
        )

    def state(self) -> dict[str, np.ndarray]:
        if self.first_moment is None or self.second_moment is None:
            return {}
        return {"first_moment": self.first_moment, "second_moment": self.second_moment}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.first_moment = state.get("first_moment")
        self.second_moment = state.get("second_moment")


ServerOptimiser = FedAvg | FedAdam


def server_optimiser(settings: FederationSettings) -> ServerOptimiser:
    """A fresh optimiser of the kind and with the parameters the settings name."""
    if settings.optimiser == "fedadam":
        return FedAdam(
            learning_rate=settings.server_learning_rate,
            beta1=settings.adam_beta1,
            beta2=settings.adam_beta2,
            tau=settings.adam_tau,
        )
    return FedAvg(learning_rate=settings.server_learning_rate)
