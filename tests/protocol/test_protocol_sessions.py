"""Pipelined rounds (SPEC.md §9): round r+1's key stages ride on round r's messages.

The driver below is a transport in miniature: one batch per client per message, the server's
per-round state machines fed in the order the Flower workflow feeds them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import (
    MAX_OPEN_ROUNDS,
    AdvertiseKeysRequest,
    AggregateResult,
    ClientSessions,
    DecryptionError,
    MalformedMessage,
    ProtocolAbort,
    ProtocolError,
    SecAggClient,
    SecAggConfig,
    SecAggServer,
    SessionsState,
    Stage,
    UnexpectedStage,
    quantize,
    to_signed,
)

DIMENSION = 6


def _input(client: int, round_number: int) -> np.ndarray:
    return np.random.default_rng([client, round_number]).uniform(-0.5, 0.5, DIMENSION)


def _quantized(config: SecAggConfig, client: int, round_number: int) -> np.ndarray:
    rng = np.random.default_rng(1000 * client + round_number)
    return to_signed(quantize(_input(client, round_number), config, rng), config)


@dataclass
class PipelinedFederation:
    """n clients, every round's cohort = all of them; `silent` = {(client, round, message)}."""

    config: SecAggConfig
    silent: set[tuple[int, int, str]] = field(default_factory=set)
    persist: bool = False
    """Rebuild every client from its stored bytes after every message, as a SuperNode does."""
    sessions: dict[int, ClientSessions] = field(default_factory=dict)
    results: dict[int, AggregateResult | ProtocolAbort] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.sessions = {c: ClientSessions() for c in range(1, self.config.num_clients + 1)}

    def _send(
        self, label: str, slot: int, parts: list[tuple[SecAggServer, dict[int, object]]]
    ) -> list[dict[int, object]]:
        """One message per client carrying each part's request for it; per-part responses."""
        responses: list[dict[int, object]] = [{} for _ in parts]
        for client, sessions in self.sessions.items():
            batch = [(i, requests[client]) for i, (_, requests) in enumerate(parts)]
            batch = [(i, request) for i, request in batch if request is not None]
            if not batch or (client, slot, label) in self.silent:
                continue

            def provide(session: SecAggClient, client: int = client) -> None:
                round_number = session.round_number
                assert round_number is not None
                session.provide_input(
                    _input(client, round_number), rounding_seed=1000 * client + round_number
                )

            answers = sessions.handle_batch([r for _, r in batch], provide)  # type: ignore[misc]
            if self.persist:
                self.sessions[client] = ClientSessions.from_bytes(sessions.to_bytes())
            for (i, _), answer in zip(batch, answers, strict=True):
                responses[i][client] = answer
        return responses

    def run(self, rounds: int) -> None:
        n = self.config.num_clients
        servers = {r: SecAggServer(self.config, DIMENSION, r) for r in range(1, rounds + 1)}
        pending: dict[int, dict[int, object]] = {1: dict(servers[1].start(range(1, n + 1)))}
        # bootstrap: round 1's key stages on their own
        try:
            for handler in (servers[1].advertise_keys, servers[1].share_keys):
                (answers,) = self._send("bootstrap", 1, [(servers[1], self._all(pending[1]))])
                pending[1] = dict(handler(answers))  # type: ignore[arg-type]
        except ProtocolAbort as abort:
            self.results[1] = abort
            del pending[1]
        for r in range(1, rounds + 1):
            if r + 1 <= rounds:
                pending[r + 1] = dict(servers[r + 1].start(range(1, n + 1)))
            for label, now, ahead in (
                ("A", servers[r].masked_input, "advertise_keys"),
                ("B", servers[r].unmask, "share_keys"),
            ):
                parts = [(servers[r], self._all(pending.get(r, {})))]
                if r + 1 in pending:
                    parts.append((servers[r + 1], self._all(pending[r + 1])))
                answers = self._send(label, r, parts)
                if r + 1 in pending:  # the pipelined round first, as the workflow does
                    try:
                        step = getattr(servers[r + 1], ahead)(answers[1])
                        pending[r + 1] = dict(step)
                    except ProtocolAbort:
                        del pending[r + 1]
                if r not in pending:
                    continue
                try:
                    outcome = now(answers[0])  # type: ignore[arg-type]
                except ProtocolAbort as abort:
                    self.results[r] = abort
                    del pending[r]
                    continue
                if isinstance(outcome, AggregateResult):
                    self.results[r] = outcome
                    del pending[r]
                else:
                    pending[r] = dict(outcome)
            if r + 1 <= rounds and r + 1 not in pending:  # restart a round that aborted early
                servers[r + 1] = SecAggServer(self.config, DIMENSION, r + 1)
                pending[r + 1] = dict(servers[r + 1].start(range(1, n + 1)))
                try:
                    for handler in (servers[r + 1].advertise_keys, servers[r + 1].share_keys):
                        parts = [(servers[r + 1], self._all(pending[r + 1]))]
                        (answers,) = self._send("bootstrap", r + 1, parts)
                        pending[r + 1] = dict(handler(answers))  # type: ignore[arg-type]
                except ProtocolAbort as abort:
                    self.results[r + 1] = abort
                    del pending[r + 1]

    def _all(self, requests: dict[int, object]) -> dict[int, object]:
        return {c: requests.get(c) for c in self.sessions}


def _config(n: int, threshold: int) -> SecAggConfig:
    return SecAggConfig(num_clients=n, threshold=threshold, scale=2.0**12)


def test_every_pipelined_round_sums_exactly_and_leaves_no_secret() -> None:
    # Prepare
    federation = PipelinedFederation(_config(5, 3))
    # Execute
    federation.run(rounds=4)
    # Assert
    for r in range(1, 5):
        result = federation.results[r]
        assert isinstance(result, AggregateResult)
        assert result.survivors == (1, 2, 3, 4, 5)
        expected = sum(_quantized(federation.config, c, r) for c in result.survivors)
        np.testing.assert_array_equal(result.integer_sum, expected)
    assert all(not s.open_rounds for s in federation.sessions.values())


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(4, 7),
    rounds=st.integers(2, 4),
    events=st.lists(
        st.tuples(st.integers(1, 7), st.integers(1, 4), st.sampled_from(["A", "B", "bootstrap"])),
        max_size=6,
    ),
    persist=st.booleans(),
)
def test_pipelined_rounds_are_exact_or_abort_under_any_dropouts(
    n: int, rounds: int, events: list[tuple[int, int, str]], persist: bool
) -> None:
    # Prepare: any client may go silent in any message of any round; with `persist`, every
    # client is rebuilt from its stored bytes after every message
    threshold = n // 2 + 1  # the smallest t the config accepts on the complete graph
    silent = {e for e in events if e[0] <= n}
    federation = PipelinedFederation(_config(n, threshold), silent=silent, persist=persist)
    # Execute
    federation.run(rounds)
    # Assert: each round either sums exactly its survivors' inputs or aborted below t
    for r in range(1, rounds + 1):
        result = federation.results[r]
        if isinstance(result, ProtocolAbort):
            assert "fewer than t" in str(result) or "remain" in str(result)
            continue
        assert len(result.survivors) >= threshold
        assert not {c for c, rr, m in federation.silent if rr == r and m == "A"} & set(
            result.survivors
        )
        expected = sum(_quantized(federation.config, c, r) for c in result.survivors)
        np.testing.assert_array_equal(result.integer_sum, expected)


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
    federation = PipelinedFederation(_config(3, 2))
    federation.run(rounds=1)
    assert isinstance(federation.results[1], AggregateResult)
    assert all(s.session(1) is None for s in federation.sessions.values())
    assert Stage.UNMASK  # the last stage closed every session


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
