"""Every pair of stage transitions: only the expected next stage is accepted, by either side."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import pytest

from protocol import (
    ClientStatus,
    RoundMismatch,
    SecAggConfig,
    SecAggServer,
    Stage,
    UnexpectedStage,
)

STATES = range(len(Stage) + 1)
"""Number of stages a client has completed: 0 (fresh) to 4 (round over)."""

if TYPE_CHECKING:
    from conftest import ManualRound


@pytest.mark.parametrize(("completed", "offered"), list(itertools.product(STATES, list(Stage))))
def test_client_accepts_only_the_next_stage(
    manual_round: type[ManualRound], completed: int, offered: Stage
) -> None:
    # Prepare: a full round gives a real request of every stage for client 1.
    full = manual_round(num_clients=3)
    for stage in Stage:
        full.play(stage)
    request = full.requests[offered][1]
    fresh = manual_round(num_clients=3)
    client = fresh.clients[1]
    for stage in list(Stage)[:completed]:
        fresh.play(stage)
    expected_next = list(Stage)[completed] if completed < len(Stage) else None
    # Execute / Assert
    if offered is expected_next:
        request = fresh.requests[offered][1]
        response = client.handle(request)
        assert response.stage is offered
    else:
        status_before = client.status
        with pytest.raises(UnexpectedStage):
            client.handle(request)
        assert client.status is status_before  # a stray message does not derail the client


@pytest.mark.parametrize(("reached", "called"), list(itertools.product(list(Stage), list(Stage))))
def test_server_accepts_only_the_current_stage(
    manual_round: type[ManualRound], reached: Stage, called: Stage
) -> None:
    # Prepare
    round_ = manual_round(num_clients=3)
    round_.play_until(reached)
    responses = round_.answer(reached)
    # Execute / Assert
    if called is reached:
        round_.deliver(called, responses)
        assert round_.server.next_stage is called.next()
    else:
        with pytest.raises(UnexpectedStage):
            round_.server.receive(called, {})


def test_server_refuses_everything_after_the_round_and_a_second_start(
    manual_round: type[ManualRound],
) -> None:
    # Prepare
    round_ = manual_round(num_clients=3)
    for stage in Stage:
        round_.play(stage)
    # Execute / Assert
    for stage in Stage:
        with pytest.raises(UnexpectedStage):
            round_.server.receive(stage, {})
    with pytest.raises(UnexpectedStage):
        round_.server.start([1, 2, 3])
    assert set(round_.server.statuses.values()) == {ClientStatus.UNMASKED}


def test_client_refuses_a_request_from_another_round(manual_round: type[ManualRound]) -> None:
    # Prepare
    round_ = manual_round(num_clients=3)
    request = round_.requests[Stage.ADVERTISE_KEYS][1].model_copy(update={"round": 5})
    # Execute / Assert
    with pytest.raises(RoundMismatch):
        round_.clients[1].handle(request)


def test_server_refuses_bad_invitations_and_stays_unstarted() -> None:
    # Prepare
    server = SecAggServer(SecAggConfig(num_clients=4, threshold=3), dimension=2)
    # Execute / Assert
    with pytest.raises(ValueError, match="at least t = 3"):
        server.start([1, 2])
    with pytest.raises(ValueError, match="cannot invite 5"):
        server.start([1, 2, 3, 4, 5])
    with pytest.raises(ValueError, match=r"\[1, 2\^32\)"):
        server.start([0, 1, 2])
    assert server.next_stage is None and server.statuses == {}
    assert set(server.start([1, 2, 3])) == {1, 2, 3}
