"""The malicious-server mode (SPEC.md §10): signed keys, a consistency check, and the rules each
side enforces with them."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import (
    ClientSessions,
    ConfigMismatch,
    ConsistencyCheckRequest,
    DecryptionError,
    DropReason,
    IdentityManifest,
    InvalidSignature,
    MalformedMessage,
    ProtocolAbort,
    RefusedRequest,
    SecAggClient,
    SecAggConfig,
    SecAggServer,
    ShareKeysRequest,
    Stage,
    SurvivorSignature,
    generate_identity,
)
from protocol.graph import graph_seed, ring_order
from protocol.state import ClientState

if TYPE_CHECKING:
    from conftest import ManualRound


def _malicious(num_clients: int = 5, **fields: object) -> SecAggConfig:
    return SecAggConfig(num_clients=num_clients, scale=2.0**10, mode="malicious", **fields)  # type: ignore[arg-type]


def _assert_exact_without(round_: ManualRound, excluded: set[int]) -> None:
    survivors = set(round_.clients) - excluded
    assert round_.result is not None
    assert set(round_.result.survivors) == survivors
    np.testing.assert_array_equal(round_.result.integer_sum, round_.expected_sum(survivors))


# -- a whole round ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("num_clients", "neighbours"), [(3, None), (5, None), (12, 6)], ids=["n3", "n5", "n12-k6"]
)
def test_a_malicious_mode_round_sums_exactly(
    manual_round: type[ManualRound], num_clients: int, neighbours: int | None
) -> None:
    # Prepare
    round_ = manual_round(
        num_clients=num_clients, config=_malicious(num_clients, neighbours=neighbours)
    )
    # Execute
    round_.play_all()
    # Assert: every survivor signed, every signature went to every survivor
    _assert_exact_without(round_, set())
    unmask = round_.requests[Stage.UNMASK]
    assert all(len(r.consistency_signatures) == num_clients for r in unmask.values())


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # the fixture is a class
)
@given(
    silent=st.dictionaries(
        st.integers(1, 9),
        st.sampled_from(
            [Stage.SHARE_KEYS, Stage.MASKED_INPUT, Stage.CONSISTENCY_CHECK, Stage.UNMASK]
        ),
        max_size=3,
    )
)
def test_a_malicious_mode_round_is_exact_or_aborts_under_any_dropouts(
    manual_round: type[ManualRound], silent: dict[int, Stage]
) -> None:
    # Prepare: nine clients, t = 6, quorum 7; `silent[c] = stage`: c is silent from then on
    round_ = manual_round(num_clients=9, config=_malicious(9))
    # Execute
    try:
        for stage in round_.order:
            quiet = {c for c, at in silent.items() if at.position <= stage.position}
            round_.play(stage, silent=quiet)
    except ProtocolAbort as abort:
        # Assert: an abort before unmask has revealed nothing
        view = abort.view
        assert view is not None
        if abort.stage is not Stage.UNMASK:
            assert not view.revealed_self_mask_shares and not view.revealed_masking_key_shares
        return
    # Assert: exact over those that sent a masked input
    masked = {c for c in round_.clients if silent.get(c, Stage.UNMASK).position > 2}
    _assert_exact_without(round_, set(round_.clients) - masked)


# -- signed keys ------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["unsigned", "forged", "stranger"])
def test_keys_that_are_not_signed_by_their_clients_identity_drop_the_sender(
    manual_round: type[ManualRound], fault: str
) -> None:
    # Prepare
    round_ = manual_round(num_clients=5, config=_malicious())
    responses = round_.answer(Stage.ADVERTISE_KEYS)
    genuine = responses[3]
    if fault == "unsigned":
        responses[3] = genuine.model_copy(update={"signature": None})
    elif fault == "forged":  # signed, but by another client's identity
        responses[3] = genuine.model_copy(update={"signature": responses[4].signature})
    else:  # a client the manifest does not know: a Sybil of the server's
        stranger = round_.server._manifest.model_copy(  # type: ignore[union-attr]
            update={"keys": {c: k for c, k in round_.manifest.keys.items() if c != 3}}  # type: ignore[union-attr]
        )
        round_.server._manifest = stranger
    # Execute
    round_.deliver(Stage.ADVERTISE_KEYS, responses)
    # Assert
    assert round_.server.drops[3].reason is DropReason.INVALID_SIGNATURE


@pytest.mark.parametrize("fault", ["unsigned", "substituted"])
def test_a_client_refuses_neighbour_keys_without_their_owners_signature(
    manual_round: type[ManualRound], fault: str
) -> None:
    # Prepare: the share-keys request relays neighbour 3's keys unsigned, or swapped for keys
    # the server made (with 3's genuine signature over the old ones)
    round_ = manual_round(num_clients=5, config=_malicious())
    round_.play(Stage.ADVERTISE_KEYS)
    request = round_.requests[Stage.SHARE_KEYS][1]
    other = round_.responses[Stage.ADVERTISE_KEYS][2].masking_public_key
    update = {"signature": None} if fault == "unsigned" else {"masking_public_key": other}
    neighbours = [
        p.model_copy(update=update) if p.client_id == 3 else p for p in request.neighbours
    ]
    # Execute / Assert: the client stops before sealing any share
    with pytest.raises(InvalidSignature):
        round_.clients[1].handle(request.model_copy(update={"neighbours": neighbours}))
    assert round_.clients[1].to_state().self_mask_seed is None


def test_a_client_refuses_participants_outside_the_manifest(
    manual_round: type[ManualRound],
) -> None:
    # Prepare
    round_ = manual_round(num_clients=5, config=_malicious())
    round_.play(Stage.ADVERTISE_KEYS)
    request = round_.requests[Stage.SHARE_KEYS][1]
    # Execute / Assert
    with pytest.raises(InvalidSignature, match="not in the identity manifest"):
        round_.clients[1].handle(
            request.model_copy(update={"participants": [*request.participants[:-1], 99]})
        )


# -- the consistency check --------------------------------------------------------------------


def _consistency_request(round_: ManualRound, client: int, survivors: list[int]) -> object:
    return round_.requests[Stage.CONSISTENCY_CHECK][client].model_copy(
        update={"survivors": survivors}
    )


@pytest.mark.parametrize(
    ("survivors", "error", "message"),
    [
        ([2, 3, 4, 5], RefusedRequest, "not in the survivor set"),
        ([1, 2, 3, 4, 5, 6], Exception, "never took part"),
        ([1, 2, 3], ProtocolAbort, "quorum"),
        ([3, 1, 2, 4, 5], Exception, "sorted"),
    ],
    ids=["without-itself", "stranger", "below-quorum", "unsorted"],
)
def test_a_client_signs_only_a_survivor_set_an_honest_server_could_send(
    manual_round: type[ManualRound],
    survivors: list[int],
    error: type[Exception],
    message: str,
) -> None:
    # Prepare: n = 5, quorum 4
    round_ = manual_round(num_clients=5, config=_malicious())
    round_.play_until(Stage.CONSISTENCY_CHECK)
    # Execute / Assert: the client stops and forgets its shares
    with pytest.raises(error, match=message):
        round_.clients[1].handle(_consistency_request(round_, 1, survivors))  # type: ignore[arg-type]
    assert not round_.clients[1].to_state().held_self_mask_shares


def test_a_client_refuses_a_survivor_whose_shares_it_never_received(
    manual_round: type[ManualRound],
) -> None:
    # Prepare: client 2's sealed shares are kept from client 1; the server still tells 1 that 2
    # survived
    round_ = manual_round(num_clients=5, config=_malicious())
    round_.play_until(Stage.MASKED_INPUT)
    request = round_.requests[Stage.MASKED_INPUT][1]
    kept = [s for s in request.shares if s.dealer != 2]
    round_.clients[1].handle(request.model_copy(update={"shares": kept}))
    # Execute / Assert
    consistency = ConsistencyCheckRequest(round=0, sender=0, receiver=1, survivors=[1, 2, 3, 4, 5])
    with pytest.raises(RefusedRequest, match="never gave client 1 their shares"):
        round_.clients[1].handle(consistency)


def test_a_client_refuses_to_certify_a_survivor_set_in_pieces(
    manual_round: type[ManualRound],
) -> None:
    # Prepare: n = 8 on a ring (k = 2, t = 2, quorum 6); an active server skips its own
    # connectivity abort and asks survivors in two pieces (2 and 4 clients) to sign
    config = _malicious(8, neighbours=2, threshold=2)
    round_ = manual_round(num_clients=8, config=config)
    ring = [int(c) for c in ring_order(list(range(1, 9)), graph_seed(0, list(range(1, 9))))]
    dropped = {ring[2], ring[7]}
    survivors = sorted(set(ring) - dropped)
    round_.play_until(Stage.MASKED_INPUT)
    round_.answer(Stage.MASKED_INPUT)
    # Execute / Assert: no survivor signs
    for client in survivors:
        request = ConsistencyCheckRequest(round=0, sender=0, receiver=client, survivors=survivors)
        with pytest.raises(RefusedRequest, match="pieces"):
            round_.clients[client].handle(request)


def test_the_server_aborts_below_the_quorum_before_asking_for_any_share(
    manual_round: type[ManualRound],
) -> None:
    # Prepare: n = 5, quorum 4; two survivors do not sign
    round_ = manual_round(num_clients=5, config=_malicious())
    round_.play_until(Stage.CONSISTENCY_CHECK)
    # Execute / Assert
    with pytest.raises(ProtocolAbort, match="quorum") as aborted:
        round_.play(Stage.CONSISTENCY_CHECK, silent={4, 5})
    view = aborted.value.view
    assert view is not None and not view.revealed_self_mask_shares


def test_a_bad_consistency_signature_drops_its_sender_and_a_quorum_still_finishes(
    manual_round: type[ManualRound],
) -> None:
    # Prepare: n = 5, quorum 4; client 5 signs something else
    round_ = manual_round(num_clients=5, config=_malicious())
    round_.play_until(Stage.CONSISTENCY_CHECK)
    responses = round_.answer(Stage.CONSISTENCY_CHECK)
    responses[5] = responses[5].model_copy(update={"signature": responses[4].signature})
    # Execute
    round_.deliver(Stage.CONSISTENCY_CHECK, responses)
    round_.play(Stage.UNMASK)
    # Assert: 5's input is still in the sum (it had masked), it just reveals nothing
    assert round_.server.drops[5].reason is DropReason.INVALID_SIGNATURE
    assert 5 not in round_.requests[Stage.UNMASK]
    _assert_exact_without(round_, set())


@pytest.mark.parametrize("fault", ["too-few", "forged", "other-set", "repeated"])
def test_a_client_reveals_nothing_without_a_quorum_of_valid_signatures(
    manual_round: type[ManualRound], fault: str
) -> None:
    # Prepare: n = 5, quorum 4; the unmask request's signatures are cut down, forged, from
    # another statement, or one signer repeated
    round_ = manual_round(num_clients=5, config=_malicious())
    round_.play_until(Stage.UNMASK)
    request = round_.requests[Stage.UNMASK][1]
    signatures = request.consistency_signatures
    if fault == "too-few":
        signatures = signatures[:3]
    elif fault == "forged":
        signatures = [
            SurvivorSignature(signer=s.signer, signature=bytes(64)) if s.signer > 2 else s
            for s in signatures
        ]
    elif fault == "other-set":
        signatures = [
            SurvivorSignature(signer=s.signer, signature=signatures[0].signature)
            for s in signatures
        ]
    else:
        signatures = [signatures[0]] * 5
    # Execute / Assert
    with pytest.raises(RefusedRequest, match="quorum"):
        round_.clients[1].handle(request.model_copy(update={"consistency_signatures": signatures}))
    assert not round_.clients[1].to_state().held_self_mask_shares


def test_a_client_reveals_shares_only_for_the_set_it_signed(
    manual_round: type[ManualRound],
) -> None:
    # Prepare: after client 1 signed {1..5}, the unmask request calls 3 dropped
    round_ = manual_round(num_clients=5, config=_malicious())
    round_.play_until(Stage.UNMASK)
    request = round_.requests[Stage.UNMASK][1]
    lie = request.model_copy(update={"survivors": [1, 2, 4, 5], "dropped": [3]})
    # Execute / Assert
    with pytest.raises(RefusedRequest, match="only for the survivor set it signed"):
        round_.clients[1].handle(lie)


# -- what a node enforces across rounds ------------------------------------------------------


def _identities(n: int) -> tuple[dict[int, object], IdentityManifest]:
    identities = {c: generate_identity() for c in range(1, n + 1)}
    return identities, IdentityManifest.of("sessions", identities)  # type: ignore[arg-type]


def test_a_node_with_an_identity_refuses_a_semi_honest_round() -> None:
    # Prepare: a server that would rather not be checked
    identities, manifest = _identities(3)
    sessions = ClientSessions(identities[1], manifest)  # type: ignore[arg-type]
    request = SecAggServer(SecAggConfig(num_clients=3), 4, 1).start([1, 2, 3])[1]
    # Execute / Assert
    with pytest.raises(ConfigMismatch, match="malicious-mode rounds only"):
        sessions.handle_batch([request])
    assert sessions.open_rounds == []


def test_a_node_never_reopens_a_round_whose_survivors_it_signed() -> None:
    # Prepare: round 4 runs to its consistency check through ClientSessions, which the node
    # stores and reloads between messages
    identities, manifest = _identities(3)
    config = _malicious(3)
    server = SecAggServer(config, 2, 4, manifest)
    stored = {c: ClientSessions(identities[c], manifest).to_bytes() for c in (1, 2, 3)}  # type: ignore[arg-type]
    requests: dict[int, object] = dict(server.start([1, 2, 3]))
    handlers = [server.advertise_keys, server.share_keys, server.masked_input]
    for handler in [*handlers, server.consistency_check]:
        answers = {}
        for c in (1, 2, 3):
            node = ClientSessions.from_bytes(stored[c], identities[c], manifest)  # type: ignore[arg-type]
            answers[c] = node.handle_batch(
                [requests[c]],  # type: ignore[list-item]
                lambda client: client.provide_input(np.full(2, 0.5)),
            )[0]
            stored[c] = node.to_bytes()
        requests = dict(handler(answers))  # type: ignore[arg-type]
    node = ClientSessions.from_bytes(stored[1], identities[1], manifest)  # type: ignore[arg-type]
    assert node.signed_through == 4
    # Execute / Assert: the server starts round 4 again, then asks for round 5
    again = SecAggServer(config, 2, 4, manifest).start([1, 2, 3])[1]
    with pytest.raises(RefusedRequest, match="already signed"):
        node.handle_batch([again])
    fresh = SecAggServer(config, 2, 5, manifest).start([1, 2, 3])[1]
    assert node.handle_batch([fresh])[0].signature is not None  # type: ignore[union-attr]


def test_a_version_1_client_state_still_loads() -> None:
    # Prepare: a state stored before the malicious mode (no participants, no survivor set)
    client = SecAggClient(1, SecAggConfig(num_clients=3), dimension=2)
    stored = json.loads(client.to_state().model_dump_json())
    stored["version"] = 1
    del stored["participants"], stored["survivor_set"]
    # Execute
    state = ClientState.model_validate_json(json.dumps(stored))
    # Assert
    assert SecAggClient.from_state(state).next_stage is Stage.ADVERTISE_KEYS


def test_a_malicious_mode_client_needs_its_identity_in_the_manifest() -> None:
    # Prepare
    identities, manifest = _identities(3)
    config = _malicious(3)
    # Execute / Assert
    with pytest.raises(ValueError, match="needs the client's identity"):
        SecAggClient(1, config, dimension=2)
    with pytest.raises(ValueError, match="another identity key"):
        SecAggClient(1, config, dimension=2, identity=identities[2], manifest=manifest)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs the identity manifest"):
        SecAggServer(config, 2)


def test_a_share_dealt_under_another_participant_list_does_not_open(
    manual_round: type[ManualRound],
) -> None:
    # Prepare: an active server shows client 1 the participants {1, 2, 3, 4} and everyone else
    # {1, ..., 5}, then routes 1's sealed share to 2 anyway. Dealer and holder must have seen
    # the same U1, or the quorum count of SPEC.md §10 would not cover them.
    round_ = manual_round(num_clients=5, config=_malicious())
    round_.play(Stage.ADVERTISE_KEYS)
    honest = round_.requests[Stage.SHARE_KEYS][1]
    narrowed = honest.model_copy(
        update={
            "participants": [1, 2, 3, 4],
            "neighbours": [p for p in honest.neighbours if p.client_id != 5],
        }
    )
    sealed = round_.clients[1].handle(narrowed).shares  # type: ignore[attr-defined]
    round_.requests[Stage.SHARE_KEYS].pop(1)
    round_.play(Stage.SHARE_KEYS)
    to_two = round_.requests[Stage.MASKED_INPUT][2]
    forged = to_two.model_copy(
        update={"shares": [*to_two.shares, next(s for s in sealed if s.holder == 2)]}
    )
    # Execute / Assert
    with pytest.raises(DecryptionError):
        round_.clients[2].handle(forged)


def test_a_client_refuses_more_participants_than_the_round_invites() -> None:
    # Prepare: the manifest knows six clients, the round invites five; the quorum of 4 is
    # counted out of five, so a participant list of six would dilute it
    identities = {c: generate_identity() for c in range(1, 7)}
    manifest = IdentityManifest.of("larger", identities)
    config = _malicious(5)
    client = SecAggClient(1, config, np.zeros(2), identity=identities[1], manifest=manifest)
    client.handle(SecAggServer(config, 2, 0, manifest).start([1, 2, 3, 4, 5])[1])
    request = ShareKeysRequest(
        round=0, sender=0, receiver=1, participants=[1, 2, 3, 4, 5, 6], neighbours=[]
    )
    # Execute / Assert
    with pytest.raises(MalformedMessage, match="more than the 5 clients"):
        client.handle(request)
