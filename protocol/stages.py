"""The protocol's ordered stages and the enums the server uses to describe each client.

Flower keeps its SecAgg+ stages as loose string constants; an ordered `StrEnum` lets both state
machines check "is this the stage I expect next?" with one comparison, and serialises as the
same readable string in messages, transcripts and schemas.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal


class Stage(StrEnum):
    """The stages of a round, in protocol order. A semi-honest round skips CONSISTENCY_CHECK
    (`STAGE_ORDER`); a malicious-mode round runs all five (`MALICIOUS_STAGE_ORDER`)."""

    ADVERTISE_KEYS = "advertise_keys"
    SHARE_KEYS = "share_keys"
    MASKED_INPUT = "masked_input"
    CONSISTENCY_CHECK = "consistency_check"
    UNMASK = "unmask"

    @property
    def position(self) -> int:
        """Zero-based place of the stage among all five, so stages compare by order, not by name
        (a semi-honest round simply has no stage at position 3)."""
        return MALICIOUS_STAGE_ORDER.index(self)

    def next(self, mode: Mode = "semi-honest") -> Stage | None:
        """The stage that follows this one in a round of `mode`, or None after the last."""
        order = stage_order(mode)
        following = order.index(self) + 1
        return order[following] if following < len(order) else None


Mode = Literal["semi-honest", "malicious"]
"""Which server the round defends against (SPEC.md §1): one that follows the protocol, or one
that may deviate from it (signed keys and a consistency check)."""

STAGE_ORDER: tuple[Stage, ...] = (
    Stage.ADVERTISE_KEYS,
    Stage.SHARE_KEYS,
    Stage.MASKED_INPUT,
    Stage.UNMASK,
)
"""The stages of a semi-honest round, in order."""

MALICIOUS_STAGE_ORDER: tuple[Stage, ...] = (
    Stage.ADVERTISE_KEYS,
    Stage.SHARE_KEYS,
    Stage.MASKED_INPUT,
    Stage.CONSISTENCY_CHECK,
    Stage.UNMASK,
)
"""The stages of a malicious-mode round, in order: survivors sign the survivor set before any
share is revealed."""


def stage_order(mode: Mode) -> tuple[Stage, ...]:
    """The stages a round of `mode` runs, in order."""
    return MALICIOUS_STAGE_ORDER if mode == "malicious" else STAGE_ORDER


class ClientStatus(StrEnum):
    """Where one client stands, as the server sees it (or as the client sees itself)."""

    INVITED = "invited"
    ADVERTISED_KEYS = "advertised_keys"
    SHARED_KEYS = "shared_keys"
    SENT_MASKED_INPUT = "sent_masked_input"
    SIGNED_SURVIVORS = "signed_survivors"
    UNMASKED = "unmasked"
    DROPPED = "dropped"
    ABORTED = "aborted"


class DropReason(StrEnum):
    """Why the server stopped counting a client in a round."""

    NO_RESPONSE = "no_response"
    """The client sent nothing for the stage (crash, network, timeout)."""
    MALFORMED_MESSAGE = "malformed_message"
    """The response did not parse or violated a field invariant."""
    WRONG_STAGE = "wrong_stage"
    """The response belongs to another stage."""
    WRONG_ROUND = "wrong_round"
    """The response carries another round number (a replay)."""
    SENDER_MISMATCH = "sender_mismatch"
    """The message names a sender other than the one the transport delivered it from."""
    DUPLICATE_SENDER = "duplicate_sender"
    """Two responses in one stage claim the same sender."""
    INVALID_PUBLIC_KEY = "invalid_public_key"
    """A public key was not a usable X25519 point (wrong length, low order, reused)."""
    INVALID_SHARE = "invalid_share"
    """A revealed share did not match the dealer's commitment."""
    WRONG_VECTOR_LENGTH = "wrong_vector_length"
    """The masked vector does not have the agreed length."""
    MASKED_INPUT_MISMATCH = "masked_input_mismatch"
    """The masked input was masked with other peers than the server routed shares from (a share
    lost in transit), or its binding does not match (altered in transit, or another session's)."""
    TOO_FEW_NEIGHBOURS = "too_few_neighbours"
    """Fewer than t of the client's share holders remain, so its secrets could not be rebuilt."""
    INVALID_SIGNATURE = "invalid_signature"
    """Malicious mode: a signature did not verify under the client's identity key."""
    CLIENT_REFUSED = "client_refused"
    """The client raised a protocol error instead of answering (seen by the in-process runner)."""
