"""What a firm accepts from the server: its own policy, from its own node config.

`protocol.ClientSessions` builds each round from the config the server proposes, so SPEC §4's
`ConfigMismatch` check would compare the proposal with itself and every firm would join
whatever round the server asks for: three clients with a bare-majority threshold, semi-honest
mode from a server it does not trust, DP switched off or its noise made reproducible. A
policy is what a firm refuses whatever the server says. It is read from the node config
(`flower-supernode --node-config "policy-min-clients=8 policy-secure-only=true"`) or, in
simulation, the ClientApp's defaults, and never from the run config, which the server writes.

It is checked where each part of a proposal first reaches the firm:
- the secure-aggregation parameters (`SecAggConfig`) at advertise_keys, through the hook
  `protocol.sessions.ClientSessions` takes (`check_secagg`): a refusal is a `ConfigMismatch`
  before the firm has made or shared any key, and the server drops it from the round;
- the DP settings of the round config, which travel with the weights, at the masked-input
  stage before the firm trains (`check_round`): the firm drops out after sharing its keys,
  which the protocol survives like any dropout (the server rebuilds its masking key only);
- a message that would carry data in the clear (plain training, the clear evaluation, Flower's
  SecAgg+), when the policy asks for our secure aggregation (`check_in_the_clear`).

Every key is optional; with none set, a firm accepts every proposal except reproducible DP
noise, which no firm should accept unasked (`allow_reproducible_noise`). docs/DEPLOY.md lists
the keys with an example.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import Field, PositiveFloat, ValidationError

from clients.round_config import RoundConfig
from clients.settings import SettingsModel, describe_errors
from protocol import ConfigMismatch, SecAggConfig

PREFIX = "policy-"
"""Node-config keys of the policy: `policy-` and the field name in kebab case."""


class PolicyRefusal(ConfigMismatch):
    """The firm's policy refuses what the server proposed (a protocol error: it drops the firm
    from the round, and the message names the node-config key that refused)."""


class FirmPolicy(SettingsModel):
    """A firm's own limits on what it joins. Each field is the node-config key `policy-<field>`
    with `-` for `_` (e.g. `policy-min-threshold-fraction`)."""

    min_clients: int = Field(default=2, ge=2)
    """Fewest clients a round may invite (n): with c colluders among them, a sum over fewer
    than c + 2 firms gives one firm's input away by subtraction."""
    min_degree: int = Field(default=1, ge=1)
    """Smallest neighbour degree k (n - 1 for the complete graph): each firm's secrets are
    shared among its k neighbours and itself, and fewer than t of them may be corrupt."""
    min_threshold_fraction: float = Field(default=0.5, gt=0.0, le=1.0)
    """Smallest t / (k + 1): the share of the k + 1 share holders needed to rebuild a firm's
    secrets, so the colluders a firm tolerates (t - 1) grow with it."""
    min_clip: PositiveFloat | None = None
    """Smallest clipping bound: a smaller one would clip the firm's update into a wrong model."""
    max_clip: PositiveFloat | None = None
    """Largest clipping bound (with the scale, the range an encoded entry may take)."""
    min_scale: PositiveFloat | None = None
    """Smallest fixed-point scale: a coarser one rounds the firm's update away."""
    max_scale: PositiveFloat | None = None
    """Largest fixed-point scale."""
    required_mode: Literal["semi-honest", "malicious"] | None = None
    """The protocol mode the firm joins (SPEC.md §1 and §10), and only our secure aggregation:
    nothing in the clear. Unset: either mode."""
    secure_only: bool = False
    """Answer our secure aggregation only: refuse plain training, the clear evaluation and
    Flower's SecAgg+ (which sends metrics in the clear). Implied by `required_mode`."""
    require_dp: bool = False
    """Train only with DP-SGD (the held-out sums a round also carries are summed securely but
    not noised)."""
    max_epsilon: PositiveFloat | None = None
    """Largest ε over the run the firm accepts (implies DP-SGD)."""
    max_delta: float | None = Field(default=None, gt=0.0, lt=1.0)
    """Largest δ the firm accepts."""
    allow_reproducible_noise: bool = False
    """Accept DP noise seeded from public values (`reproducible = true`), which the server
    could regenerate and remove: for experiments that play every firm, never in deployment."""

    @classmethod
    def from_node_config(cls, values: Mapping[str, object]) -> FirmPolicy:
        """The `policy-*` keys of a node config (other keys are ignored); an unknown policy key
        or a bad value is an error naming the key."""
        fields = {}
        for key, value in values.items():
            if not key.startswith(PREFIX):
                continue
            name = key.removeprefix(PREFIX).replace("-", "_")
            if name not in cls.model_fields:
                allowed = ", ".join(sorted(policy_key(f) for f in cls.model_fields))
                raise ValueError(f"unknown node-config key {key!r}; policy keys: {allowed}")
            fields[name] = value
        try:
            return cls.model_validate(fields)
        except ValidationError as error:
            raise ValueError(
                describe_errors(error, "firm policy", lambda loc: policy_key(str(loc[0])))
            ) from None

    def check_secagg(self, config: SecAggConfig) -> str | None:
        """Why the firm refuses these secure-aggregation parameters, or None (the hook of
        `protocol.sessions.ClientSessions`)."""
        k, t = config.degree, config.reconstruction_threshold
        limits = [
            (config.num_clients < self.min_clients, "min_clients", f"n = {config.num_clients}"),
            (k < self.min_degree, "min_degree", f"degree k = {k}"),
            (
                t < self.min_threshold_fraction * (k + 1),
                "min_threshold_fraction",
                f"threshold t = {t} of k + 1 = {k + 1} holders ({t / (k + 1):.3f})",
            ),
            (_below(config.clip, self.min_clip), "min_clip", f"clip = {config.clip:g}"),
            (_above(config.clip, self.max_clip), "max_clip", f"clip = {config.clip:g}"),
            (_below(config.scale, self.min_scale), "min_scale", f"scale = {config.scale:g}"),
            (_above(config.scale, self.max_scale), "max_scale", f"scale = {config.scale:g}"),
            (
                self.required_mode is not None and config.mode != self.required_mode,
                "required_mode",
                f"mode {config.mode!r}",
            ),
        ]
        return _refusals([(name, shown) for broken, name, shown in limits if broken], self)

    def check_round(self, config: RoundConfig) -> None:
        """Refuse a round whose DP settings the policy does not accept (before training)."""
        if not config.train:
            return  # an evaluation-only round trains nothing: no DP setting applies
        dp = config.dp
        epsilon = "DP-SGD off" if dp is None else f"ε = {dp.target_epsilon:g}"
        limits = [
            (self.require_dp and dp is None, "require_dp", epsilon),
            (
                self.max_epsilon is not None
                and (dp is None or dp.target_epsilon > self.max_epsilon),
                "max_epsilon",
                epsilon,
            ),
            (
                dp is not None and _above(dp.target_delta, self.max_delta),
                "max_delta",
                f"δ = {config.dp_delta:g}",
            ),
            (
                dp is not None and config.reproducible and not self.allow_reproducible_noise,
                "allow_reproducible_noise",
                "DP noise from public seeds (reproducible = true), which the server could "
                "regenerate",
            ),
        ]
        reason = _refusals([(name, shown) for broken, name, shown in limits if broken], self)
        if reason is not None:
            raise PolicyRefusal(f"round {config.round_number}: {reason}")

    def check_in_the_clear(self, what: str) -> None:
        """Refuse `what` (a message that carries data in the clear) under a secure-only policy."""
        if self.secure_only or self.required_mode is not None:
            key = policy_key("secure_only" if self.secure_only else "required_mode")
            raise PolicyRefusal(
                f"the server asked for {what}, in the clear; this firm's policy ({key}) answers "
                "our secure aggregation only"
            )


def policy_key(field: str) -> str:
    """The node-config key of a policy field: `min_degree` -> `policy-min-degree`."""
    return PREFIX + field.replace("_", "-")


def _below(value: float, bound: float | None) -> bool:
    return bound is not None and value < bound


def _above(value: float, bound: float | None) -> bool:
    return bound is not None and value > bound


def _refusals(broken: list[tuple[str, str]], policy: FirmPolicy) -> str | None:
    """One sentence per broken limit: what was proposed, the key and the firm's value."""
    if not broken:
        return None
    return "; ".join(
        f"proposed {shown}, but this firm's policy has {policy_key(name)} = "
        f"{getattr(policy, name)!r}"
        for name, shown in broken
    )
