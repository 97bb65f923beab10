"""Our secure aggregation over Flower messages: equal to the plain sum, robust to dropouts."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from flwr.app import Error, Message, RecordDict

from clients import records as R
from clients.participant import CONTRIBUTION_TAIL
from clients.secagg import load_sessions
from protocol import AdvertiseKeysResponse, ProtocolAbort, parse_message
from server.federation import aggregate_in_the_clear, run_federation
from server.inprocess import InProcessGrid
from server.secagg_workflow import aggregate_securely
from server.settings import FederationRun

N_FIRMS = 4  # as in conftest.py

STAGES = ["advertise_keys", "share_keys", "masked_input", "unmask"]

Tweak = Callable[..., FederationRun]
"""The `tweak` fixture (conftest.py): a run with some run-config keys changed."""


def _round_content(settings: FederationRun) -> tuple[RecordDict, int]:
    from flwr.app import Array, ArrayRecord

    spec = settings.model_spec()
    weights = spec.initial_weights()
    content = RecordDict(
        {
            R.GLOBAL_RECORD: ArrayRecord({R.WEIGHTS: Array(weights)}),
            R.CONFIG_RECORD: settings.round_config(spec, 1).to_record(),
        }
    )
    return content, weights.size + len(CONTRIBUTION_TAIL)


def _plain_total(grid: InProcessGrid, settings: FederationRun, nodes: list[int]) -> np.ndarray:
    content, dimension = _round_content(settings)
    return aggregate_in_the_clear(grid, nodes, content, 1, settings.federation, dimension).total


def _stage_of(message: Message) -> str:
    return str(message.content.config_records[R.SECAGG_RECORD][R.STAGE])


def test_secure_sum_equals_plain_sum_within_quantisation(
    make_grid: Callable[..., InProcessGrid], settings: FederationRun
) -> None:
    # Prepare
    grid = make_grid()
    nodes = sorted(grid.get_node_ids())
    content, dimension = _round_content(settings)
    # Execute
    secure = aggregate_securely(grid, nodes, content, 1, settings.federation, dimension)
    plain = _plain_total(make_grid(), settings, nodes)
    # Assert: stochastic rounding moves each client's coordinate by < 1/scale
    bound = N_FIRMS / 2**settings.federation.scale_bits
    assert secure.contributors == nodes
    assert np.max(np.abs(secure.total - plain)) <= bound
    assert secure.transcript and {e["stage"] for e in secure.transcript} == set(STAGES)


@pytest.mark.parametrize("fault", ["silent", "error"])
@pytest.mark.parametrize("stage", STAGES)
def test_a_firm_failing_at_any_stage_is_a_dropout_the_round_survives(
    make_grid: Callable[..., InProcessGrid],
    settings: FederationRun,
    stage: str,
    fault: str,
    tweak: Tweak,
) -> None:
    # Prepare: the last node fails at `stage` (no reply, or an error reply)
    victim = 100 + N_FIRMS

    def intercept(node: int, request: Message, reply: Message) -> Message | None:
        if node != victim or _stage_of(request) != stage:
            return reply
        if fault == "silent":
            return None
        return Message(Error(code=1, reason="firm crashed"), reply_to=request)

    grid = make_grid(intercept)
    nodes = sorted(grid.get_node_ids())
    secure_settings = tweak(settings, threshold=3)
    content, dimension = _round_content(secure_settings)
    # Execute
    result = aggregate_securely(grid, nodes, content, 1, secure_settings.federation, dimension)
    # Assert: the sum is exactly the survivors' contributions (the victim's input counts only
    # if it had sent its masked input before failing)
    expected_contributors = nodes if stage == "unmask" else [n for n in nodes if n != victim]
    assert result.contributors == expected_contributors
    assert victim in result.dropped
    plain = _plain_total(make_grid(), settings, expected_contributors)
    assert np.max(np.abs(result.total - plain)) <= N_FIRMS / 2**settings.federation.scale_bits


def test_a_tampered_reply_is_rejected_and_its_sender_dropped(
    make_grid: Callable[..., InProcessGrid],
    settings: FederationRun,
    tweak: Tweak,
) -> None:
    # Prepare: a man in the middle rewrites node 102's advertised keys to claim another sender
    def intercept(node: int, request: Message, reply: Message) -> Message | None:
        if node != 102 or _stage_of(request) != "advertise_keys":
            return reply
        record = reply.content.config_records[R.SECAGG_RECORD]
        (payload,) = record[R.PAYLOADS]  # type: ignore[misc]
        genuine = parse_message(payload)
        assert isinstance(genuine, AdvertiseKeysResponse)
        forged = genuine.model_copy(update={"sender": 1})
        record[R.PAYLOADS] = [forged.to_bytes()]
        return reply

    grid = make_grid(intercept)
    nodes = sorted(grid.get_node_ids())
    secure_settings = tweak(settings, threshold=3)
    content, dimension = _round_content(secure_settings)
    # Execute
    result = aggregate_securely(grid, nodes, content, 1, secure_settings.federation, dimension)
    # Assert
    assert 102 not in result.contributors
    assert "advertise_keys" in result.dropped[102]
    plain = _plain_total(make_grid(), settings, result.contributors)
    assert np.max(np.abs(result.total - plain)) <= N_FIRMS / 2**settings.federation.scale_bits


def test_too_few_survivors_abort_the_round_without_a_sum(
    make_grid: Callable[..., InProcessGrid],
    settings: FederationRun,
    tweak: Tweak,
) -> None:
    # Prepare: three of four firms go silent after sharing keys; t = 3
    def intercept(node: int, request: Message, reply: Message) -> Message | None:
        return None if node != 101 and _stage_of(request) == "masked_input" else reply

    grid = make_grid(intercept)
    secure_settings = tweak(settings, threshold=3)
    content, dimension = _round_content(secure_settings)
    # Execute / Assert
    with pytest.raises(ProtocolAbort):
        aggregate_securely(
            grid, sorted(grid.get_node_ids()), content, 1, secure_settings.federation, dimension
        )


def test_client_state_between_stages_holds_no_secret_after_the_round(
    make_grid: Callable[..., InProcessGrid], settings: FederationRun
) -> None:
    # Prepare
    grid = make_grid()
    content, dimension = _round_content(settings)
    # Execute
    aggregate_securely(
        grid, sorted(grid.get_node_ids()), content, 1, settings.federation, dimension
    )
    # Assert
    for context in grid.contexts.values():
        assert R.CLIENT_STATE_RECORD not in context.state.config_records


def test_between_stages_a_node_keeps_keys_but_not_its_d_long_input(
    make_grid: Callable[..., InProcessGrid], settings: FederationRun
) -> None:
    # Prepare: look into node 101's own state whenever the server asks it for something
    seen: dict[str, int] = {}
    holder: list[InProcessGrid] = []

    def intercept(node: int, request: Message, reply: Message) -> Message | None:
        if node == 101 and R.CLIENT_STATE_RECORD in holder[0].contexts[node].state:
            sessions = load_sessions(holder[0].contexts[node])
            client = sessions.session(1)
            assert client is not None
            held = client.quantized_input
            seen[_stage_of(request)] = 0 if held is None else held.size
        return reply

    grid = make_grid(intercept)
    holder.append(grid)
    content, dimension = _round_content(settings)
    # Execute
    aggregate_securely(
        grid, sorted(grid.get_node_ids()), content, 1, settings.federation, dimension
    )
    # Assert: state after stages 1-3 exists and never holds the input
    assert seen == {"advertise_keys": 0, "share_keys": 0, "masked_input": 0}


# -- pipelining (SPEC.md §9): round r+1's key stages ride on round r's two messages -------------


def _messages_per_round(
    rounds: int, pipeline: bool, make_grid, settings, tweak
) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    """What node 101 is sent in each round (by group id), in order."""
    sent: dict[str, list[str]] = {}

    def intercept(node: int, request: Message, reply: Message) -> Message | None:
        if node == 101 and R.SECAGG_RECORD in request.content.config_records:
            sent.setdefault(request.metadata.group_id, []).append(_stage_of(request))
        return reply

    run_federation(
        make_grid(intercept), tweak(settings, secagg="ours", rounds=rounds, pipeline=pipeline)
    )
    return sent


def test_a_pipelined_round_costs_two_messages_once_under_way(
    make_grid: Callable[..., InProcessGrid], settings: FederationRun, tweak: Tweak
) -> None:
    # Execute
    pipelined = _messages_per_round(3, True, make_grid, settings, tweak)
    alone = _messages_per_round(3, False, make_grid, settings, tweak)
    # Assert
    assert pipelined == {
        "1": [*STAGES[:2], "masked_input+advertise_keys", "unmask+share_keys"],
        "2": ["masked_input+advertise_keys", "unmask+share_keys"],
        "3": ["masked_input", "unmask"],  # the last round prepares nothing
    }
    assert alone == {str(r): STAGES for r in (1, 2, 3)}


def test_pipelined_rounds_reach_the_same_model_as_rounds_alone(
    make_grid: Callable[..., InProcessGrid],
    settings: FederationRun,
    tweak: Tweak,
) -> None:
    # Prepare
    secure = tweak(settings, secagg="ours", rounds=3, run_dir="")
    # Execute
    pipelined = run_federation(make_grid(), tweak(secure, pipeline=True))
    alone = run_federation(make_grid(), tweak(secure, pipeline=False))
    # Assert: same seeded rounding, so the same sums bit for bit
    np.testing.assert_array_equal(pipelined.weights, alone.weights)
    assert [r["contributors"] for r in pipelined.history] == [4, 4, 4]


@pytest.mark.parametrize("message", ["masked_input+advertise_keys", "unmask+share_keys"])
def test_a_firm_failing_a_pipelined_message_drops_from_both_rounds_it_carried(
    make_grid: Callable[..., InProcessGrid],
    settings: FederationRun,
    message: str,
    tweak: Tweak,
) -> None:
    # Prepare: node 104 fails round 1's pipelined `message` (which also carries round 2's keys)
    def intercept(node: int, request: Message, reply: Message) -> Message | None:
        hit = node == 104 and request.metadata.group_id == "1" and _stage_of(request) == message
        return Message(Error(code=1, reason="firm crashed"), reply_to=request) if hit else reply

    secure = tweak(settings, secagg="ours", rounds=3, threshold=3, run_dir="")
    # Execute
    result = run_federation(make_grid(intercept), secure)
    # Assert: round 1 keeps 104's input only if it had sent it; round 2 runs without 104
    # (it never took part in round 2's key stages); round 3 has it back
    first, second, third = result.history
    assert first["contributors"] == (4 if message.startswith("unmask") else 3)
    assert second["contributors"] == 3
    assert str(104) in second["dropped"]
    assert third["contributors"] == 4


def test_resuming_drops_the_round_nodes_had_prepared_and_starts_it_afresh(
    make_grid: Callable[..., InProcessGrid],
    settings: FederationRun,
    tweak: Tweak,
) -> None:
    # Prepare: the server dies after round 1, leaving round 2 prepared at every node
    secure = tweak(settings, secagg="ours", rounds=2)
    grid = make_grid()
    run_federation(grid, secure, stop_after=1)
    assert all(load_sessions(c).open_rounds == [2] for c in grid.contexts.values())
    # Execute: a new server (no prepared round) resumes on the same nodes
    resumed = run_federation(grid, tweak(secure, resume=True))
    # Assert
    assert resumed.history[-1]["contributors"] == 4
    assert all(R.CLIENT_STATE_RECORD not in c.state for c in grid.contexts.values())


def test_when_the_current_round_aborts_the_prepared_round_goes_on(
    make_grid: Callable[..., InProcessGrid],
    settings: FederationRun,
    tweak: Tweak,
) -> None:
    # Prepare: in round 1's message A, two of four firms send a masked vector of the wrong
    # length (t = 3: round 1 aborts) but valid keys for round 2
    sent: dict[str, list[str]] = {}

    def intercept(node: int, request: Message, reply: Message) -> Message | None:
        if node == 101:
            sent.setdefault(request.metadata.group_id, []).append(_stage_of(request))
        if node in (103, 104) and _stage_of(request) == "masked_input+advertise_keys":
            record = reply.content.config_records[R.SECAGG_RECORD]
            masked, keys = record[R.PAYLOADS]  # type: ignore[misc]
            short = parse_message(masked).model_copy(update={"masked_vector": b"\0" * 8})
            record[R.PAYLOADS] = [short.to_bytes(), keys]
        return reply

    secure = tweak(settings, secagg="ours", rounds=2, threshold=3, run_dir="")
    # Execute
    result = run_federation(make_grid(intercept), secure)
    # Assert: round 1 aborted; round 2 kept its keys and only finished its key stages
    first, second = result.history
    assert "fewer than t" in first["aborted"]
    assert second["contributors"] == 4
    assert sent["2"] == ["share_keys", "masked_input", "unmask"]
