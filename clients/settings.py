"""What a firm trains: the score model's shape, local optimisation, DP-SGD.

These are settings models in the project's one convention (`SettingsModel`): frozen pydantic,
unknown keys refused, each field's docstring its description. The experiment TOML's `[model]`
and `[training]` sections *are* `ModelSettings` and `TrainSettings`, and the federation's
ServerApp holds the same objects (`server/settings.py`), so no setting is copied field by field
on its way from a TOML file to a firm. Importing this module costs neither torch nor Flower.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, ValidationError

ModelKind = Literal["logistic", "mlp"]


class SettingsModel(BaseModel):
    """Base of every settings model: frozen, unknown keys refused, field docstrings kept."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


Location = tuple[int | str, ...]


def _dotted(loc: Location) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def describe_errors(
    error: ValidationError, origin: str, key_of: Callable[[Location], str] = _dotted
) -> str:
    """One line per problem naming its key as the reader wrote it (`key_of` spells it), what
    is wrong and the value given, e.g. `batch-size: Input should be greater than 0 (got 0)`."""
    lines = []
    for problem in error.errors():
        got = "" if problem["type"] == "missing" else f" (got {problem.get('input')!r})"
        message = str(problem["msg"]).removeprefix("Value error, ")
        lines.append(f"{key_of(tuple(problem['loc']))}: {message}{got}")
    return f"invalid {origin}:\n  " + "\n  ".join(lines)


class ModelSettings(SettingsModel):
    """The `[model]` section: the architecture every regime builds (`clients/model.py`)."""

    kind: ModelKind = "logistic"
    """`logistic` (a scorecard: one weight per feature) or `mlp` (one hidden layer)."""
    hidden: PositiveInt = 32
    """Hidden units of the MLP (unused by the logistic scorecard)."""


class TrainSettings(SettingsModel):
    """The `[training]` section: local optimisation, the same for the central operator and for
    every firm (`clients/training.py`). A federated firm trains `federation.local_epochs` per
    round instead of `epochs`."""

    epochs: PositiveInt = 5
    """Passes over the training rows (unified and local-only regimes, LiRA shadows of them)."""
    batch_size: PositiveInt = 256
    """Rows per Adam step (DP-SGD: the expected Poisson batch)."""
    learning_rate: PositiveFloat = 0.01
    """Adam's step size."""
    weight_decay: float = Field(default=0.0, ge=0.0)
    """Adam's L2 penalty; 0 means none."""


class DPSettings(SettingsModel):
    """DP-SGD at one firm: the (ε, δ) budget for the whole federation and the clipping norm.

    The noise multiplier is calibrated once for all `total_rounds` rounds, so the budget spent
    after the last round is the target; each round's ε is read from Opacus's RDP accountant.
    """

    target_epsilon: PositiveFloat
    """ε the firm may spend over all rounds together."""
    target_delta: float = Field(gt=0.0, lt=1.0)
    """δ of the (ε, δ) guarantee."""
    max_grad_norm: PositiveFloat
    """Per-example gradient clipping norm."""
    total_rounds: PositiveInt
    """Rounds the budget is spread over."""
