"""Experiment configs: one TOML file per experiment, validated by pydantic when it is loaded.

A config error names the key and what it accepts, e.g. ``data.citizens: must be > 0 (got -5)``
or ``unknown key 'epoch' in [training]; allowed keys: batch_size, epochs, ...``.

The sections that a federated run shares with `flwr run .` are the settings models themselves:
`[model]` is `clients.settings.ModelSettings`, `[training]` is `clients.settings.TrainSettings`
and `[federation]` is `server.settings.FederationSettings` plus the two keys only an experiment
has (`dp_epsilons`, `run_dir`), so the ServerApp runs with these very objects.
"""

from __future__ import annotations

import codecs
import itertools
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from clients.scorecard import SCORE_MAX, SCORE_MIN
from clients.settings import ModelSettings, TrainSettings
from experiments.world.policy import PolicySettings
from server.settings import FederationSettings

CONFIG_DIR = Path(__file__).parent / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "pilot8.toml"


class ConfigError(ValueError):
    """A config that cannot be run; the message names every offending key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExperimentSection(_Section):
    name: str = Field(min_length=1, description="Names the run in results and the report.")
    seeds: list[Annotated[int, Field(ge=0)]] = Field(
        default=[0], min_length=1, description="One full run per seed; intervals are over seeds."
    )
    test_fraction: float = Field(
        default=0.2, gt=0.0, lt=1.0, description="Share of citizens held out for evaluation."
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Seeds run side by side, each in its own process (at most one per core);"
        " the results are the same for any number.",
    )

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be distinct, got {seeds}")
        return seeds


class SyntheticData(_Section):
    source: Literal["synthetic"]
    citizens: PositiveInt = Field(default=50_000, description="Population size.")
    policy: PolicySettings = Field(
        default_factory=PolicySettings,
        description="The positive control: a policy that moves a group's default (strength 0:"
        " none).",
    )


class LendingClubData(_Section):
    source: Literal["lending_club"]


class GermanCreditData(_Section):
    source: Literal["german_credit"]
    firms: int = Field(default=8, ge=2, le=64, description="Number of firms to split rows into.")
    alpha: PositiveFloat = Field(default=1.0, description="Dirichlet concentration of the split.")
    split: Literal["covariate", "label-skew"] = Field(
        default="covariate",
        description="`covariate`: a Dirichlet over the levels of `covariate` (no label);"
        " `label-skew`: over the label, training rows only, flagged in results and report.",
    )
    covariate: str = Field(default="purpose", description="The column a covariate split uses.")


class FileData(_Section):
    """A CSV or Parquet table of your own; README "Bring your own data" explains every key.

    These keys are checked here; the table itself is checked against them when it is loaded
    (`experiments/world/checks.py`), before anything trains.
    """

    source: Literal["file"]
    path: Path = Field(description="The table; a relative path is read from the config's folder.")
    label: str = Field(min_length=1, description="The outcome column.")
    positive: str | int | None = Field(
        default=None, description="The label value meaning default; omit only for a 0/1 label."
    )
    sensitive: list[str] = Field(default=[], description="Attributes no fair score should use.")
    quasi_identifiers: list[str] = Field(
        default=[], description="Attributes an outsider knows (age, sex, region, ...)."
    )
    features: list[str] | None = Field(
        default=None, description="Model inputs; default: every column without another role."
    )
    exclude: list[str] = Field(default=[], description="Columns the default features leave out.")
    partition: str | None = Field(default=None, description="One firm per value of this column.")
    dirichlet_alpha: PositiveFloat | None = Field(
        default=None,
        description="Or: a Dirichlet split into `firms` firms, over the levels of"
        " `dirichlet_column` (label-free), else label-skewed (training rows only; flagged).",
    )
    dirichlet_column: str | None = Field(
        default=None, description="The covariate a Dirichlet split is drawn over."
    )
    firms: int = Field(default=8, ge=2, le=64, description="Firms of a Dirichlet split.")
    impute: Literal["median", "mode", "drop-rows"] | None = Field(
        default=None, description="What to do with missing feature values; unset: refuse them."
    )
    bins: dict[str, list[float]] = Field(
        default={}, description="Group edges of a numeric sensitive attribute, e.g. age."
    )
    min_rows: int = Field(default=20, ge=1, description="Fewest training rows a firm may have.")
    encoding: str = Field(default="utf-8", description="Text encoding of a CSV file.")

    @model_validator(mode="after")
    def _one_split(self) -> FileData:
        if (self.partition is None) == (self.dirichlet_alpha is None):
            raise ValueError("give exactly one of data.partition or data.dirichlet_alpha")
        return self

    @field_validator("bins")
    @classmethod
    def _increasing_edges(cls, bins: dict[str, list[float]]) -> dict[str, list[float]]:
        for column, edges in bins.items():
            if not edges or any(b <= a for a, b in itertools.pairwise(edges)):
                raise ValueError(
                    f"bins.{column} must be one or more increasing edges, e.g. [25, 40, 60]"
                    f" (got {edges})"
                )
        return bins

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, encoding: str) -> str:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ValueError(
                f"unknown text encoding {encoding!r}; e.g. 'utf-8', 'latin-1', 'cp1252'"
            ) from None
        return encoding


DataSection = Annotated[
    SyntheticData | LendingClubData | GermanCreditData | FileData, Field(discriminator="source")
]


class ScorecardSection(_Section):
    base_score: float = Field(default=650.0, ge=SCORE_MIN, le=SCORE_MAX)
    base_odds: PositiveFloat = Field(default=20.0, description="Good:bad odds at base_score.")
    pdo: PositiveFloat = Field(default=50.0, description="Points to double the odds.")
    tiers: dict[str, float] = Field(
        default={
            "hotel_deposit_free": 600.0,
            "car_rental_deposit_free": 650.0,
            "visa_fast_track": 750.0,
        },
        description="Privilege name -> minimum score that unlocks it.",
    )

    @field_validator("tiers")
    @classmethod
    def _tiers_in_range(cls, tiers: dict[str, float]) -> dict[str, float]:
        if not tiers:
            raise ValueError("at least one privilege tier is needed")
        for name, threshold in tiers.items():
            if not SCORE_MIN <= threshold <= SCORE_MAX:
                raise ValueError(
                    f"tier {name!r} threshold must be within [{SCORE_MIN}, {SCORE_MAX}]"
                    f" (got {threshold})"
                )
        if len(set(tiers.values())) != len(tiers):
            raise ValueError(f"tier thresholds must be distinct, got {tiers}")
        return tiers


class RegimesSection(_Section):
    unified: bool = True
    local_only: bool = True
    federated_secagg: bool = False
    federated_plain: bool = False
    federated_flower_secagg: bool = False
    federated_dp: bool = False
    federated_limit: bool = False
    """Also train the federated limit: one central model on every firm's rows with the common
    columns (what FedAvg approximates), a reference the paired differences compare with."""


class MembershipSection(_Section):
    """Membership inference on every released model: the loss attack and online LiRA."""

    pool: int = Field(
        default=2000, ge=20, description="Candidates per regime: half members, half held out."
    )
    shadows: int = Field(
        default=16,
        ge=0,
        description="LiRA shadow models (even, >= 4); 0 runs the loss attack alone.",
    )

    @field_validator("shadows")
    @classmethod
    def _even_shadows(cls, shadows: int) -> int:
        if shadows and (shadows < 4 or shadows % 2):
            raise ValueError(f"shadows must be 0 or an even number >= 4, got {shadows}")
        return shadows


class InferenceSection(_Section):
    """`[inference]`: what each party infers about sensitive attributes and professions
    (`experiments/leakage/inference.py`), on a subsample so the cost stays small."""

    enabled: bool = Field(default=True, description="Measure inference by party and consumer.")
    rows: int = Field(
        default=5000,
        ge=100,
        description="Citizens per party (and per regime for the score consumer) attacked.",
    )
    folds: int = Field(default=5, ge=2, le=20, description="Cross-validation folds.")
    max_pairs: int = Field(
        default=28,
        ge=0,
        description="Colluding pairs of firms evaluated (a seeded sample when there are more).",
    )


class FederationSection(FederationSettings):
    """`[federation]`: the ServerApp's settings (`server.settings.FederationSettings`) and the
    experiment's own federated regimes."""

    dp_epsilons: list[PositiveFloat] = Field(default=[1.0, 8.0])
    """One federated_dp regime per ε (each firm's budget over all rounds)."""
    run_dir: Path | None = None
    """Where transcripts and checkpoints go, one folder per regime and seed; default
    runs/<experiment>/federation."""


class TuningSection(_Section):
    """`[tuning]`: every regime tuned on the same validation citizens with the same budget.

    Each regime (unified, each local-only firm, federated) trains one model per grid point
    (learning rate x weight decay) side by side, for at most `max_epochs` passes over its
    training rows (federated: `max_epochs // federation.local_epochs` rounds), stopping once
    no grid point's validation loss has improved for `patience` passes; the grid point and the
    number of passes with the lowest validation loss are what the final model trains with.
    Off (the default), every regime trains with `[training]` and `[federation]` as written.
    """

    enabled: bool = False
    """Tune every regime; off: train with `[training]` / `[federation]` as written."""
    validation_fraction: float = Field(default=0.2, gt=0.0, lt=1.0)
    """Share of the training citizens set aside for validation (the same for every regime)."""
    learning_rates: list[PositiveFloat] = Field(default=[0.003, 0.01, 0.03, 0.1], min_length=1)
    """Adam step sizes tried."""
    weight_decays: list[Annotated[float, Field(ge=0.0)]] = Field(
        default=[0.0, 1e-4, 1e-3, 1e-2], min_length=1
    )
    """L2 penalties tried."""
    max_epochs: PositiveInt = 40
    """Budget: most passes over each training row any grid point may take, equal for every
    regime: a central regime's epochs, or a federated regime's rounds x
    `federation.local_epochs` (the rounds are `max_epochs // local_epochs`, so every firm's row
    is passed over at most `max_epochs` times)."""
    patience: PositiveInt = 5
    """Passes without a better validation loss (over the whole grid) before tuning stops."""
    unified_designs: list[Literal["common", "pooled", "blocks"]] = Field(
        default=["common", "pooled", "blocks"], min_length=1
    )
    """Unified designs tuned alike; the lowest validation loss wins (the first on a tie):
    `common` (pooled common features and government records: the federated model's features),
    `pooled` (also firm presence as firm effects) or `blocks` (also every firm's own columns as
    a block)."""

    def grid(self) -> list[tuple[float, float]]:
        """(learning rate, weight decay) pairs, learning rate outermost."""
        return [(lr, wd) for lr in self.learning_rates for wd in self.weight_decays]


class ExperimentConfig(_Section):
    experiment: ExperimentSection
    data: DataSection = Field(default_factory=lambda: SyntheticData(source="synthetic"))
    model: ModelSettings = ModelSettings()
    training: TrainSettings = TrainSettings()
    scorecard: ScorecardSection = ScorecardSection()
    regimes: RegimesSection = RegimesSection()
    federation: FederationSection = FederationSection()
    membership: MembershipSection = MembershipSection()
    tuning: TuningSection = TuningSection()
    inference: InferenceSection = InferenceSection()


_SOURCE_TAGS = {"synthetic", "lending_club", "german_credit", "file"}


def _section_models(annotation: Any) -> list[type[BaseModel]]:
    """The config models a field may hold: one for a section, several for a tagged union."""
    members = get_args(annotation) or (annotation,)
    return [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]


def _section_model(loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The config model that owns the last key of `loc`, to list its allowed keys."""
    model: type[BaseModel] = ExperimentConfig
    parts = list(loc[:-1])
    while parts:
        field = model.model_fields.get(str(parts.pop(0)))
        members = _section_models(field.annotation) if field else []
        if len(members) > 1 and parts:  # a tagged union: the next loc part is the tag
            tag = parts.pop(0)
            members = [
                m for m in members if get_args(m.model_fields["source"].annotation) == (tag,)
            ]
        if len(members) != 1:
            return None
        model = members[0]
    return model


def _describe(error: ErrorDetails) -> str:
    loc = tuple(error["loc"])
    if error["type"] == "extra_forbidden":
        owner = _section_model(loc)
        section = ".".join(str(p) for p in loc[:-1] if p not in _SOURCE_TAGS)
        where = f"[{section}]" if section else "the top level"
        allowed = ", ".join(sorted(owner.model_fields)) if owner else "see the docs"
        return f"unknown key {loc[-1]!r} in {where}; allowed keys: {allowed}"
    key = ".".join(str(p) for p in loc if p not in _SOURCE_TAGS)
    message = error["msg"].removeprefix("Value error, ")
    shown = error.get("input")
    got = "" if isinstance(shown, dict) or "(got" in message else f" (got {shown!r})"
    return f"{key or 'config'}: {message}{got}"


def parse_config(raw: dict[str, Any], origin: str = "config") -> ExperimentConfig:
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        lines = "\n  ".join(_describe(e) for e in exc.errors())
        raise ConfigError(f"invalid {origin}:\n  {lines}") from None


def load_config(path: Path) -> ExperimentConfig:
    """Read and validate one TOML experiment config; `[data] path` is read from its folder."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    return _beside(parse_config(raw, origin=str(path)), path.parent)


def _beside(config: ExperimentConfig, folder: Path) -> ExperimentConfig:
    """Relative paths in a config name places beside it, wherever fedscore is started from."""
    data, federation = config.data, config.federation
    if isinstance(data, FileData) and not data.path.is_absolute():
        data = data.model_copy(update={"path": folder / data.path})
    if federation.run_dir is not None and not federation.run_dir.is_absolute():
        federation = federation.model_copy(update={"run_dir": folder / federation.run_dir})
    if data is config.data and federation is config.federation:
        return config
    return config.model_copy(update={"data": data, "federation": federation})
