"""A firm's own policy: read from its node config, it refuses proposals below its limits."""

from __future__ import annotations

import pytest
from fakes.round_configs import round_config
from hypothesis import given
from hypothesis import strategies as st

from clients.policy import FirmPolicy, PolicyRefusal
from clients.round_config import RoundConfig
from protocol import ConfigMismatch, SecAggConfig


def _round(**changes: object) -> RoundConfig:
    """A DP round (ε = 1), the case a policy has most to say about."""
    return round_config(**{"dp_epsilon": 1.0, **changes})


def test_policy_keys_come_from_the_node_config_and_other_keys_are_ignored() -> None:
    # Execute
    policy = FirmPolicy.from_node_config(
        {"firm": "payments", "policy-min-clients": 8, "policy-required-mode": "malicious"}
    )
    # Assert
    assert policy.min_clients == 8 and policy.required_mode == "malicious"
    assert FirmPolicy.from_node_config({"world-dir": "/data"}) == FirmPolicy()


def test_an_unknown_or_bad_policy_key_is_named() -> None:
    # Execute / Assert
    with pytest.raises(
        ValueError, match=r"unknown node-config key 'policy-min-degre'.*policy-min-degree"
    ):
        FirmPolicy.from_node_config({"policy-min-degre": 4})
    with pytest.raises(
        ValueError, match=r"policy-min-threshold-fraction: .*less than or equal to 1"
    ):
        FirmPolicy.from_node_config({"policy-min-threshold-fraction": 1.5})


def test_a_weaker_secagg_config_is_refused_naming_each_broken_limit() -> None:
    # Prepare
    policy = FirmPolicy(min_clients=4, min_threshold_fraction=0.75, required_mode="malicious")
    weak = SecAggConfig(num_clients=3, threshold=2)  # complete graph: 2 of 3 holders
    # Execute
    reason = policy.check_secagg(weak)
    # Assert
    assert reason is not None
    assert "proposed n = 3, but this firm's policy has policy-min-clients = 4" in reason
    assert "threshold t = 2 of k + 1 = 3 holders (0.667)" in reason
    assert "policy-min-threshold-fraction = 0.75" in reason
    assert "mode 'semi-honest'" in reason and "policy-required-mode = 'malicious'" in reason
    assert "policy-min-degree" not in reason


def test_a_config_within_every_limit_is_accepted() -> None:
    # Prepare
    policy = FirmPolicy(
        min_clients=4, min_degree=4, min_threshold_fraction=0.6, max_clip=2.0, min_scale=2.0**12
    )
    # Execute / Assert
    assert policy.check_secagg(SecAggConfig(num_clients=8, neighbours=4, threshold=3)) is None
    assert FirmPolicy().check_secagg(SecAggConfig(num_clients=2)) is None


@given(
    n=st.integers(2, 40),
    fraction=st.floats(0.5, 1.0),
    min_degree=st.integers(1, 40),
)
def test_an_accepted_config_keeps_every_limit(n: int, fraction: float, min_degree: int) -> None:
    # Prepare
    policy = FirmPolicy(min_threshold_fraction=fraction, min_degree=min_degree)
    config = SecAggConfig(num_clients=n)
    # Execute
    accepted = policy.check_secagg(config) is None
    # Assert: accepted exactly when the limits hold
    k, t = config.degree, config.reconstruction_threshold
    assert accepted == (k >= min_degree and t >= fraction * (k + 1))


def test_dp_settings_are_checked_before_training() -> None:
    # Prepare
    strict = FirmPolicy(require_dp=True, max_epsilon=2.0)
    # Execute / Assert
    strict.check_round(_round(dp_epsilon=1.0))
    with pytest.raises(PolicyRefusal, match=r"round 2: proposed DP-SGD off.*policy-require-dp"):
        strict.check_round(_round(dp_epsilon=0.0))
    with pytest.raises(PolicyRefusal, match=r"proposed ε = 8.*policy-max-epsilon = 2.0"):
        strict.check_round(_round(dp_epsilon=8.0))
    strict.check_round(_round(dp_epsilon=0.0, train=False))  # evaluation only: nothing trains


def test_reproducible_noise_is_refused_unless_the_firm_allows_it() -> None:
    # Prepare
    seeded = _round(reproducible=True)
    # Execute / Assert: a refusal is a protocol error, so the firm drops out of the round
    with pytest.raises(ConfigMismatch, match="policy-allow-reproducible-noise = False"):
        FirmPolicy().check_round(seeded)
    FirmPolicy(allow_reproducible_noise=True).check_round(seeded)
    FirmPolicy().check_round(_round(reproducible=True, dp_epsilon=0.0))  # no DP, no noise


def test_a_secure_only_policy_refuses_anything_in_the_clear() -> None:
    # Execute / Assert
    FirmPolicy().check_in_the_clear("its contribution")
    for policy in (FirmPolicy(secure_only=True), FirmPolicy(required_mode="semi-honest")):
        with pytest.raises(PolicyRefusal, match="its contribution, in the clear"):
            policy.check_in_the_clear("its contribution")
