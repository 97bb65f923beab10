"""The federation's settings, read from a Flower run config (flat, kebab-case keys).

`flwr run .` fills the run config from `[tool.flwr.app.config]` in pyproject.toml (overridable
with `--run-config`); `fedscore run` builds the same keys from the experiment TOML, so both
paths run the same ServerApp.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

from clients import records as R
from clients.participant import ModelSpec, common_columns

SecAggMode = Literal["ours", "flower", "none"]
ServerOptimiser = Literal["fedavg", "fedadam"]


@dataclass(frozen=True)
class FederationSettings:
    """Every knob of a federated run. Field names map to run-config keys with `-` for `_`."""

    rounds: int = 3
    local_epochs: int = 1
    batch_size: int = 128
    learning_rate: float = 0.02
    weight_decay: float = 0.0
    model_kind: str = "logistic"
    model_hidden: int = 32
    model_seed: int = 0
    n_features: int = 0
    """0 means: count the common columns in the manifest at `world_dir`."""
    seed: int = 0
    secagg: SecAggMode = "ours"
    pipeline: bool = True
    """secagg "ours": run round r+1's key stages inside round r's messages (SPEC.md §9)."""
    fraction: float = 1.0
    min_clients: int = 2
    threshold: int = 0
    """Shares needed to rebuild a secret; 0 means the protocol's recommendation."""
    neighbours: int = 0
    """SecAgg+ neighbour degree; 0 means the complete graph."""
    clip: float = 1.0
    scale_bits: int = 16
    weight_scale: float = 100_000.0
    """Public upper bound on any firm's training rows (the contribution is divided by it)."""
    optimiser: ServerOptimiser = "fedavg"
    server_learning_rate: float = 1.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.99
    adam_tau: float = 1e-3
    dp_epsilon: float = 0.0
    """0 turns DP-SGD off; otherwise every firm's (ε, δ) budget over all rounds."""
    dp_delta: float = 1e-5
    dp_max_grad_norm: float = 1.0
    timeout: float = 120.0
    """Seconds to wait for replies at each stage; a silent node is a dropout."""
    evaluate: bool = True
    world_dir: str = ""
    run_dir: str = ""
    """Where checkpoints, the transcript and the final model go; empty: nothing is written."""
    resume: bool = False

    def __post_init__(self) -> None:
        checks: list[tuple[bool, str]] = [
            (self.rounds >= 1, f"rounds must be >= 1, got {self.rounds}"),
            (self.local_epochs >= 1, f"local-epochs must be >= 1, got {self.local_epochs}"),
            (self.batch_size >= 1, f"batch-size must be >= 1, got {self.batch_size}"),
            (self.learning_rate > 0, f"learning-rate must be > 0, got {self.learning_rate}"),
            (
                self.secagg in ("ours", "flower", "none"),
                f"secagg must be 'ours', 'flower' or 'none', got {self.secagg!r}",
            ),
            (
                self.optimiser in ("fedavg", "fedadam"),
                f"optimiser must be 'fedavg' or 'fedadam', got {self.optimiser!r}",
            ),
            (0 < self.fraction <= 1, f"fraction must be in (0, 1], got {self.fraction}"),
            (self.min_clients >= 2, f"min-clients must be >= 2, got {self.min_clients}"),
            (self.clip > 0, f"clip must be > 0, got {self.clip}"),
            (1 <= self.scale_bits <= 24, f"scale-bits must be in [1, 24], got {self.scale_bits}"),
            (self.weight_scale > 0, f"weight-scale must be > 0, got {self.weight_scale}"),
            (self.dp_epsilon >= 0, f"dp-epsilon must be >= 0, got {self.dp_epsilon}"),
            (self.timeout > 0, f"timeout must be > 0, got {self.timeout}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @classmethod
    def from_run_config(cls, config: Mapping[str, Any]) -> FederationSettings:
        """Known keys are converted to the field's type; unknown keys are an error."""
        known = {f.name.replace("_", "-"): f for f in fields(cls)}
        unknown = sorted(set(config) - set(known) - {"partition-id", "num-partitions"})
        if unknown:
            raise ValueError(
                f"unknown run-config keys {unknown}; allowed keys: {', '.join(sorted(known))}"
            )
        values: dict[str, Any] = {}
        for key, value in config.items():
            if key not in known:
                continue
            default = getattr(cls, known[key].name)
            values[known[key].name] = value if isinstance(default, str) else type(default)(value)
        return cls(**values)

    def to_run_config(self) -> dict[str, bool | int | float | str]:
        return {k.replace("_", "-"): v for k, v in asdict(self).items()}

    def model_spec(self) -> ModelSpec:
        n_features = self.n_features
        if n_features <= 0:
            if not self.world_dir:
                raise ValueError("set n-features, or world-dir so it can be read from the manifest")
            manifest = json.loads((Path(self.world_dir) / "world.json").read_text())
            n_features = len(common_columns(manifest, manifest["firms"][0]))
        return ModelSpec(self.model_kind, n_features, self.model_hidden, self.model_seed)

    def train_config(self, spec: ModelSpec, round_number: int) -> dict[str, int | float | str]:
        """What every firm needs for one round of local training (a ConfigRecord's content)."""
        return {
            R.MODEL_KIND: spec.kind,
            R.MODEL_HIDDEN: spec.hidden,
            R.N_FEATURES: spec.n_features,
            R.MODEL_SEED: spec.seed,
            R.EPOCHS: self.local_epochs,
            R.BATCH_SIZE: self.batch_size,
            R.LEARNING_RATE: self.learning_rate,
            R.WEIGHT_DECAY: self.weight_decay,
            R.WEIGHT_SCALE: self.weight_scale,
            R.SEED: self.seed,
            R.ROUND: round_number,
            R.TOTAL_ROUNDS: self.rounds,
            R.DP_EPSILON: self.dp_epsilon,
            R.DP_DELTA: self.dp_delta,
            R.DP_MAX_GRAD_NORM: self.dp_max_grad_norm,
        }
