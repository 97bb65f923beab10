"""Shadow models for LiRA, trained side by side: k models of one recipe in one pass.

LiRA needs many shadows of the regime's own recipe, each on a different half of the candidate
pool. Their training sets differ only in the pool rows, so the k models can walk the same
shuffled rows together: a row outside model j's set is masked out of model j's loss. Stacked
with `torch.func` and updated by one Adam whose state is per parameter, each model follows
exactly the recipe of `clients.training.train_model` (same loss, optimiser, batch walk), while
the cost is that of one model with k heads. A DP regime's shadows run DP-SGD the same way
(`StackedDP`): per-example gradients of every model at once, clipped, summed, noised.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad, stack_module_state, vmap

from clients.model import flatten_weights, get_weights, set_weights, unflatten_weights
from clients.participant import ModelSpec
from clients.streams import Stream, generator, shadow_init_seed, shadow_round_seed
from clients.training import TrainSettings, predict_default
from server.optimiser import server_optimiser
from server.settings import FederationSettings


@dataclass(frozen=True)
class StackedDP:
    """DP-SGD of one firm's shadows, as `clients.training.train_model_dp` runs it with Opacus.

    `noise_multiplier` is the one the firm's own Opacus accountant calibrated (its ledger), so
    the shadows get the real regime's noise. Per-example clipping to `max_grad_norm` and
    Gaussian noise of std noise_multiplier × max_grad_norm on the clipped sum, divided by the
    expected batch size (Opacus's mean reduction). Opacus samples batches by Poisson; the
    stacked shadows walk fixed-size shuffled batches, whose expected size is the same.
    """

    noise_multiplier: float
    max_grad_norm: float


Tensors = dict[str, torch.Tensor]
StackedForward = Callable[[Tensors, Tensors, torch.Tensor], torch.Tensor]
"""(stacked parameters, stacked buffers, x (rows, d)) -> (k, rows) logits."""


def stacked(models: list[nn.Module]) -> tuple[Tensors, Tensors, nn.Module, StackedForward]:
    """k models of one architecture side by side (`torch.func`): their stacked parameters and
    buffers, a weightless template of the architecture, and the forward of all k at once."""
    params, buffers = stack_module_state(models)
    template = copy.deepcopy(models[0]).to("meta")

    def forward(p: Tensors, b: Tensors, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = functional_call(template, (p, b), (x,))
        return logits

    return params, buffers, template, vmap(forward, in_dims=(0, 0, None))


LOGISTIC = ("linear.weight", "linear.bias")
"""The parameters of `clients.model.LogisticScorecard`, whose per-example gradients are known
in closed form."""


def _logistic_clipped_sums(
    params: dict[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    mask: torch.Tensor,
    max_grad_norm: float,
) -> dict[str, torch.Tensor]:
    """Each model's sum of clipped per-example gradients of a logistic scorecard, in closed form.

    Example i's gradient is r_i (x_i, 1) with r_i = sigmoid(z_i) - y_i, so its norm is
    |r_i| sqrt(|x_i|^2 + 1) and no (models, batch, features) tensor is needed: the same sums
    as the generic per-example path (`torch.func`), several times faster.
    """
    weight, bias = params["linear.weight"].detach(), params["linear.bias"].detach()
    logits = torch.einsum("bd,kd->kb", x, weight[:, 0, :]) + bias  # (k, batch)
    residual = torch.sigmoid(logits) - y
    norms = residual.abs() * (x.pow(2).sum(1) + 1.0).sqrt()
    factor = (max_grad_norm / (norms + 1e-6)).clamp(max=1.0) * mask * residual
    return {
        "linear.weight": torch.einsum("kb,bd->kd", factor, x).unsqueeze(1),
        "linear.bias": factor.sum(1, keepdim=True),
    }


def _dp_gradients(
    template: nn.Module,
    params: dict[str, torch.Tensor],
    buffers: dict[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    mask: torch.Tensor,
    expected_batch: torch.Tensor,
    dp: StackedDP,
    noise: torch.Generator,
) -> dict[str, torch.Tensor]:
    """Each model's noisy mean of clipped per-example gradients. mask: (k, batch);
    expected_batch: (k,); returns one (k, *shape) gradient per parameter."""

    def example_loss(
        p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor
    ) -> torch.Tensor:
        logit = functional_call(template, (p, b), (xi.unsqueeze(0),)).reshape(())
        return nn.functional.binary_cross_entropy_with_logits(logit, yi)

    if set(params) == set(LOGISTIC):
        summed_clipped = _logistic_clipped_sums(params, x, y, mask, dp.max_grad_norm)
    else:
        per_example = vmap(
            vmap(grad(example_loss), in_dims=(None, None, 0, 0)), in_dims=(0, 0, None, None)
        )
        detached = {name: value.detach() for name, value in params.items()}
        grads: dict[str, torch.Tensor] = per_example(detached, buffers, x, y)  # (k, batch, ...)
        squares = torch.stack([g.flatten(2).pow(2).sum(-1) for g in grads.values()])
        norms = squares.sum(0).sqrt()  # (k, batch)
        factor = (dp.max_grad_norm / (norms + 1e-6)).clamp(max=1.0) * mask  # Opacus's clip
        summed_clipped = {n: torch.einsum("kb,kb...->k...", factor, g) for n, g in grads.items()}
    noisy = {}
    for name in params:
        summed = summed_clipped[name]
        summed += (
            dp.noise_multiplier * dp.max_grad_norm * torch.randn(summed.shape, generator=noise)
        )
        noisy[name] = summed / expected_batch.view(-1, *([1] * (summed.dim() - 1)))
    return noisy


def train_stacked(
    models: list[nn.Module],
    features: np.ndarray,
    labels: np.ndarray,
    include: np.ndarray,
    settings: TrainSettings,
    seed: int,
    dp: StackedDP | None = None,
) -> None:
    """Train k models of one architecture, model j on the rows where include[:, j]; in place.

    features: (rows, d) float32; labels: (rows,) in {0, 1}; include: (rows, k) bool. With `dp`
    every step is DP-SGD (`StackedDP`), its noise drawn from `seed`'s own stream.
    """
    if include.shape != (len(labels), len(models)):
        raise ValueError(
            f"include must be (rows, models) = {(len(labels), len(models))}, got {include.shape}"
        )
    params, buffers, template, batched = stacked(models)
    optimiser = torch.optim.Adam(
        params.values(), lr=settings.learning_rate, weight_decay=settings.weight_decay
    )
    x = torch.as_tensor(features, dtype=torch.float32)
    y = torch.as_tensor(labels, dtype=torch.float32)
    weight = torch.as_tensor(include.T, dtype=torch.float32)  # (k, rows)
    batches = torch.Generator().manual_seed(seed)
    if dp is not None:
        noise = torch.Generator().manual_seed(
            int(generator(Stream.SHADOW_DP_NOISE, seed).integers(2**62))
        )
        steps_per_epoch = -(-len(y) // min(settings.batch_size, len(y)))
        expected_batch = (weight.sum(1) / steps_per_epoch).clamp(min=1.0)  # (k,)
    for _ in range(settings.epochs):
        order = torch.randperm(len(y), generator=batches)
        for start in range(0, len(y), settings.batch_size):
            batch = order[start : start + settings.batch_size]
            mask = weight[:, batch]
            if dp is not None:
                noisy = _dp_gradients(
                    template, params, buffers, x[batch], y[batch], mask, expected_batch, dp, noise
                )
                for name, value in params.items():
                    value.grad = noisy[name]
                optimiser.step()
                continue
            logits = batched(params, buffers, x[batch])  # (k, batch)
            losses = nn.functional.binary_cross_entropy_with_logits(
                logits, y[batch].expand_as(logits), reduction="none"
            )
            loss = ((losses * mask).sum(1) / mask.sum(1).clamp(min=1.0)).sum()
            optimiser.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)  # what loss.backward() calls; that one is unannotated
            optimiser.step()
    with torch.no_grad():
        for j, model in enumerate(models):
            model.load_state_dict({name: value[j] for name, value in {**params, **buffers}.items()})


def shadow_models(spec: ModelSpec, k: int, seed: int) -> list[nn.Module]:
    """k fresh models of one spec, each from its own initial seed."""
    return [
        ModelSpec(spec.kind, spec.n_features, spec.hidden, shadow_init_seed(seed, j)).build()
        for j in range(k)
    ]


def predict_stacked(models: list[nn.Module], features: np.ndarray) -> np.ndarray:
    """(rows, k) default probabilities."""
    return np.stack([predict_default(m, features) for m in models], axis=1)


@dataclass(frozen=True)
class FirmShard:
    """One firm's rows for stacked federated training: include[:, j] = in shadow j's data."""

    features: np.ndarray
    labels: np.ndarray
    include: np.ndarray


def fedavg_stacked(
    shards: list[FirmShard],
    spec: ModelSpec,
    k: int,
    settings: TrainSettings,
    federation: FederationSettings,
    seed: int,
    dp: tuple[StackedDP, ...] | None = None,
) -> list[nn.Module]:
    """k FedAvg runs side by side: each round every firm trains the k globals on its rows.

    `federation` gives the rounds and the server optimiser (`server.optimiser`, as the
    federation builds it); `settings` the local training of one round. The weighted mean update
    of shadow j weights firm f by its rows in shadow j's data, as the federation's contributions
    do, but is summed here in rows rather than through contribution vectors: the same mean,
    without the federation's division by `weight_scale` (whose rounding would move the shadows'
    figures). FedAdam keeps one state per shadow. `dp`, one per shard, makes each firm's
    local training DP-SGD with that firm's noise.
    """
    if dp is not None and len(dp) != len(shards):
        raise ValueError(f"dp must hold one StackedDP per shard ({len(shards)}), got {len(dp)}")
    models = shadow_models(spec, k, seed)
    globals_ = [flatten_weights(get_weights(m)) for m in models]
    template = get_weights(models[0])
    servers = [server_optimiser(federation) for _ in range(k)]
    for round_number in range(federation.rounds):
        totals = [np.zeros_like(g) for g in globals_]
        weights = np.zeros(k)
        for index, shard in enumerate(shards):
            rows = shard.include.sum(0)
            if not rows.any():
                continue
            local = [spec.build() for _ in range(k)]
            for model, flat in zip(local, globals_, strict=True):
                set_weights(model, unflatten_weights(flat, template))
            train_stacked(
                local,
                shard.features,
                shard.labels,
                shard.include,
                settings,
                shadow_round_seed(seed, round_number, index),
                None if dp is None else dp[index],
            )
            for j, model in enumerate(local):
                totals[j] += rows[j] * (flatten_weights(get_weights(model)) - globals_[j])
            weights += rows
        globals_ = [
            server.step(g, total / max(w, 1.0))
            for server, g, total, w in zip(servers, globals_, totals, weights, strict=True)
        ]
    for model, flat in zip(models, globals_, strict=True):
        set_weights(model, unflatten_weights(flat, template))
    return models
