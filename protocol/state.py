"""What a client keeps between two messages of a round, as data (no pickle).

A transport that cannot keep the `SecAggClient` object alive between stages (a SuperNode may
run each message in a fresh process) stores this instead, on the client's own node only. Every
secret in it is listed here, so what a node holds at each point of a round can be read off:

| after | private keys | self-mask seed | channels | shares held | input |
|---|---|---|---|---|---|
| advertise_keys | both | yes | — | — | only if given early |
| share_keys | both | yes | one per neighbour | its own | only if given early |
| masked_input | — | — | — | its own and its neighbours' | released by the transport |
| consistency_check (malicious mode) | — | — | — | its own and its neighbours' | — |
| unmask | — (the round is over; nothing is stored) | | | | |

In the malicious mode a client also keeps U1 as it was shown (after share_keys) and the survivor
set it signed (after consistency_check); its long-term identity key is the node's and is never
part of this state.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from protocol.config import SecAggConfig
from protocol.messages import ClientId, PeerKeys, RoundNumber, ShareValue
from protocol.messages import _Model as _State  # same strictness and base64 bytes as the wire
from protocol.stages import ClientStatus, Stage

Key32 = Annotated[bytes, Field(min_length=32, max_length=32)]


class Channel(_State):
    """The AES-GCM key and session id a client shares with one neighbour."""

    peer: ClientId
    key: Key32
    session: bytes


class ClientState(_State):
    """One client's state in one round, between two stages.

    Version 2 added `participants` and `survivor_set` (malicious mode); version 1 states, which
    lack them, still load."""

    version: Literal[1, 2] = 2
    client_id: ClientId
    config: SecAggConfig
    round_number: RoundNumber | None
    dimension: int = Field(ge=1)
    next_stage: Stage | None
    status: ClientStatus
    masks_expanded: int = Field(ge=0)
    rounding: dict[str, Any]
    """numpy PCG64 state of the stochastic rounding (not a secret of the protocol)."""
    quantized_input: bytes | None
    """The encoded input, little-endian uint32; None once masked and released."""
    encryption_private_key: Key32 | None
    masking_private_key: Key32 | None
    self_mask_seed: Key32 | None
    own_keys: PeerKeys | None
    neighbours: list[PeerKeys]
    channels: list[Channel]
    held_self_mask_shares: dict[int, ShareValue]
    """Shares of each dealer's self-mask seed this client holds, by dealer."""
    held_key_shares: dict[int, ShareValue]
    """Shares of each dealer's masking key this client holds, by dealer."""
    participants: list[ClientId] | None = None
    """Malicious mode: U1 as this client was shown it (to check a survivor set's graph)."""
    survivor_set: list[ClientId] | None = None
    """Malicious mode: the survivor set this client signed; it reveals shares for no other."""


class SessionsState(_State):
    """A client's open rounds (`ClientSessions`), by round number (version 2 added
    `signed_through`; version 1 states still load)."""

    version: Literal[1, 2] = 2
    rounds: dict[RoundNumber, ClientState]
    signed_through: RoundNumber | None = None
    """Malicious mode: the latest round whose survivor set this client signed; it never opens
    that round, or an earlier one, again (one signature per round number)."""
