"""Bad input and faults: each gets a named error; the sender is dropped or the round aborts,
and the sum is never wrong."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import (
    ClientStatus,
    ConfigMismatch,
    DecryptionError,
    DropReason,
    DuplicateSender,
    InvalidPublicKey,
    InvalidShare,
    MalformedMessage,
    MaskedInputRequest,
    MaskedInputResponse,
    MaskingKeyShare,
    Message,
    ProtocolAbort,
    RefusedRequest,
    RoundMismatch,
    SecAggClient,
    SecAggConfig,
    SecAggServer,
    SenderMismatch,
    Stage,
    UnexpectedStage,
    UnknownSender,
    UnmaskRequest,
    UnmaskResponse,
    VectorLengthError,
    run_round,
)

if TYPE_CHECKING:
    from conftest import ManualRound


def _finish(round_: ManualRound, from_stage: Stage) -> None:
    for stage in round_.order[round_.order.index(from_stage) :]:
        round_.play(stage)


def _assert_exact_without(round_: ManualRound, excluded: set[int]) -> None:
    survivors = set(round_.clients) - excluded
    assert set(round_.result.survivors) == survivors
    np.testing.assert_array_equal(round_.result.integer_sum, round_.expected_sum(survivors))


def test_wrong_vector_length_from_a_client_drops_it_and_the_sum_stays_exact(
    manual_round: type[ManualRound],
) -> None:
    # Prepare
    round_ = manual_round(num_clients=5)
    round_.play_until(Stage.MASKED_INPUT)
    responses = round_.answer(Stage.MASKED_INPUT)
    responses[2] = responses[2].model_copy(update={"masked_vector": b"\x00" * 8})
    # Execute
    round_.deliver(Stage.MASKED_INPUT, responses)
    round_.play(Stage.UNMASK)
    # Assert
    assert isinstance(round_.server.rejections[0][1], VectorLengthError)
    assert round_.server.drops[2].reason is DropReason.WRONG_VECTOR_LENGTH
    _assert_exact_without(round_, {2})


def test_client_refuses_a_dimension_other_than_its_vector_length() -> None:
    # Prepare
    config = SecAggConfig(num_clients=3)
    client = SecAggClient(1, config, np.zeros(4))
    server = SecAggServer(config, dimension=5)
    # Execute / Assert
    with pytest.raises(VectorLengthError, match="dimension must be 4"):
        client.advertise_keys(server.start([1, 2, 3])[1])


def test_response_for_the_wrong_stage_drops_its_sender(manual_round: type[ManualRound]) -> None:
    # Prepare
    round_ = manual_round(num_clients=5)
    round_.play_until(Stage.SHARE_KEYS)
    responses = round_.answer(Stage.SHARE_KEYS)
    responses[4] = round_.responses[Stage.ADVERTISE_KEYS][4]
    # Execute
    round_.deliver(Stage.SHARE_KEYS, responses)
    _finish(round_, Stage.MASKED_INPUT)
    # Assert
    assert isinstance(round_.server.rejections[0][1], UnexpectedStage)
    assert round_.server.drops[4].reason is DropReason.WRONG_STAGE
    _assert_exact_without(round_, {4})


def test_two_different_responses_from_one_sender_drop_it(manual_round: type[ManualRound]) -> None:
    # Prepare
    round_ = manual_round(num_clients=5)
    round_.play_until(Stage.MASKED_INPUT)
    responses = round_.answer(Stage.MASKED_INPUT)
    forged = responses[3].model_copy(
        update={"masked_vector": bytes(len(responses[3].masked_vector))}
    )
    pairs = [*responses.items(), (3, forged)]
    # Execute
    round_.deliver(Stage.MASKED_INPUT, pairs)
    round_.play(Stage.UNMASK)
    # Assert
    assert isinstance(round_.server.rejections[0][1], DuplicateSender)
    assert round_.server.drops[3].reason is DropReason.DUPLICATE_SENDER
    _assert_exact_without(round_, {3})


def test_an_identical_retransmission_is_harmless(manual_round: type[ManualRound]) -> None:
    # Prepare
    round_ = manual_round(num_clients=4)
    round_.play_until(Stage.MASKED_INPUT)
    responses = round_.answer(Stage.MASKED_INPUT)
    pairs = [*responses.items(), (1, responses[1])]
    # Execute
    round_.deliver(Stage.MASKED_INPUT, pairs)
    round_.play(Stage.UNMASK)
    # Assert
    assert round_.server.rejections == []
    _assert_exact_without(round_, set())


def test_unknown_sender_is_refused_without_touching_the_round(
    manual_round: type[ManualRound],
) -> None:
    # Prepare
    round_ = manual_round(num_clients=4)
    responses = round_.answer(Stage.ADVERTISE_KEYS)
    stranger = responses[1].model_copy(update={"sender": 99})
    # Execute
    round_.deliver(Stage.ADVERTISE_KEYS, [*responses.items(), (99, stranger)])
    _finish(round_, Stage.SHARE_KEYS)
    # Assert
    assert isinstance(round_.server.rejections[0][1], UnknownSender)
    assert 99 not in round_.server.statuses
    _assert_exact_without(round_, set())


def test_message_claiming_another_sender_drops_the_transport_sender(
    manual_round: type[ManualRound],
) -> None:
    # Prepare
    round_ = manual_round(num_clients=4)
    responses = round_.answer(Stage.ADVERTISE_KEYS)
    responses[2] = responses[2].model_copy(update={"sender": 1})
    # Execute
    round_.deliver(Stage.ADVERTISE_KEYS, responses)
    _finish(round_, Stage.SHARE_KEYS)
    # Assert
    assert isinstance(round_.server.rejections[0][1], SenderMismatch)
    _assert_exact_without(round_, {2})


def test_a_message_replayed_from_another_round_is_refused(manual_round: type[ManualRound]) -> None:
    # Prepare: client 2's masked input from round 0 replayed into round 1.
    old = manual_round(num_clients=4, round_number=0)
    old.play_until(Stage.MASKED_INPUT)
    replay = old.answer(Stage.MASKED_INPUT)[2]
    round_ = manual_round(num_clients=4, round_number=1)
    round_.play_until(Stage.MASKED_INPUT)
    responses = round_.answer(Stage.MASKED_INPUT, silent=[2])
    responses[2] = replay
    # Execute
    round_.deliver(Stage.MASKED_INPUT, responses)
    round_.play(Stage.UNMASK)
    # Assert
    assert isinstance(round_.server.rejections[0][1], RoundMismatch)
    assert round_.server.drops[2].reason is DropReason.WRONG_ROUND
    _assert_exact_without(round_, {2})


def test_a_replayed_request_is_refused_by_the_client(manual_round: type[ManualRound]) -> None:
    # Prepare
    old = manual_round(num_clients=3, round_number=0)
    old.play_until(Stage.SHARE_KEYS)
    round_ = manual_round(num_clients=3, round_number=1)
    round_.play_until(Stage.SHARE_KEYS)
    # Execute / Assert
    with pytest.raises(RoundMismatch):
        round_.clients[1].handle(old.requests[Stage.SHARE_KEYS][1])
    assert round_.clients[1].status is ClientStatus.ADVERTISED_KEYS


@pytest.mark.parametrize("bad_key", [bytes(32), (1).to_bytes(32, "little")])
def test_low_order_public_key_drops_its_sender(
    manual_round: type[ManualRound], bad_key: bytes
) -> None:
    # Prepare
    round_ = manual_round(num_clients=4)
    responses = round_.answer(Stage.ADVERTISE_KEYS)
    responses[3] = responses[3].model_copy(update={"masking_public_key": bad_key})
    # Execute
    round_.deliver(Stage.ADVERTISE_KEYS, responses)
    _finish(round_, Stage.SHARE_KEYS)
    # Assert
    assert isinstance(round_.server.rejections[0][1], InvalidPublicKey)
    assert round_.server.drops[3].reason is DropReason.INVALID_PUBLIC_KEY
    _assert_exact_without(round_, {3})


def test_reused_public_key_drops_the_copier(manual_round: type[ManualRound]) -> None:
    # Prepare
    round_ = manual_round(num_clients=4)
    responses = round_.answer(Stage.ADVERTISE_KEYS)
    copied = responses[1].masking_public_key
    responses[4] = responses[4].model_copy(update={"masking_public_key": copied})
    # Execute
    round_.deliver(Stage.ADVERTISE_KEYS, responses)
    # Assert
    assert round_.server.drops[4].reason is DropReason.INVALID_PUBLIC_KEY
    assert isinstance(round_.server.rejections[0][1], InvalidPublicKey)


def test_tampered_share_ciphertext_makes_the_holder_drop_and_the_sum_stays_exact() -> None:
    # Prepare: flip one bit of a sealed share on its way to client 1.
    config = SecAggConfig(num_clients=5)
    inputs = [np.full(6, 0.25 * i) for i in range(5)]

    def tamper(message: Message) -> Message:
        if isinstance(message, MaskedInputRequest) and message.receiver == 1:
            first = message.shares[0]
            broken = bytearray(first.ciphertext)
            broken[-1] ^= 1
            altered = first.model_copy(update={"ciphertext": bytes(broken)})
            return message.model_copy(update={"shares": [altered, *message.shares[1:]]})
        return message

    # Execute
    result = run_round(config, inputs, intercept=tamper, rounding_seed=1)
    # Assert
    assert isinstance(result.client_errors[1], DecryptionError)
    assert result.survivors == (2, 3, 4, 5)
    assert result.exact


def test_tampered_revealed_share_is_caught_by_its_commitment(
    manual_round: type[ManualRound],
) -> None:
    # Prepare
    round_ = manual_round(num_clients=5)
    round_.play_until(Stage.UNMASK)
    responses = round_.answer(Stage.UNMASK)
    shares = list(responses[2].shares)
    value = bytearray(shares[0].value)
    value[0] ^= 1
    shares[0] = shares[0].model_copy(update={"value": bytes(value)})
    responses[2] = responses[2].model_copy(update={"shares": shares})
    # Execute
    round_.deliver(Stage.UNMASK, responses)
    # Assert
    assert isinstance(round_.server.rejections[0][1], InvalidShare)
    assert round_.server.drops[2].reason is DropReason.INVALID_SHARE
    _assert_exact_without(round_, set())  # 2's input is in; its own seed rebuilt from others


def test_revealing_the_wrong_kind_of_share_is_refused(manual_round: type[ManualRound]) -> None:
    # Prepare: client 3 answers with a masking-key share where a self-mask share was asked.
    round_ = manual_round(num_clients=5)
    round_.play_until(Stage.UNMASK)
    responses = round_.answer(Stage.UNMASK)
    first = responses[3].shares[0]
    swapped = MaskingKeyShare(owner=first.owner, value=first.value)
    responses[3] = UnmaskResponse(
        round=0, sender=3, receiver=0, shares=[swapped, *responses[3].shares[1:]]
    )
    # Execute
    round_.deliver(Stage.UNMASK, responses)
    # Assert
    assert round_.server.drops[3].reason is DropReason.MALFORMED_MESSAGE
    assert 3 not in round_.result.view.revealed_masking_key_shares
    _assert_exact_without(round_, set())


def test_honest_client_refuses_both_shares_of_one_peer(manual_round: type[ManualRound]) -> None:
    # Prepare: a server that lists client 2 as both survivor and dropped.
    round_ = manual_round(num_clients=4)
    round_.play_until(Stage.UNMASK)
    honest: UnmaskRequest = round_.requests[Stage.UNMASK][1]
    greedy = honest.model_copy(update={"dropped": [2]})
    client = round_.clients[1]
    # Execute / Assert
    with pytest.raises(RefusedRequest, match="both shares"):
        client.unmask(greedy)
    assert client.status is ClientStatus.ABORTED
    with pytest.raises(UnexpectedStage):
        client.unmask(honest)


def test_below_threshold_aborts_naming_the_stage_and_reason() -> None:
    # Prepare: t = 3 of 4, two clients vanish before sending their masked input.
    config = SecAggConfig(num_clients=4, threshold=3)
    inputs = [np.ones(3)] * 4
    schedule = {1: Stage.MASKED_INPUT, 2: Stage.MASKED_INPUT}
    # Execute / Assert
    with pytest.raises(ProtocolAbort, match="'masked_input'") as caught:
        run_round(config, inputs, dropout=schedule)
    assert caught.value.stage is Stage.MASKED_INPUT
    assert "2 clients remain, fewer than t = 3" in caught.value.reason
    view = caught.value.view
    assert view is not None and view.outcome == "aborted"
    assert view.revealed_self_mask_shares == {} and view.revealed_masking_key_shares == {}


def test_too_few_unmask_answers_abort_before_any_sum_is_formed() -> None:
    # Prepare
    config = SecAggConfig(num_clients=5, threshold=4)
    inputs = [np.ones(3)] * 5
    # Execute / Assert
    with pytest.raises(ProtocolAbort) as caught:
        run_round(config, inputs, dropout={1: Stage.UNMASK, 2: Stage.UNMASK})
    assert caught.value.stage is Stage.UNMASK
    assert caught.value.view is not None and caught.value.view.aggregate_sha256 is None


def test_client_refuses_a_server_config_other_than_its_own(manual_round: type[ManualRound]) -> None:
    # Prepare
    round_ = manual_round(num_clients=3)
    request = round_.requests[Stage.ADVERTISE_KEYS][1]
    other = request.model_copy(update={"config": SecAggConfig(num_clients=3, scale=2.0**8)})
    # Execute / Assert
    with pytest.raises(ConfigMismatch):
        round_.clients[1].advertise_keys(other)


def test_client_refuses_neighbours_that_are_not_its_graph_neighbours(
    manual_round: type[ManualRound],
) -> None:
    # Prepare
    round_ = manual_round(num_clients=4)
    round_.play(Stage.ADVERTISE_KEYS)
    request = round_.requests[Stage.SHARE_KEYS][1]
    fewer = request.model_copy(update={"neighbours": request.neighbours[:-1]})
    # Execute / Assert
    with pytest.raises(MalformedMessage, match="graph neighbours"):
        round_.clients[1].share_keys(fewer)


def test_a_late_masked_input_is_refused_and_its_self_mask_never_asked_for(
    manual_round: type[ManualRound],
) -> None:
    # Prepare: client 4 is slow; its masked input arrives with the unmask answers.
    round_ = manual_round(num_clients=5)
    round_.play_until(Stage.MASKED_INPUT)
    late = round_.clients[4].handle(round_.requests[Stage.MASKED_INPUT][4])
    round_.deliver(Stage.MASKED_INPUT, round_.answer(Stage.MASKED_INPUT, silent=[4]))
    answers = round_.answer(Stage.UNMASK)
    # Execute
    round_.deliver(Stage.UNMASK, [*answers.items(), (4, late)])
    # Assert
    assert isinstance(round_.server.rejections[0][1], UnknownSender)
    assert 4 not in round_.result.view.revealed_self_mask_shares
    assert round_.result.view.revealed_masking_key_shares[4] >= round_.server.threshold
    _assert_exact_without(round_, {4})


def _non_canonical(key: bytes) -> bytes:
    """The same X25519 point with bit 255 set (RFC 7748 receivers ignore that bit)."""
    return key[:31] + bytes([key[31] | 0x80])


@pytest.mark.parametrize("field", ["encryption_public_key", "masking_public_key"])
def test_another_clients_key_spelled_non_canonically_drops_the_copier(
    manual_round: type[ManualRound], field: str
) -> None:
    # Prepare: client 4 advertises client 1's key with bit 255 set; a raw-bytes reuse check
    # let it through, and every neighbour of 4 then failed (issue 15, defect 8)
    round_ = manual_round(num_clients=5)
    responses = round_.answer(Stage.ADVERTISE_KEYS)
    responses[4] = responses[4].model_copy(
        update={field: _non_canonical(getattr(responses[1], field))}
    )
    # Execute
    round_.deliver(Stage.ADVERTISE_KEYS, responses)
    _finish(round_, Stage.SHARE_KEYS)
    # Assert
    assert round_.server.drops[4].reason is DropReason.INVALID_PUBLIC_KEY
    assert "canonical" in str(round_.server.rejections[0][1])
    _assert_exact_without(round_, {4})


def test_a_client_refuses_a_neighbour_key_spelled_non_canonically(
    manual_round: type[ManualRound],
) -> None:
    # Prepare: the share-keys request relays neighbour 3's masking key with bit 255 set
    round_ = manual_round(num_clients=4)
    round_.play(Stage.ADVERTISE_KEYS)
    request = round_.requests[Stage.SHARE_KEYS][1]
    neighbours = [
        peer.model_copy(update={"masking_public_key": _non_canonical(peer.masking_public_key)})
        if peer.client_id == 3
        else peer
        for peer in request.neighbours
    ]
    # Execute / Assert
    with pytest.raises(InvalidPublicKey, match="canonical"):
        round_.clients[1].share_keys(request.model_copy(update={"neighbours": neighbours}))


# -- the masked input commits to its session and to the peers it was masked with (defect 9) ----


def test_a_share_lost_in_transit_drops_its_holder_instead_of_corrupting_the_sum(
    manual_round: type[ManualRound],
) -> None:
    # Prepare: dealer 2's sealed shares never reach client 1, so client 1 masks without the
    # (1, 2) pair mask while client 2 masks with it; the server took this for an exact round
    round_ = manual_round(num_clients=5)
    round_.play_until(Stage.MASKED_INPUT)
    request = round_.requests[Stage.MASKED_INPUT][1]
    kept = [sealed for sealed in request.shares if sealed.dealer != 2]
    round_.requests[Stage.MASKED_INPUT][1] = request.model_copy(update={"shares": kept})
    # Execute
    round_.play(Stage.MASKED_INPUT)
    round_.play(Stage.UNMASK)
    # Assert: client 1 counts as dropped after sharing keys: its pairwise masks are removed
    # with its masking key, its self mask keeps its vector hidden, and the sum is exact
    assert round_.server.drops[1].reason is DropReason.MASKED_INPUT_MISMATCH
    assert "masked with" in round_.server.drops[1].detail
    _assert_exact_without(round_, {1})


@pytest.mark.parametrize("target", ["vector", "binding", "peers"])
def test_a_bit_flipped_in_a_masked_input_drops_its_sender(
    manual_round: type[ManualRound], target: str
) -> None:
    # Prepare
    round_ = manual_round(num_clients=5)
    round_.play_until(Stage.MASKED_INPUT)
    responses = round_.answer(Stage.MASKED_INPUT)
    genuine = responses[2]
    if target == "vector":
        flipped = bytearray(genuine.masked_vector)
        flipped[5] ^= 0x10
        responses[2] = genuine.model_copy(update={"masked_vector": bytes(flipped)})
    elif target == "binding":
        binding = bytes([genuine.binding[0] ^ 1]) + genuine.binding[1:]
        responses[2] = genuine.model_copy(update={"binding": binding})
    else:
        responses[2] = genuine.model_copy(update={"mask_peers": genuine.mask_peers[1:]})
    # Execute
    round_.deliver(Stage.MASKED_INPUT, responses)
    round_.play(Stage.UNMASK)
    # Assert
    assert round_.server.drops[2].reason is DropReason.MASKED_INPUT_MISMATCH
    _assert_exact_without(round_, {2})


def test_a_masked_input_replayed_from_another_session_of_the_same_round_drops_its_sender(
    manual_round: type[ManualRound],
) -> None:
    # Prepare: two instances of round 0 (a restarted server, an abandoned and reopened round);
    # client 3's masked input from the first is delivered in the second
    earlier = manual_round(num_clients=4, seed=1)
    earlier.play_until(Stage.MASKED_INPUT)
    replayed = earlier.answer(Stage.MASKED_INPUT)[3]
    round_ = manual_round(num_clients=4, seed=2)
    round_.play_until(Stage.MASKED_INPUT)
    responses = round_.answer(Stage.MASKED_INPUT)
    responses[3] = replayed
    # Execute
    round_.deliver(Stage.MASKED_INPUT, responses)
    round_.play(Stage.UNMASK)
    # Assert
    assert round_.server.drops[3].reason is DropReason.MASKED_INPUT_MISMATCH
    assert "another session" in round_.server.drops[3].detail
    _assert_exact_without(round_, {3})


@settings(max_examples=40, deadline=None)
@given(
    num_clients=st.integers(4, 8),
    lost=st.sets(st.tuples(st.integers(1, 8), st.integers(1, 8)), max_size=5),
    flipped=st.sets(st.integers(1, 8), max_size=2),
    seed=st.integers(0, 2**16),
)
def test_shares_lost_and_vectors_corrupted_in_transit_never_give_a_wrong_sum(
    num_clients: int, lost: set[tuple[int, int]], flipped: set[int], seed: int
) -> None:
    # Prepare: a network that loses the (dealer, holder) sealed shares in `lost` and flips a
    # bit of the masked vectors of the clients in `flipped`
    config = SecAggConfig(num_clients=num_clients, threshold=num_clients // 2 + 1, scale=2.0**10)
    inputs = np.random.default_rng(seed).uniform(-1, 1, (num_clients, 4))

    def network(message: Message) -> Message:
        if isinstance(message, MaskedInputRequest):
            kept = [s for s in message.shares if (s.dealer, s.holder) not in lost]
            return message.model_copy(update={"shares": kept})
        if isinstance(message, MaskedInputResponse) and message.sender in flipped:
            vector = bytearray(message.masked_vector)
            vector[-1] ^= 0x80
            return message.model_copy(update={"masked_vector": bytes(vector)})
        return message

    # Execute
    try:
        result = run_round(config, list(inputs), intercept=network, rounding_seed=seed)
    except ProtocolAbort:
        return
    # Assert: whoever is in the sum, the sum is exactly theirs
    assert result.exact
    assert not set(result.survivors) & flipped
