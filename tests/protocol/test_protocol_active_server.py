"""An active server against the semi-honest mode: the limits SPEC.md §1 states, demonstrated.

The semi-honest mode authenticates nobody, so a server that rewrites its own requests reads a
victim's input. These tests run the attacks through the real client state machines
(tests/fakes/attacks.py holds the attacker's side) and check the input comes out exactly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from fakes.attacks import (
    KeySubstitution,
    pair_seeds_from_masking_key,
    public_keys,
    strip_masks,
)

from protocol import ProtocolAbort, SecAggConfig, Stage, UnmaskRequest, shamir

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
