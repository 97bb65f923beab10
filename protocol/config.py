"""Public parameters of a secure-aggregation round, validated so that no bad combination runs.

The checks guard correctness and security, not style: a sum that can wrap the modulus would
decode to garbage, a threshold of at most half the k + 1 share holders would let two disjoint
groups of holders each rebuild a secret (an active server then tells one group "u survived" and
the other "u dropped"), and a threshold above the neighbourhood could never be met.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from protocol.stages import Mode


def recommended_degree(num_clients: int) -> int:
    """A logarithmic SecAgg+ degree: the smallest even k >= 3·log2(n), at most n - 1."""
    if num_clients < 2:
        raise ValueError(f"num_clients must be >= 2, got {num_clients}")
    degree = math.ceil(3 * math.log2(num_clients))
    degree += degree % 2
    return min(degree, num_clients - 1)


def recommended_threshold(degree: int) -> int:
    """Two thirds of the neighbourhood (k + 1 holders), always a strict majority of it.

    ⌈2(k + 1)/3⌉ alone is already > (k + 1)/2 for every k >= 1; the majority term states the
    rule `SecAggConfig` enforces rather than relying on that arithmetic.
    """
    return max((degree + 1) // 2 + 1, math.ceil(2 * (degree + 1) / 3))


class SecAggConfig(BaseModel):
    """Parameters every party of a round agrees on; sent to clients in the first request."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    """Version of the parameter set; bumped when the meaning of a field changes."""
    num_clients: int = Field(ge=2, description="Number of clients invited to the round (n).")
    threshold: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Shares needed to rebuild a secret (t). Must satisfy (k + 1)/2 < t <= k + 1 (a "
            "strict majority of the k + 1 share holders); defaults to about two thirds of them."
        ),
    )
    neighbours: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Neighbour degree k of the SecAgg+ graph; unset means the complete graph (k = n - 1). "
            "A sparse degree (k < n - 1) must be even (Harary graph)."
        ),
    )
    clip: float = Field(
        default=1.0,
        gt=0,
        allow_inf_nan=False,
        description="Clipping bound: every input coordinate is clipped to [-clip, clip].",
    )
    scale: float = Field(
        default=2.0**16,
        gt=0,
        allow_inf_nan=False,
        description="Fixed-point scale: a coordinate x is encoded as about round(x * scale).",
    )
    modulus_bits: int = Field(
        default=32,
        ge=2,
        le=32,
        description="Arithmetic is modulo 2^modulus_bits (b <= 32, so vectors are uint32).",
    )
    mode: Mode = Field(
        default="semi-honest",
        description=(
            "'semi-honest': the server is trusted to follow the protocol. 'malicious': clients "
            "sign their keys with long-term identity keys and the survivor set before revealing "
            "any share, so a server that deviates learns no more (SPEC.md §10)."
        ),
    )

    @property
    def degree(self) -> int:
        """The neighbour degree k actually used (n - 1 for the complete graph)."""
        return self.num_clients - 1 if self.neighbours is None else self.neighbours

    @property
    def reconstruction_threshold(self) -> int:
        """The threshold t actually used."""
        return recommended_threshold(self.degree) if self.threshold is None else self.threshold

    @property
    def max_abs_quantized(self) -> int:
        """Largest |q| stochastic rounding can produce for one clipped coordinate."""
        return math.ceil(self.clip * self.scale)

    @property
    def consistency_quorum(self) -> int:
        """Malicious mode: signatures a survivor set needs before any share of it is revealed.

        More than two thirds of the invited clients (and at least t): two different survivor
        sets can then both be certified only if more than n/3 clients sign both, i.e. are
        corrupt (SPEC.md §10 has the count). t alone is not enough: t is about a neighbourhood
        of k + 1, and a server could gather t signatures for each of two sets.
        """
        return max(self.reconstruction_threshold, 2 * self.num_clients // 3 + 1)

    @property
    def modulus(self) -> int:
        return 1 << self.modulus_bits

    @model_validator(mode="after")
    def _check_combination(self) -> SecAggConfig:
        if not math.isfinite(self.clip * self.scale):
            raise ValueError(
                f"clip * scale overflows a float ({self.clip!r} * {self.scale!r}); lower clip or "
                "scale"
            )
        n, k = self.num_clients, self.degree
        if self.neighbours is not None:
            if self.neighbours > n - 1:
                raise ValueError(f"neighbours must be <= num_clients - 1 = {n - 1}, got {k}")
            if self.neighbours < n - 1 and self.neighbours % 2 == 1:
                raise ValueError(
                    f"neighbours must be even for a sparse Harary graph (or {n - 1} for the "
                    f"complete graph), got {k}"
                )
        t = self.reconstruction_threshold
        if 2 * t <= k + 1:
            raise ValueError(
                f"threshold must be > neighbours/2 + 1/2 = {(k + 1) / 2} (a strict majority of "
                f"the {k + 1} share holders), got {t}"
            )
        if t > k + 1:
            raise ValueError(
                f"threshold must be <= the neighbourhood size neighbours + 1 = {k + 1}, got {t}"
            )
        largest_sum = n * self.max_abs_quantized
        if largest_sum >= self.modulus // 2:
            raise ValueError(
                f"modulus_bits={self.modulus_bits} is too small: the sum of {n} quantised values "
                f"can reach ±{largest_sum}, which needs |sum| < 2^{self.modulus_bits - 1}; lower "
                "clip or scale, or raise modulus_bits"
            )
        return self
