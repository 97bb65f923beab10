"""The policy positive control: a synthetic world in which a "policy" moves the label.

The default world has no path from a sensitive attribute (or a scrutinized profession) to
default beyond the quasi-identifiers, so attribute inference and group gaps cannot light up by
construction. `[data.policy]` adds one: the default logit of every citizen in the policy's
target group gets `strength` added (in logit units) before the intercept is solved, so the
population's base rate stays at its target while the group defaults more (strength > 0, e.g.
political views lowering a score) or less (strength < 0). A score that learns the label then
learns the group, and the harness's attribute advantage and group gaps must rise with the
strength. At strength 0 (the default) the world is drawn exactly as without the option.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, field_validator

from experiments.world.causal_model import OCCUPATIONS, SCRUTINIZED, SENSITIVE

SCRUTINIZED_GROUP = "scrutinized_profession"
"""The policy target meaning every scrutinized profession together."""
POLICY_TARGETS: tuple[str, ...] = (*SENSITIVE, SCRUTINIZED_GROUP, *SCRUTINIZED)
"""What a policy may single out: a sensitive attribute, the scrutinized professions together,
or one of them."""
MAX_STRENGTH = 10.0
"""|strength| beyond this (a odds ratio of e^10) would only saturate the label."""


class PolicySettings(BaseModel):
    """`[data.policy]`: which group a policy singles out, and how hard it moves the label."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    target: str = Field(
        default="political_expression",
        description="The group whose default logit moves: " + ", ".join(POLICY_TARGETS) + ".",
    )
    strength: float = Field(
        default=0.0,
        ge=-MAX_STRENGTH,
        le=MAX_STRENGTH,
        description="Added to the group's default logit (0: no policy, the default world).",
    )

    @field_validator("target")
    @classmethod
    def _known_target(cls, target: str) -> str:
        if target not in POLICY_TARGETS:
            raise ValueError(f"must be one of {', '.join(POLICY_TARGETS)} (got {target!r})")
        return target

    @field_validator("strength")
    @classmethod
    def _finite(cls, strength: float) -> float:
        if not math.isfinite(strength):
            raise ValueError(f"must be a finite number of logit units (got {strength!r})")
        return strength

    @property
    def active(self) -> bool:
        return self.strength != 0.0


def policy_group(
    target: str,
    sensitive: dict[str, npt.NDArray[np.float64]],
    occupation: npt.NDArray[Any],
) -> npt.NDArray[np.float64]:
    """1.0 for each citizen in the policy's target group, else 0.0.

    sensitive: attribute -> (n,) 0/1 values; occupation: (n,) codes into `OCCUPATIONS`.
    """
    if target in SENSITIVE:
        return np.asarray(sensitive[target], dtype=np.float64)
    professions = SCRUTINIZED if target == SCRUTINIZED_GROUP else (target,)
    if not set(professions) <= set(OCCUPATIONS):
        raise ValueError(f"policy target must be one of {', '.join(POLICY_TARGETS)}")
    codes = [OCCUPATIONS.index(p) for p in professions]
    return np.isin(occupation, codes).astype(np.float64)
