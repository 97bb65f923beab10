"""The settings models: the path of a threshold to the protocol, and the one sentinel."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from experiments.config import parse_config
from protocol import SecAggServer
from server.optimiser import FedAdam, server_optimiser
from server.settings import FederationRun, FederationSettings


def test_a_threshold_reaches_the_protocol_through_the_section_and_its_config_only() -> None:
    # Prepare: a TOML [federation] section as the experiment config reads it
    section = parse_config({"experiment": {"name": "x"}, "federation": {"threshold": 4}}).federation
    # Execute: the ServerApp's round opens the protocol with the section's config
    server = SecAggServer(section.secagg_config(num_clients=5), dimension=3, round_number=1)
    # Assert
    assert isinstance(section, FederationSettings)
    assert server.threshold == 4


@pytest.mark.parametrize("num_clients", [3, 8, 40])
def test_zero_means_the_protocols_recommendation_and_the_complete_graph(num_clients: int) -> None:
    # Execute
    config = FederationSettings().secagg_config(num_clients)
    # Assert: 0 in TOML and in the run config is None for the protocol, nowhere else
    assert config.threshold is None and config.neighbours is None
    assert config.degree == num_clients - 1
    assert config.scale == 2.0**16


def test_fedadams_parameters_come_from_the_settings() -> None:
    # Prepare
    settings = FederationSettings(
        optimiser="fedadam", server_learning_rate=0.05, adam_beta1=0.8, adam_tau=1e-2
    )
    # Execute
    optimiser = server_optimiser(settings)
    # Assert
    assert isinstance(optimiser, FedAdam)
    assert (optimiser.learning_rate, optimiser.beta1, optimiser.beta2, optimiser.tau) == (
        0.05,
        0.8,
        0.99,
        1e-2,
    )


def test_settings_are_frozen_and_refuse_unknown_keys() -> None:
    # Prepare
    run = FederationRun()
    # Execute / Assert
    with pytest.raises(ValidationError):
        run.federation.rounds = 9  # type: ignore[misc]
    with pytest.raises(ValidationError, match="extra"):
        FederationSettings(round=3)  # type: ignore[call-arg]
