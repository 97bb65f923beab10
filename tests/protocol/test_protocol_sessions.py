"""Pipelined rounds (SPEC.md §9): round r+1's key stages ride on round r's messages.

Driven by the real scheduler (`protocol.pipeline`) over real nodes (`protocol.nodes.LocalNodes`,
one `ClientSessions` each), as the Flower workflow drives firms; the rest of the file checks
`ClientSessions` itself.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import (
    MAX_OPEN_ROUNDS,
    STAGE_ORDER,
    AdvertiseKeysRequest,
    ClientSessions,
    Cohort,
    ConfigMismatch,
    DecryptionError,
    MalformedMessage,
    PipelineScheduler,
    ProtocolAbort,
    ProtocolError,
    SecAggClient,
    SecAggConfig,
    SecAggServer,
    SessionsState,
    Stage,
    UnexpectedStage,
    run_rounds,
    to_signed,
)
from protocol.nodes import LocalNodes

DIMENSION = 6
MASKED = Stage.MASKED_INPUT.position


def _input(client: int, round_number: int) -> np.ndarray:
    return np.random.default_rng([client, round_number]).uniform(-0.5, 0.5, DIMENSION)


def _config(n: int, threshold: int) -> SecAggConfig:
    return SecAggConfig(num_clients=n, threshold=threshold, scale=2.0**12)


def _federation(n: int, rounds: int, persist: bool = False) -> LocalNodes:
    """n nodes, every round's cohort = all of them."""
    inputs = {r: {c: _input(c, r) for c in range(1, n + 1)} for r in range(1, rounds + 1)}
    return LocalNodes(inputs, rounding_seed=0, persist=persist)


def test_every_pipelined_round_sums_exactly_and_leaves_no_secret() -> None:
    # Prepare
    config = _config(5, 3)
    nodes = _federation(5, rounds=4)
    cohort = Cohort.of(range(1, 6), config)
    scheduler = PipelineScheduler()
    # Execute
    rounds = [
        scheduler.run_round(r, cohort, DIMENSION, nodes, cohort if r < 4 else None)
        for r in range(1, 5)
    ]
    # Assert
    for round_ in rounds:
        assert round_.outcome is not None
        assert round_.outcome.survivors == (1, 2, 3, 4, 5)
        encoded = sum(nodes.encoded[round_.number][c] for c in range(1, 6))
        expected = to_signed(np.asarray(encoded, dtype=np.uint32), config)
        np.testing.assert_array_equal(round_.outcome.integer_sum, expected)
    assert nodes.messages[2] == ["masked_input+advertise_keys", "unmask+share_keys"]
    assert all(not s.open_rounds for s in nodes.sessions.values())


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(4, 7),
    rounds=st.integers(2, 4),
    events=st.lists(
        st.tuples(st.integers(1, 7), st.integers(1, 4), st.sampled_from(STAGE_ORDER)),
        max_size=6,
    ),
    persist=st.booleans(),
)
def test_pipelined_rounds_are_exact_or_abort_under_any_dropouts(
    n: int, rounds: int, events: list[tuple[int, int, Stage]], persist: bool
) -> None:
    # Prepare: any client may go silent in any message of any round (and with it every round
    # the message carries); with `persist`, every client is rebuilt from its stored bytes after
    # every message
    threshold = n // 2 + 1  # the smallest t the config accepts on the complete graph
    plan: dict[int, dict[int, Stage]] = {}
    for client, r, stage in events:
        if client <= n and r <= rounds:
            earliest = plan.setdefault(r, {}).get(client, stage)
            plan[r][client] = min(earliest, stage, key=lambda s: s.position)
    inputs = [{c: _input(c, r) for c in range(1, n + 1)} for r in range(1, rounds + 1)]
    # Execute
    outcomes = run_rounds(_config(n, threshold), inputs, dropout=plan, persist=persist)
    # Assert: each round either sums exactly its survivors' inputs or aborted below t
    assert [outcome.round_number for outcome in outcomes] == list(range(1, rounds + 1))
    for outcome in outcomes:
        if outcome.abort is not None:
            assert isinstance(outcome.abort, ProtocolAbort) and outcome.result is None
            assert "fewer than t" in str(outcome.abort) or "remain" in str(outcome.abort)
            continue
        assert outcome.result is not None and outcome.exact
        survivors = set(outcome.result.survivors)
        assert len(survivors) >= threshold
        silent = plan.get(outcome.round_number, {})
        assert not {c for c, s in silent.items() if s.position <= MASKED} & survivors
        assert not outcome.result.client_errors


# -- the container's own rules ------------------------------------------------------------


def _advertise(round_number: int, client: int = 1, n: int = 3) -> AdvertiseKeysRequest:
    server = SecAggServer(_config(n, 2), DIMENSION, round_number)
    return server.start(range(1, n + 1))[client]


def test_a_batch_holds_one_request_per_round() -> None:
    with pytest.raises(MalformedMessage, match="one request per round"):
        ClientSessions().handle_batch([_advertise(1), _advertise(1)])
    with pytest.raises(MalformedMessage, match="one request per round"):
        ClientSessions().handle_batch([])


def test_a_later_stage_for_a_round_never_opened_is_refused() -> None:
    server = SecAggServer(_config(3, 2), DIMENSION, 4)
    clients = {c: SecAggClient(c, _config(3, 2), dimension=DIMENSION) for c in (1, 2, 3)}
    requests = server.advertise_keys(
        {c: clients[c].advertise_keys(r) for c, r in server.start([1, 2, 3]).items()}
    )
    with pytest.raises(UnexpectedStage, match="no open round 4"):
        ClientSessions().handle_batch([requests[1]])


def test_advertising_again_reopens_the_round_with_fresh_keys() -> None:
    sessions = ClientSessions()
    first = sessions.handle_batch([_advertise(2)])[0]
    again = sessions.handle_batch([_advertise(2)])[0]
    assert sessions.open_rounds == [2]
    assert first.masking_public_key != again.masking_public_key  # type: ignore[union-attr]


def test_rounds_the_server_moved_past_are_forgotten() -> None:
    sessions = ClientSessions()
    sessions.handle_batch([_advertise(1)])
    sessions.handle_batch([_advertise(3)])
    assert sessions.open_rounds == [3]


def test_no_more_than_two_rounds_are_open_at_once() -> None:
    sessions = ClientSessions()
    sessions.handle_batch([_advertise(1), _advertise(2)])
    assert MAX_OPEN_ROUNDS == 2
    with pytest.raises(MalformedMessage, match="at most 2 rounds"):
        sessions.handle_batch([_advertise(1), _advertise(3)])


def test_a_fault_in_one_request_forgets_every_round_of_the_batch() -> None:
    # Prepare: round 1 is open; the server's next batch pairs a tampered masked-input request
    # of round 1 with round 2's advertise request
    config = _config(3, 2)
    server = SecAggServer(config, DIMENSION, 1)
    sessions = {c: ClientSessions() for c in (1, 2, 3)}
    requests: dict[int, object] = dict(server.start([1, 2, 3]))
    for handler in (server.advertise_keys, server.share_keys):
        answers = {c: sessions[c].handle_batch([requests[c]])[0] for c in (1, 2, 3)}  # type: ignore[list-item]
        requests = dict(handler(answers))  # type: ignore[arg-type]
    masked = requests[1]
    sealed = masked.shares[0]  # type: ignore[attr-defined]
    forged = sealed.model_copy(update={"ciphertext": bytes(len(sealed.ciphertext))})
    tampered = masked.model_copy(update={"shares": [forged, *masked.shares[1:]]})  # type: ignore[attr-defined]
    # Execute / Assert
    with pytest.raises(DecryptionError):
        sessions[1].handle_batch(
            [tampered, _advertise(2)], lambda c: c.provide_input(np.zeros(DIMENSION))
        )
    assert sessions[1].open_rounds == []


def test_responses_are_not_requests() -> None:
    sessions = ClientSessions()
    response = sessions.handle_batch([_advertise(1)])[0]
    with pytest.raises(MalformedMessage, match="requests only"):
        ClientSessions().handle_batch([response])  # type: ignore[list-item]


def test_a_round_is_forgotten_once_its_unmask_is_answered() -> None:
    # Prepare
    nodes = _federation(3, rounds=1)
    scheduler = PipelineScheduler()
    # Execute
    round_ = scheduler.run_round(1, Cohort.of([1, 2, 3], _config(3, 2)), DIMENSION, nodes)
    # Assert
    assert round_.outcome is not None
    assert all(s.session(1) is None for s in nodes.sessions.values())


# -- the state a node stores between messages (protocol/state.py) ---------------------------


def test_stored_state_round_trips_and_holds_only_what_the_stage_needs() -> None:
    # Prepare: a round played up to the unmask request, with each client's state taken after
    # every stage
    config = _config(4, 3)
    server = SecAggServer(config, DIMENSION, 7)
    sessions = {c: ClientSessions() for c in (1, 2, 3, 4)}
    requests: dict[int, object] = dict(server.start([1, 2, 3, 4]))
    states: list[SessionsState] = []
    for handler in (server.advertise_keys, server.share_keys, server.masked_input):
        answers = {
            c: sessions[c].handle_batch(
                [requests[c]],  # type: ignore[list-item]
                lambda client: client.provide_input(np.full(DIMENSION, 0.25)),
            )[0]
            for c in requests
        }
        states.append(sessions[1].to_state())
        sessions = {c: ClientSessions.from_bytes(s.to_bytes()) for c, s in sessions.items()}
        requests = dict(handler(answers))  # type: ignore[arg-type]
    # Assert: bytes round-trip exactly
    for state in states:
        assert SessionsState.model_validate_json(state.model_dump_json()) == state
    after_advertise, after_share, after_mask = (s.rounds[7] for s in states)
    assert after_advertise.masking_private_key and not after_advertise.channels
    assert len(after_share.channels) == 3 and list(after_share.held_self_mask_shares) == [1]
    assert after_mask.masking_private_key is None and after_mask.encryption_private_key is None
    assert after_mask.self_mask_seed is None and after_mask.quantized_input is None
    assert sorted(after_mask.held_key_shares) == [1, 2, 3, 4]
    # Execute: the rebuilt clients finish the round
    result = server.unmask({c: sessions[c].handle_batch([requests[c]])[0] for c in requests})  # type: ignore[list-item]
    # Assert
    np.testing.assert_allclose(result.float_sum, np.full(DIMENSION, 1.0), atol=4 / config.scale)
    assert all(not s.open_rounds for s in sessions.values())


def test_a_stored_state_with_a_bad_key_is_refused() -> None:
    sessions = ClientSessions()
    sessions.handle_batch([_advertise(1)])
    data = json.loads(sessions.to_bytes())
    data["rounds"]["1"]["masking_private_key"] = "AAAA"  # 3 bytes, not 32
    with pytest.raises(MalformedMessage, match="masking_private_key"):
        ClientSessions.from_bytes(json.dumps(data).encode())


@pytest.mark.parametrize(
    "bad_input",
    [
        np.array([0.1, np.nan, 0.2, 0.0, 0.0, 0.0]),
        np.full(DIMENSION, np.inf),
        ["0.1", "x", "0", "0", "0", "0"],
        [object()] * DIMENSION,
        "not a vector",
    ],
    ids=["nan", "inf", "non-numeric-text", "object", "string"],
)
def test_a_non_finite_or_non_numeric_input_is_a_protocol_error_that_forgets_the_round(
    bad_input: object,
) -> None:
    # Prepare: round 1 shared keys; the firm's training returns garbage when asked to mask
    config = _config(3, 2)
    server = SecAggServer(config, DIMENSION, 1)
    sessions = {c: ClientSessions() for c in (1, 2, 3)}
    requests: dict[int, object] = dict(server.start([1, 2, 3]))
    for handler in (server.advertise_keys, server.share_keys):
        answers = {c: sessions[c].handle_batch([requests[c]])[0] for c in (1, 2, 3)}  # type: ignore[list-item]
        requests = dict(handler(answers))  # type: ignore[arg-type]
    client = sessions[1].session(1)
    assert client is not None
    # Execute / Assert: it used to raise ValueError/TypeError and keep the round open
    with pytest.raises(ProtocolError, match="input"):
        sessions[1].handle_batch(
            [requests[1], _advertise(2)],  # type: ignore[list-item]
            lambda c: c.provide_input(bad_input),  # type: ignore[arg-type]
        )
    assert sessions[1].open_rounds == []
    left = client.to_state()
    assert left.masking_private_key is None and left.encryption_private_key is None
    assert left.self_mask_seed is None and not left.channels
    assert not left.held_self_mask_shares and not left.held_key_shares


# -- a node's own policy (issue 15: a firm accepts whatever the server proposes) -------------


def test_a_node_policy_refuses_a_weaker_config_before_the_round_has_any_key() -> None:
    # Prepare: a node that joins rounds of at least 4 clients only
    def at_least_four(config: SecAggConfig) -> str | None:
        return None if config.num_clients >= 4 else f"n = {config.num_clients} < 4"

    def proposal(round_number: int, n: int) -> AdvertiseKeysRequest:
        return SecAggServer(SecAggConfig(num_clients=n), DIMENSION, round_number).start(
            range(1, n + 1)
        )[1]

    sessions = ClientSessions(policy=at_least_four)
    # Execute / Assert: n = 3 is refused with the node's reason, and no round is opened
    with pytest.raises(ConfigMismatch, match=r"client 1 refuses round 1's config: n = 3 < 4"):
        sessions.handle_batch([proposal(1, 3)])
    assert sessions.open_rounds == []
    sessions.handle_batch([proposal(2, 4)])
    assert sessions.open_rounds == [2]
    # ... and a node loaded from its stored state keeps its policy
    restored = ClientSessions.from_bytes(sessions.to_bytes(), policy=at_least_four)
    with pytest.raises(ConfigMismatch, match="refuses round 3's config"):
        restored.handle_batch([proposal(3, 3)])
