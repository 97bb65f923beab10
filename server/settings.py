"""The federation's settings: the `[federation]` section, and one federated run.

`FederationSettings` *is* the experiment TOML's `[federation]` section (experiments/config.py
adds only the experiment's own keys to it) and what every round of a run reads. `FederationRun`
is what the ServerApp runs with: the `[federation]`, `[training]` and `[model]` sections as they
are, plus what each run sets for itself (aggregation mode, seed, DP budget, paths). `fedscore run`
builds it from the experiment's sections; `flwr run .` from the run config, a flat kebab-case
view of the same fields (`to_run_config` / `from_run_config`) whose defaults
`[tool.flwr.app.config]` in pyproject.toml lists (a test keeps the two equal). Both therefore
start from the same defaults: the experiment's.

Sentinel: `threshold = 0` means the protocol's recommended threshold and `neighbours = 0` the
complete graph, in TOML, in the run config and in Python alike (a run config cannot hold
None). `FederationSettings.secagg_config` turns them into `protocol.SecAggConfig`'s None: a
threshold travels from a TOML file to `protocol.SecAggServer` through these two models only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    model_validator,
)

from clients.participant import ModelSpec, common_columns
from clients.round_config import RoundConfig
from clients.settings import ModelSettings, SettingsModel, TrainSettings, describe_errors
from protocol import Mode, SecAggConfig

SecAggMode = Literal["ours", "flower", "none"]
ServerOptimiserName = Literal["fedavg", "fedadam"]


class FederationSettings(SettingsModel):
    """The `[federation]` section: FedAvg rounds over secure aggregation, one node per firm."""

    rounds: PositiveInt = 5
    """FedAvg rounds."""
    local_epochs: PositiveInt = 1
    """Epochs each firm trains per round (in place of `training.epochs`)."""
    fraction: float = Field(default=1.0, gt=0.0, le=1.0)
    """Share of the connected firms invited to each round (at least `min_clients`). 1: every
    firm every round; below 1 the invited firms change from round to round, drawn from the run
    seed and the round number (so a resumed run invites as an uninterrupted one would): partial
    participation, whose changing sums a server can disaggregate."""
    min_clients: int = Field(default=2, ge=2)
    """Fewest firms a round may run with (and waits for)."""
    threshold: NonNegativeInt = 0
    """Shares needed to rebuild a secret (t); 0: the protocol's recommendation."""
    neighbours: NonNegativeInt = 0
    """SecAgg+ neighbour degree (k); 0: the complete graph."""
    pipeline: bool = True
    """Run round r+1's key stages inside round r's messages (protocol/SPEC.md §9)."""
    secagg_mode: Mode = "semi-honest"
    """The server `secagg = "ours"` defends against: `semi-honest` (one that follows the
    protocol) or `malicious` (one that may rewrite its messages: signed keys from each firm's
    long-term identity and a consistency check, protocol/SPEC.md §10; one message more a
    round, and the run needs `identity-manifest`). Flower's SecAgg+ and `none` ignore it."""
    clip: PositiveFloat = 1.0
    """Secure aggregation clips every coordinate of a contribution to [-clip, clip]."""
    scale_bits: int = Field(default=16, ge=1, le=24)
    """Fixed-point scale 2^bits of the quantised contributions."""
    weight_scale: PositiveFloat = 100_000.0
    """Public upper bound on any firm's training rows (a contribution is divided by it)."""
    optimiser: ServerOptimiserName = "fedavg"
    """Server optimiser on the mean update: FedAvg, or FedAdam (Reddi et al., ICLR 2021)."""
    server_learning_rate: PositiveFloat = 1.0
    """Server step size; 1 with `fedavg` is McMahan et al.'s FedAvg."""
    adam_beta1: float = Field(default=0.9, ge=0.0, lt=1.0)
    """FedAdam's first-moment decay."""
    adam_beta2: float = Field(default=0.99, ge=0.0, lt=1.0)
    """FedAdam's second-moment decay."""
    adam_tau: PositiveFloat = 1e-3
    """FedAdam's adaptivity bound (added to the root of the second moment)."""
    dp_delta: float = Field(default=1e-5, gt=0.0, lt=1.0)
    """δ of every firm's (ε, δ) budget when DP-SGD is on."""
    dp_max_grad_norm: PositiveFloat = 1.0
    """DP-SGD per-example clipping norm."""
    timeout: PositiveFloat = 120.0
    """Seconds a stage waits for replies; a silent firm is a dropout."""
    resume: bool = False
    """Continue after the last checkpointed round instead of starting afresh."""
    reproducible: bool = False
    """Seed each DP firm's noise and sampling from the run seed, the round and the firm's name,
    so a DP run repeats exactly. Those are known to the server, which could then regenerate the
    noise: the DP guarantee no longer holds against it (a loud warning; results.json and the
    report flag it). False: from each firm's OS generator."""

    def local_training(self, training: TrainSettings) -> TrainSettings:
        """What a firm trains in one round: `training` for `local_epochs` epochs."""
        return training.model_copy(update={"epochs": self.local_epochs})

    def secagg_config(self, num_clients: int) -> SecAggConfig:
        """The protocol's parameters for a round of `num_clients` (0 -> the protocol's None)."""
        return SecAggConfig(
            num_clients=num_clients,
            threshold=self.threshold or None,
            neighbours=self.neighbours or None,
            clip=self.clip,
            scale=float(2**self.scale_bits),
            mode=self.secagg_mode,
        )


class FederationRun(SettingsModel):
    """Everything one federated run needs: the three sections, and what the run sets itself."""

    federation: FederationSettings = Field(default_factory=FederationSettings)
    """The rounds, secure aggregation, server optimiser and DP bounds (`[federation]`)."""
    training: TrainSettings = Field(default_factory=TrainSettings)
    """Local optimisation; its `epochs` is not used (`federation.local_epochs` is)."""
    model: ModelSettings = Field(default_factory=ModelSettings)
    """The shared model's architecture (`[model]`)."""
    secagg: SecAggMode = "ours"
    """How the server obtains the sum: our secure aggregation, Flower's SecAgg+, or in the
    clear (`none`: the server sees every update; for measuring that only)."""
    seed: NonNegativeInt = 0
    """Seeds node sampling and every firm's training in every round."""
    model_seed: NonNegativeInt = 0
    """Seeds the agreed initial weights."""
    n_features: NonNegativeInt = 0
    """Columns of the common schema; 0: count them in the manifest at `world_dir`."""
    dp_epsilon: NonNegativeFloat = 0.0
    """Every firm's ε over all rounds; 0 turns DP-SGD off."""
    evaluate: bool = True
    """Score the global model on the firms' held-out rows after every round (inside the next
    round's contributions, and one evaluation-only round after the last)."""
    world_dir: str = ""
    """The public manifest (and, in simulation, the firms' tables)."""
    run_dir: str = ""
    """Where checkpoints, the transcript and the final model go; empty: nothing is written."""
    identity_manifest: str = ""
    """`secagg-mode = "malicious"`: the public identity manifest (JSON of
    `protocol.IdentityManifest`: each firm's Ed25519 identity key, registered out of band);
    `fedscore run` writes one into the run directory for its simulated firms."""

    @model_validator(mode="after")
    def _malicious_needs_a_manifest(self) -> FederationRun:
        malicious = self.secagg == "ours" and self.federation.secagg_mode == "malicious"
        if malicious and not self.identity_manifest:
            raise ValueError(
                "secagg-mode = 'malicious' needs identity-manifest: the path of the "
                "federation's identity manifest (docs/DEPLOY.md)"
            )
        return self

    @classmethod
    def from_run_config(cls, config: Mapping[str, Any]) -> FederationRun:
        """A Flower run config (flat kebab-case keys); unknown keys and bad values are errors
        naming the key."""
        unknown = sorted(set(config) - set(RUN_CONFIG_KEYS) - _FLOWER_KEYS)
        if unknown:
            allowed = ", ".join(sorted(RUN_CONFIG_KEYS))
            raise ValueError(f"unknown run-config keys {unknown}; allowed keys: {allowed}")
        values: dict[str, Any] = {section: {} for section in _SECTIONS}
        for key, value in config.items():
            if key in RUN_CONFIG_KEYS:
                section, name = RUN_CONFIG_KEYS[key]
                (values if section is None else values[section])[name] = value
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            raise ValueError(describe_errors(error, "run config", _run_config_key)) from None

    def to_run_config(self) -> dict[str, bool | int | float | str]:
        """The flat view `flwr run` reads (and checkpoints record)."""
        flat: dict[str, bool | int | float | str] = {}
        for key, (section, name) in RUN_CONFIG_KEYS.items():
            flat[key] = getattr(self if section is None else getattr(self, section), name)
        return flat

    def model_spec(self) -> ModelSpec:
        """The shared model every party builds (its width read from the manifest if unset)."""
        n_features = self.n_features
        if n_features <= 0:
            if not self.world_dir:
                raise ValueError("set n-features, or world-dir so it can be read from the manifest")
            manifest = json.loads((Path(self.world_dir) / "world.json").read_text())
            n_features = len(common_columns(manifest, manifest["firms"][0]))
        return ModelSpec(self.model.kind, n_features, self.model.hidden, self.model_seed)

    def round_config(
        self, spec: ModelSpec, round_number: int, *, train: bool = True, evaluate: bool = False
    ) -> RoundConfig:
        """What every firm needs for one round: local training (unless `train` is False, an
        evaluation-only round) and, with `evaluate`, scoring the weights it receives."""
        training = self.federation.local_training(self.training)
        return RoundConfig(
            model_kind=spec.kind,
            model_hidden=spec.hidden,
            n_features=spec.n_features,
            model_seed=spec.seed,
            epochs=training.epochs,
            batch_size=training.batch_size,
            learning_rate=training.learning_rate,
            weight_decay=training.weight_decay,
            weight_scale=self.federation.weight_scale,
            seed=self.seed,
            round_number=round_number,
            total_rounds=self.federation.rounds,
            dp_epsilon=self.dp_epsilon,
            dp_delta=self.federation.dp_delta,
            dp_max_grad_norm=self.federation.dp_max_grad_norm,
            reproducible=self.federation.reproducible,
            train=train,
            evaluate_weights=evaluate,
        )


_SECTIONS: dict[str, tuple[type[SettingsModel], str, frozenset[str]]] = {
    "federation": (FederationSettings, "", frozenset()),
    "training": (TrainSettings, "", frozenset({"epochs"})),
    "model": (ModelSettings, "model-", frozenset()),
}
"""Section -> (its model, the prefix of its run-config keys, fields the run config leaves out:
a federated firm trains `local-epochs`, never `training.epochs`)."""

_FLOWER_KEYS = frozenset({"partition-id", "num-partitions"})
"""Keys Flower's simulation may add to a run config; ignored."""


def _kebab(name: str) -> str:
    return name.replace("_", "-")


def _run_config_keys() -> dict[str, tuple[str | None, str]]:
    """Run-config key -> (section, or None for a field of the run itself; field name)."""
    keys: dict[str, tuple[str | None, str]] = {}
    fields: list[tuple[str, str | None, str]] = []
    for section, (model, prefix, left_out) in _SECTIONS.items():
        fields += [
            (prefix + _kebab(n), section, n) for n in model.model_fields if n not in left_out
        ]
    fields += [(_kebab(n), None, n) for n in FederationRun.model_fields if n not in _SECTIONS]
    for key, owner, name in fields:
        if key in keys:
            raise RuntimeError(f"run-config key {key!r} names two settings")  # a coding error
        keys[key] = (owner, name)
    return keys


RUN_CONFIG_KEYS = _run_config_keys()
"""Every run-config key and the setting it sets."""
_KEY_OF = {setting: key for key, setting in RUN_CONFIG_KEYS.items()}


def _run_config_key(loc: tuple[int | str, ...]) -> str:
    """The run-config key of a validation error's location (`("federation", "rounds")`)."""
    if len(loc) >= 2 and loc[0] in _SECTIONS:
        return _KEY_OF.get((str(loc[0]), str(loc[1])), ".".join(map(str, loc)))
    return _KEY_OF.get((None, str(loc[0])), ".".join(map(str, loc))) if loc else "(top level)"
