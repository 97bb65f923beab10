"""Every pair of stage transitions, in both modes: only the expected next stage is accepted, by
either side (a semi-honest round has no consistency check, and refuses one)."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import pytest

from protocol import (
    MALICIOUS_STAGE_ORDER,
    ClientStatus,
    Mode,
    RoundMismatch,
    SecAggConfig,
    SecAggServer,
    Stage,
    UnexpectedStage,
    stage_order,
)

if TYPE_CHECKING:
    from conftest import ManualRound

MODES: tuple[Mode, ...] = ("semi-honest", "malicious")


def _config(mode: Mode) -> SecAggConfig:
    return SecAggConfig(num_clients=3, mode=mode)


def _client_cases() -> list[tuple[Mode, int, Stage]]:
    """(mode, stages the client completed: 0 to all of them, a request of any stage)."""
    return [
        (mode, completed, offered)
        for mode in MODES
        for completed in range(len(stage_order(mode)) + 1)
        for offered in MALICIOUS_STAGE_ORDER
    ]


@pytest.mark.parametrize(("mode", "completed", "offered"), _client_cases())
def test_client_accepts_only_the_next_stage(
    manual_round: type[ManualRound], mode: Mode, completed: int, offered: Stage
) -> None:
    # Prepare: full rounds give a real request of every stage for client 1 (a semi-honest one
    # is offered the consistency-check request of a malicious round).
    order = stage_order(mode)
    full: dict[Mode, Any] = {m: manual_round(num_clients=3, config=_config(m)) for m in MODES}
    for round_ in full.values():
        round_.play_all()
    source = full[mode] if offered in order else full["malicious"]
    request = source.requests[offered][1]
    fresh = manual_round(num_clients=3, config=_config(mode))
    client = fresh.clients[1]
    for stage in order[:completed]:
        fresh.play(stage)
    expected_next = order[completed] if completed < len(order) else None
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


def _server_cases() -> list[tuple[Mode, Stage, Stage]]:
    return [
        (mode, reached, called)
        for mode in MODES
        for reached, called in itertools.product(stage_order(mode), MALICIOUS_STAGE_ORDER)
    ]


@pytest.mark.parametrize(("mode", "reached", "called"), _server_cases())
def test_server_accepts_only_the_current_stage(
    manual_round: type[ManualRound], mode: Mode, reached: Stage, called: Stage
) -> None:
    # Prepare
    round_ = manual_round(num_clients=3, config=_config(mode))
    round_.play_until(reached)
    responses = round_.answer(reached)
    # Execute / Assert
    if called is reached:
        round_.deliver(called, responses)
        assert round_.server.next_stage is called.next(mode)
    else:
        with pytest.raises(UnexpectedStage):
            round_.server.receive(called, {})


@pytest.mark.parametrize("mode", MODES)
def test_server_refuses_everything_after_the_round_and_a_second_start(
    manual_round: type[ManualRound], mode: Mode
) -> None:
    # Prepare
    round_ = manual_round(num_clients=3, config=_config(mode))
    round_.play_all()
    # Execute / Assert
    for stage in MALICIOUS_STAGE_ORDER:
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
