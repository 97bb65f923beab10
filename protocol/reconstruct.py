"""The server's unmasking arithmetic: rebuild a secret from its shares, check it against what
its owner committed to, and take its masks off the sum (SPEC.md §4, after the stage table).

Each function raises `ProtocolAbort` at the unmask stage when a secret cannot be rebuilt or
does not match; `SecAggServer.unmask` turns that into the round's end with its view attached.
The server repeats exactly the client's mask derivation (masking.py), so the two cannot drift.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from protocol import crypto, shamir
from protocol.errors import ProtocolAbort
from protocol.masking import PublicKeys, add_mask, pair_sign, pairwise_mask_seed
from protocol.messages import seed_commitment
from protocol.stages import Stage


def rebuild(owner: int, shares: dict[int, int], threshold: int, what: str) -> bytes:
    """Client `owner`'s secret `what` from the shares revealed of it (holder -> value)."""
    if len(shares) < threshold:
        raise ProtocolAbort(
            Stage.UNMASK,
            f"only {len(shares)} shares of client {owner}'s {what} arrived, fewer than "
            f"t = {threshold}",
        )
    try:
        return shamir.combine(shares, threshold)
    except ValueError as error:
        raise ProtocolAbort(Stage.UNMASK, f"client {owner}'s {what}: {error}") from error


def rebuild_self_mask_seed(
    round_number: int, owner: int, shares: dict[int, int], threshold: int, commitment: bytes
) -> bytes:
    """A survivor's self-mask seed b, checked against the commitment it made at share_keys."""
    seed = rebuild(owner, shares, threshold, "self-mask seed")
    if seed_commitment(round_number, owner, seed) != commitment:
        raise ProtocolAbort(
            Stage.UNMASK, f"client {owner}'s rebuilt self-mask seed does not match its commitment"
        )
    return seed


def remove_pairwise_masks(
    total: npt.NDArray[np.uint32],
    round_number: int,
    owner: PublicKeys,
    shares: dict[int, int],
    threshold: int,
    peers: Iterable[PublicKeys],
) -> None:
    """Rebuild a dropped client's masking key s_sk, check it against its public key s_pk, and
    remove from `total` the pairwise mask each surviving neighbour in `peers` added with it."""
    private_key = crypto.private_key_from_bytes(
        rebuild(owner.client_id, shares, threshold, "masking key")
    )
    if crypto.public_key(private_key) != owner.masking:
        raise ProtocolAbort(
            Stage.UNMASK,
            f"client {owner.client_id}'s rebuilt masking key does not match its public key",
        )
    for peer in peers:
        seed = pairwise_mask_seed(round_number, private_key, owner, peer)
        add_mask(total, seed, -pair_sign(peer.client_id, owner.client_id))
