"""An active server against both modes: what SPEC.md §1 and §10 state, demonstrated.

The semi-honest mode authenticates nobody, so a server that rewrites its own requests reads a
victim's input; the malicious mode's signatures and consistency check stop the same attacks
before the victim reveals anything. The attacks run through the real client state machines
(tests/fakes/attacks.py holds the attacker's side).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest
from fakes.attacks import (
    KeySubstitution,
    pair_seeds_from_masking_key,
    public_keys,
    strip_masks,
)

from protocol import (
    ConsistencyCheckRequest,
    InvalidSignature,
    ProtocolAbort,
    RefusedRequest,
    SecAggConfig,
    Stage,
    SurvivorSignature,
    UnmaskRequest,
    shamir,
)
from protocol.identity import session_context, sign, survivors_statement

if TYPE_CHECKING:
    from conftest import ManualRound

VICTIM = 2


def test_key_substitution_reads_a_victims_input_in_semi_honest_mode(
    manual_round: type[ManualRound],
) -> None:
    # Prepare: the default complete graph, t = 4 of 5; no colluder
    config = SecAggConfig(num_clients=5, scale=2.0**10)
    round_ = manual_round(num_clients=5, config=config)
    attack = KeySubstitution(VICTIM, round_number=0, threshold=config.reconstruction_threshold)
    # Execute: the server relays everything, except that the victim's requests are its own
    for stage in (Stage.ADVERTISE_KEYS, Stage.SHARE_KEYS, Stage.MASKED_INPUT):
        round_.requests[stage] = {
            c: attack.alter_request(r) for c, r in round_.requests[stage].items()
        }
        responses = round_.answer(stage, tolerate=True)
        for response in responses.values():
            attack.observe_response(response)
        try:
            round_.deliver(stage, responses)
        except ProtocolAbort:
            break  # the other clients could not open the victim's shares; too late for it
    # Assert: the victim raised nothing, yet its encoded input is in the server's hands
    assert VICTIM not in round_.client_errors
    np.testing.assert_array_equal(attack.recover(), round_.clients[VICTIM].quantized_input)


def test_lying_about_a_dropout_reads_a_victims_input_with_one_colluder_in_semi_honest_mode(
    manual_round: type[ManualRound],
) -> None:
    # Prepare: n = 5, complete graph (k = 4), t = 3: 2t - c = 5 <= k + 1 with c = 1 colluder.
    # The config's 2t > k + 1 holds, so no holder group of its own could do this.
    config = SecAggConfig(num_clients=5, threshold=3, scale=2.0**10)
    round_ = manual_round(num_clients=5, config=config)
    colluder, told_dropped = 5, {3, 4}
    round_.play_until(Stage.UNMASK)
    # Execute: holders 3 and 4 are told the victim dropped, 1 and 2 that it survived
    requests: dict[int, UnmaskRequest] = round_.requests[Stage.UNMASK]
    round_.requests[Stage.UNMASK] = {
        c: request.model_copy(
            update={
                "survivors": [p for p in request.survivors if p != VICTIM],
                "dropped": sorted({*request.dropped, VICTIM}),
            }
        )
        if c in told_dropped
        else request
        for c, request in requests.items()
        if c != colluder
    }
    responses = round_.answer(Stage.UNMASK)
    seed_shares = {
        c: shamir.decode_share(share.value)
        for c, response in responses.items()
        for share in response.shares
        if share.owner == VICTIM and share.kind == "self_mask"
    }
    key_shares = {
        c: shamir.decode_share(share.value)
        for c, response in responses.items()
        for share in response.shares
        if share.owner == VICTIM and share.kind == "masking_key"
    }
    held = round_.clients[colluder].to_state()  # the colluder hands over what it holds
    seed_shares[colluder] = shamir.decode_share(held.held_self_mask_shares[VICTIM])
    key_shares[colluder] = shamir.decode_share(held.held_key_shares[VICTIM])
    # Assert: t shares of each secret, the victim's masks stripped, its input exact
    threshold = config.reconstruction_threshold
    assert len(seed_shares) >= threshold and len(key_shares) >= threshold
    keys = {c: public_keys(r) for c, r in round_.responses[Stage.ADVERTISE_KEYS].items()}
    pair_seeds = pair_seeds_from_masking_key(
        0,
        shamir.combine(key_shares, threshold),
        keys[VICTIM],
        [k for c, k in keys.items() if c != VICTIM],
    )
    recovered = strip_masks(
        0,
        round_.responses[Stage.MASKED_INPUT][VICTIM].masked_vector,
        shamir.combine(seed_shares, threshold),
        keys[VICTIM],
        pair_seeds,
    )
    np.testing.assert_array_equal(recovered, round_.clients[VICTIM].quantized_input)


def test_key_substitution_fails_in_malicious_mode_before_the_victim_reveals_anything(
    manual_round: type[ManualRound],
) -> None:
    # Prepare: the same attack; the victim now checks each neighbour's keys against the
    # neighbour's identity signature
    config = SecAggConfig(num_clients=5, scale=2.0**10, mode="malicious")
    round_ = manual_round(num_clients=5, config=config)
    attack = KeySubstitution(VICTIM, round_number=0, threshold=config.reconstruction_threshold)
    # Execute
    for stage in (Stage.ADVERTISE_KEYS, Stage.SHARE_KEYS, Stage.MASKED_INPUT):
        round_.requests[stage] = {
            c: attack.alter_request(r) for c, r in round_.requests[stage].items()
        }
        responses = round_.answer(stage, tolerate=True)
        for response in responses.values():
            attack.observe_response(response)
        round_.deliver(stage, responses)
    # Assert: the victim refused at share_keys, sealed no share and masked nothing; the rest of
    # the round goes on without it
    assert isinstance(round_.client_errors[VICTIM], InvalidSignature)
    assert attack.seed_shares == {} and attack.masked_vector is None
    with pytest.raises(AssertionError, match="never sent its masked input"):
        attack.recover()


def test_lying_about_a_dropout_fails_in_malicious_mode_before_any_share_is_revealed(
    manual_round: type[ManualRound],
) -> None:
    # Prepare: the same parameters and colluder; now the server must show holders 1, 2 a
    # survivor set with the victim and holders 3, 4 one without it, and collect signatures
    config = SecAggConfig(num_clients=5, threshold=3, scale=2.0**10, mode="malicious")
    round_ = manual_round(num_clients=5, config=config)
    colluder, told_dropped = 5, {3, 4}
    round_.play_until(Stage.CONSISTENCY_CHECK)
    everyone = [1, 2, 3, 4, 5]
    without_victim = [c for c in everyone if c != VICTIM]
    shown = {c: without_victim if c in told_dropped else everyone for c in (1, 2, 3, 4)}
    signed = {
        c: round_.clients[c]
        .handle(ConsistencyCheckRequest(round=0, sender=0, receiver=c, survivors=shown[c]))
        .signature
        for c in shown
    }
    assert round_.manifest is not None
    context = session_context(round_.manifest, config, 6, 0)
    colluding = {  # a corrupt client signs both sets
        tuple(s): sign(round_.identities[colluder], survivors_statement(context, everyone, s))
        for s in (everyone, without_victim)
    }
    # Execute: each group gets its partition and every signature there is on its own set
    requests = round_.requests[Stage.UNMASK] = {}
    refused = {}
    for c, survivors in shown.items():
        signers = [p for p in shown if shown[p] == survivors]
        signatures = [SurvivorSignature(signer=p, signature=signed[p]) for p in signers]
        signatures.append(SurvivorSignature(signer=colluder, signature=colluding[tuple(survivors)]))
        held = set(range(1, 6))
        requests[c] = UnmaskRequest(
            round=0,
            sender=0,
            receiver=c,
            survivors=sorted(held & set(survivors)),
            dropped=sorted(held - set(survivors)),
            consistency_signatures=signatures,
        )
        # the semi-honest attack's requests: 3, 4 asked for the victim's masking-key share,
        # 1, 2 for its self-mask share
        assert (VICTIM in requests[c].dropped) == (c in told_dropped)
        with pytest.raises(RefusedRequest, match="quorum") as error:
            round_.clients[c].handle(requests[c])
        refused[c] = (len(signatures), error.value)
    # Assert: t = 3 signatures on each set (so "at least t" alone would not have stopped it),
    # below the quorum of 4: no client revealed a share of anyone
    assert {count for count, _ in refused.values()} == {3} == {config.reconstruction_threshold}
    assert config.consistency_quorum == 4
    assert all(not round_.clients[c].to_state().held_self_mask_shares for c in shown)
