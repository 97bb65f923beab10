"""The round config: what every firm needs for one round, as it travels in a Flower ConfigRecord.

The server writes it (`FederationRun.round_config`, `server/settings.py`) and every firm reads it
back with `RoundConfig.from_record`, so both sides of the contract share one typed model. Its
keys are the constants in `clients/records.py`; the record is flat because Flower's records are.
A record with a missing key, an unknown key or a value of the wrong type is refused with an
error naming the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flwr.app import ConfigRecord
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
)

from clients import records as R
from clients.participant import ModelSpec
from clients.settings import DPSettings, ModelKind, TrainSettings, describe_errors
from clients.streams import NoiseSeeds, firm_round_seed, reproducible_noise_seeds


class RoundConfig(BaseModel):
    """One round's public settings, the same for every firm of the round."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        validate_by_name=True,  # Python builds it by field name; the record uses the keys
        use_attribute_docstrings=True,
    )

    model_kind: ModelKind = Field(alias=R.MODEL_KIND)
    """Architecture of the shared model."""
    model_hidden: PositiveInt = Field(alias=R.MODEL_HIDDEN)
    """Hidden units (MLP only)."""
    n_features: PositiveInt = Field(alias=R.N_FEATURES)
    """Common-schema columns the model reads."""
    model_seed: NonNegativeInt = Field(alias=R.MODEL_SEED)
    """Seed of the agreed initial weights."""
    epochs: PositiveInt = Field(alias=R.EPOCHS)
    """Local epochs this round."""
    batch_size: PositiveInt = Field(alias=R.BATCH_SIZE)
    """Rows per Adam step."""
    learning_rate: PositiveFloat = Field(alias=R.LEARNING_RATE)
    """Adam's step size."""
    weight_decay: NonNegativeFloat = Field(alias=R.WEIGHT_DECAY)
    """Adam's L2 penalty."""
    weight_scale: PositiveFloat = Field(alias=R.WEIGHT_SCALE)
    """Public bound on any firm's rows: a firm's contribution is divided by it."""
    seed: NonNegativeInt = Field(alias=R.SEED)
    """The run's seed; each firm derives its own per round (`firm_seed`)."""
    round_number: NonNegativeInt = Field(alias=R.ROUND)
    """This round, counted from 1 (0: a benchmark's warm-up round)."""
    total_rounds: PositiveInt = Field(alias=R.TOTAL_ROUNDS)
    """Rounds of the whole run: a DP firm spreads its budget over them."""
    dp_epsilon: NonNegativeFloat = Field(alias=R.DP_EPSILON)
    """Each firm's ε over all rounds; 0 turns DP-SGD off."""
    dp_delta: float = Field(alias=R.DP_DELTA, gt=0.0, lt=1.0)
    """δ of each firm's (ε, δ) budget."""
    dp_max_grad_norm: PositiveFloat = Field(alias=R.DP_MAX_GRAD_NORM)
    """DP-SGD per-example clipping norm."""
    reproducible: bool = Field(alias=R.REPRODUCIBLE)
    """DP noise and sampling seeded from the run seed, the round and the firm's name, all known
    to the server (`clients.streams.reproducible_noise_seeds`); False: from the OS generator."""
    train: bool = Field(alias=R.TRAIN)
    """False: an evaluation-only round (after the last one); the firm does not train."""
    evaluate_weights: bool = Field(alias=R.EVALUATE_WEIGHTS)
    """Score the global weights this round carries on the held-out rows, inside the
    contribution (`clients/participant.py`)."""

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> RoundConfig:
        """Read a ConfigRecord (or Flower's legacy fit config, a plain mapping)."""
        try:
            return cls.model_validate(dict(record), by_alias=True, by_name=False)
        except ValidationError as error:
            raise ValueError(describe_errors(error, "round config record")) from None

    def to_record(self) -> ConfigRecord:
        """The ConfigRecord the server sends under `records.CONFIG_RECORD`."""
        return ConfigRecord(self.model_dump(by_alias=True))

    @property
    def spec(self) -> ModelSpec:
        """The shared model this round trains."""
        return ModelSpec(self.model_kind, self.n_features, self.model_hidden, self.model_seed)

    @property
    def training(self) -> TrainSettings:
        """This round's local training (`epochs` is the federation's local epochs)."""
        return TrainSettings(
            epochs=self.epochs,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            weight_decay=self.weight_decay,
        )

    @property
    def dp(self) -> DPSettings | None:
        """None when DP-SGD is off."""
        if self.dp_epsilon <= 0:
            return None
        return DPSettings(
            target_epsilon=self.dp_epsilon,
            target_delta=self.dp_delta,
            max_grad_norm=self.dp_max_grad_norm,
            total_rounds=self.total_rounds,
        )

    def firm_seed(self, firm: str) -> int:
        """This firm's torch seed this round (`clients.streams.firm_round_seed`)."""
        return firm_round_seed(self.seed, self.round_number, firm)

    def noise_seeds(self, firm: str) -> NoiseSeeds | None:
        """This firm's DP seeds this round when the run is reproducible; None: the OS's."""
        if not self.reproducible:
            return None
        return reproducible_noise_seeds(self.seed, self.round_number, firm)
