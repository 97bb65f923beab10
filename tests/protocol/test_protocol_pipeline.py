"""The pipeline scheduler (SPEC.md §9): what each message carries, and how rounds stay apart.

The nodes are `protocol.nodes.LocalNodes`: real `ClientSessions` answering from wire bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pytest
from fakes.transport import Recorder, assert_exact

from protocol import (
    STAGE_ORDER,
    Cohort,
    MaskedInputResponse,
    PipelineScheduler,
    SecAggConfig,
    Stage,
    parse_message,
)
from protocol.nodes import DropoutPlan, LocalNodes
from protocol.pipeline import NoReply, Part, Reply, TransportMessage

DIMENSION = 5
BIG = 2**40  # transport node ids are 64-bit in a Flower federation


def _config(n: int = 5, threshold: int = 3) -> SecAggConfig:
    return SecAggConfig(num_clients=n, threshold=threshold, scale=2.0**12)


def _nodes(
    cohorts: Mapping[int, Iterable[int]],
    dropout: DropoutPlan | None = None,
    dimensions: Mapping[int, int] | None = None,
) -> LocalNodes:
    """Nodes with a random input for each round they are in."""
    inputs = {
        r: {
            node: np.random.default_rng([r, node]).uniform(-1, 1, (dimensions or {}).get(r, 5))
            for node in nodes
        }
        for r, nodes in cohorts.items()
    }
    return LocalNodes(inputs, dropout=dropout)


def test_messages_a_and_b_carry_the_current_round_with_the_next_rounds_key_stages() -> None:
    # Prepare: three rounds over four nodes with 64-bit ids
    ids = [BIG + 7, BIG + 3, BIG + 11, BIG + 5]
    nodes = _nodes({r: ids for r in (1, 2, 3)})
    send = Recorder(nodes)
    scheduler = PipelineScheduler()
    cohort = Cohort.of(ids, _config())
    # Execute
    rounds = [
        scheduler.run_round(r, cohort, DIMENSION, send, cohort if r < 3 else None)
        for r in (1, 2, 3)
    ]
    # Assert: the first round bootstraps, the last prepares nothing
    assert send.labels() == [
        (1, "advertise_keys"),
        (1, "share_keys"),
        (1, "masked_input+advertise_keys"),
        (1, "unmask+share_keys"),
        (2, "masked_input+advertise_keys"),
        (2, "unmask+share_keys"),
        (3, "masked_input"),
        (3, "unmask"),
    ]
    message_a = send.sent[2]
    assert list(message_a.batches) == sorted(ids)
    for client_id, node in enumerate(sorted(ids), start=1):
        batch = message_a.batches[node]
        assert batch.parts == (Part(1, Stage.MASKED_INPUT), Part(2, Stage.ADVERTISE_KEYS))
        requests = [parse_message(payload) for payload in batch.payloads]
        assert [(m.round, m.stage, m.receiver) for m in requests] == [
            (1, Stage.MASKED_INPUT, client_id),
            (2, Stage.ADVERTISE_KEYS, client_id),
        ]
    for round_ in rounds:
        assert_exact(round_, nodes)
        assert sorted(round_.contributors()) == sorted(ids)
    assert scheduler.prepared is None
    assert all(not sessions.open_rounds for sessions in nodes.sessions.values())


def test_without_pipelining_every_stage_is_a_message_of_its_own() -> None:
    # Prepare
    nodes = _nodes({r: range(1, 5) for r in (1, 2)})
    send = Recorder(nodes)
    scheduler = PipelineScheduler(pipelined=False)
    cohort = Cohort.of(range(1, 5), _config())
    # Execute
    first = scheduler.run_round(1, cohort, DIMENSION, send, cohort)
    prepared = scheduler.prepared
    second = scheduler.run_round(2, cohort, DIMENSION, send)
    # Assert
    stages = [stage.value for stage in STAGE_ORDER]
    assert send.labels() == [(1, s) for s in stages] + [(2, s) for s in stages]
    assert prepared is None
    assert_exact(first, nodes)
    assert_exact(second, nodes)


def test_a_prepared_round_that_aborts_leaves_the_current_round_alone() -> None:
    # Prepare: round 2's cohort is three nodes (t = 3); node 1 is silent in round 1's message A,
    # which also carries round 2's advertise request
    nodes = _nodes({1: range(1, 6), 2: [1, 2, 3]}, dropout={1: {1: Stage.MASKED_INPUT}})
    send = Recorder(nodes)
    scheduler = PipelineScheduler()
    config = _config()
    # Execute
    first = scheduler.run_round(
        1, Cohort.of(range(1, 6), config), DIMENSION, send, Cohort.of([1, 2, 3], config)
    )
    abandoned = scheduler.prepared
    second = scheduler.run_round(2, Cohort.of([1, 2, 3], config), DIMENSION, send)
    # Assert: round 1 sums without node 1; round 2 aborted ahead, then ran afresh with node 1
    assert_exact(first, nodes)
    assert first.contributors() == [2, 3, 4, 5]
    assert abandoned is None
    assert send.labels()[2:] == [
        (1, "masked_input+advertise_keys"),
        (1, "unmask"),  # nothing left to prepare
        (2, "advertise_keys"),
        (2, "share_keys"),
        (2, "masked_input"),
        (2, "unmask"),
    ]
    assert_exact(second, nodes)
    assert second.contributors() == [1, 2, 3]


def test_when_the_current_round_aborts_the_prepared_round_goes_on() -> None:
    # Prepare: in round 1's message A, nodes 3-5 send a masked vector of the wrong length
    # (t = 3: round 1 aborts) but valid keys for round 2
    nodes = _nodes({1: range(1, 6), 2: range(1, 6)})
    send = Recorder(nodes)

    def tampering(message: TransportMessage) -> Mapping[int, Reply]:
        replies = dict(send(message))
        if (message.round_number, message.label) == (1, "masked_input+advertise_keys"):
            for node in (3, 4, 5):
                masked, keys = replies[node]  # type: ignore[misc]
                short = parse_message(masked).model_copy(update={"masked_vector": b"\0" * 8})
                assert isinstance(short, MaskedInputResponse)
                replies[node] = [short.to_bytes(), keys]
        return replies

    scheduler = PipelineScheduler()
    cohort = Cohort.of(range(1, 6), _config())
    # Execute
    first = scheduler.run_round(1, cohort, DIMENSION, tampering, cohort)
    prepared = scheduler.prepared
    prepared_stage = None if prepared is None else prepared.stage
    second = scheduler.run_round(2, cohort, DIMENSION, tampering)
    # Assert: round 1 aborted before asking for any share; round 2 kept its keys and only
    # finished its key stages
    assert first.aborted is not None and first.aborted.stage is Stage.MASKED_INPUT
    assert first.outcome is None and first.contributors() == []
    assert "fewer than t" in str(first.aborted)
    assert prepared is second and prepared_stage is Stage.SHARE_KEYS
    assert send.labels()[2:] == [
        (1, "masked_input+advertise_keys"),
        (2, "share_keys"),
        (2, "masked_input"),
        (2, "unmask"),
    ]
    assert_exact(second, nodes)
    assert second.contributors() == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("change", ["cohort", "dimension", "config"])
def test_a_changed_next_round_starts_afresh(change: str) -> None:
    # Prepare: round 2 is prepared for nodes 1-4 and dimension 5, then asked for otherwise
    members = [1, 2, 3, 5] if change == "cohort" else [1, 2, 3, 4]
    dimension = DIMENSION + 2 if change == "dimension" else DIMENSION
    config = _config(threshold=4) if change == "config" else _config()
    nodes = _nodes({1: [1, 2, 3, 4], 2: members}, dimensions={2: dimension})
    send = Recorder(nodes)
    scheduler = PipelineScheduler()
    prepared = Cohort.of([1, 2, 3, 4], _config())
    scheduler.run_round(1, prepared, DIMENSION, send, prepared)
    assert scheduler.prepared is not None
    # Execute
    second = scheduler.run_round(2, Cohort.of(members, config), dimension, send)
    # Assert: round 2's key stages ran again, for the new cohort, and it sums exactly
    assert send.labels()[4:] == [(2, s.value) for s in STAGE_ORDER]
    assert list(send.sent[4].batches) == members
    assert_exact(second, nodes)
    assert second.contributors() == members
    assert second.server.threshold == config.reconstruction_threshold


def test_a_failed_reply_drops_its_node_from_every_round_it_carried() -> None:
    # Prepare: in round 1's message A node 2 crashes, node 3 answers garbage and node 4 answers
    # for one round only
    nodes = _nodes({1: range(1, 8), 2: range(1, 8)})

    def faulty(message: TransportMessage) -> Mapping[int, Reply]:
        replies = dict(nodes(message))
        if (message.round_number, message.label) == (1, "masked_input+advertise_keys"):
            replies[2] = NoReply("error 1: firm crashed")
            replies[3] = [b"garbage", b"garbage"]
            replies[4] = list(replies[4])[:1]  # type: ignore[arg-type]
            replies[99] = [b"from a node nobody asked"]
        return replies

    scheduler = PipelineScheduler()
    cohort = Cohort.of(range(1, 8), _config(n=7, threshold=4))
    # Execute
    first = scheduler.run_round(1, cohort, DIMENSION, faulty, cohort)
    second = scheduler.prepared
    # Assert: both rounds lost nodes 2-4, each with the transport's reason at its own stage
    assert first.contributors() == [1, 5, 6, 7]
    assert first.aborted is None
    assert_exact(first, nodes)
    assert second is not None and second.aborted is None
    for round_, stage in ((first, "masked_input"), (second, "advertise_keys")):
        assert round_.transport_drops[2] == f"{stage}: error 1: firm crashed"
        assert round_.transport_drops[3].startswith(f"{stage}: unreadable reply (")
        assert "expected one response for each of rounds [1, 2]" in round_.transport_drops[4]
        assert set(round_.transport_drops) == {2, 3, 4}
    assert first.dropped()[2] == "masked_input: error 1: firm crashed"
    assert sorted(second.server.drops) == [2, 3, 4]


def test_each_round_keeps_its_timings_per_stage_and_message() -> None:
    # Prepare
    nodes = _nodes({1: range(1, 5), 2: range(1, 5)})
    scheduler = PipelineScheduler()
    cohort = Cohort.of(range(1, 5), _config())
    # Execute
    first = scheduler.run_round(1, cohort, DIMENSION, nodes, cohort)
    second = scheduler.run_round(2, cohort, DIMENSION, nodes)
    # Assert: the state machine per stage; each message's round trip and local work
    messages = ["advertise_keys", "share_keys", "masked_input+advertise_keys", "unmask+share_keys"]
    assert set(first.seconds) == {f"{stage.value}.server" for stage in STAGE_ORDER} | {
        f"{label}.{part}" for label in messages for part in ("exchange", "transport")
    }
    assert {"advertise_keys.server", "masked_input.exchange", "unmask.server"} <= set(
        second.seconds
    )
    assert all(seconds >= 0 for seconds in first.seconds.values())


def test_a_cohort_refuses_repeated_nodes() -> None:
    with pytest.raises(ValueError, match="distinct"):
        Cohort.of([1, 2, 2], _config())
