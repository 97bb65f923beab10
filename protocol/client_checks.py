"""What a client checks in the server's requests before it acts on them (SPEC.md §4, §10).

Each function raises the named error of SPEC.md §5 and changes nothing; `SecAggClient` calls
them in its stage methods, in the order the stages run, and gives the round up when one raises.
The consistency check's own rules (which survivor set to sign, which signed set to reveal
shares for) are in consistency.py.
"""

from __future__ import annotations

from protocol import crypto
from protocol.config import SecAggConfig
from protocol.errors import (
    InvalidSignature,
    MalformedMessage,
    ProtocolAbort,
    RefusedRequest,
    RoundMismatch,
    UnexpectedStage,
)
from protocol.identity import IdentityManifest, advertise_statement
from protocol.masking import PublicKeys
from protocol.messages import SERVER_ID, Message, ShareKeysRequest, UnmaskRequest
from protocol.stages import Stage


def check_envelope(
    request: Message,
    expected: type[Message],
    client_id: int,
    next_stage: Stage | None,
    round_number: int | None,
) -> None:
    """The request is of the stage the client expects next, of its round (once it has one),
    and from the server to this client. Raised before any state changes, so a stray or
    replayed message cannot derail an honest client."""
    if not isinstance(request, expected) or next_stage is not expected.stage:
        wanted = next_stage.value if next_stage else "nothing (round over)"
        raise UnexpectedStage(f"client {client_id} expects {wanted}, got {type(request).__name__}")
    if round_number is not None and request.round != round_number:
        raise RoundMismatch(
            f"client {client_id} is in round {round_number}, message is for round {request.round}"
        )
    if request.sender != SERVER_ID or request.receiver != client_id:
        raise MalformedMessage(
            f"request must go from the server (0) to client {client_id}, "
            f"got {request.sender} -> {request.receiver}"
        )


# -- share_keys -------------------------------------------------------------------------------


def check_participants(
    client_id: int,
    participants: list[int],
    config: SecAggConfig,
    malicious: bool,
    manifest: IdentityManifest | None,
) -> None:
    """U1 is sorted, distinct and includes the client; in the malicious mode it is no larger
    than the round's n and lists registered clients only."""
    if participants != sorted(set(participants)) or client_id not in participants:
        raise MalformedMessage(f"participants must be sorted, distinct and include {client_id}")
    if manifest is not None and malicious:
        # The consistency quorum is counted out of num_clients, so U1 may not be larger.
        if len(participants) > config.num_clients:
            raise MalformedMessage(
                f"{len(participants)} participants, more than the "
                f"{config.num_clients} clients the round invites"
            )
        strangers = sorted(set(participants) - set(manifest.keys))
        if strangers:
            raise InvalidSignature(f"participants {strangers} are not in the identity manifest")


def check_neighbour_offer(
    client_id: int, request: ShareKeysRequest, expected: frozenset[int], threshold: int
) -> set[int]:
    """The request carries the keys of exactly the client's graph neighbours, once each, and
    with the client they are at least t share holders; returns their ids."""
    offered = {peer.client_id for peer in request.neighbours}
    if offered != expected or len(offered) != len(request.neighbours):
        raise MalformedMessage(
            f"neighbours must be exactly the graph neighbours of client {client_id}"
        )
    if len(offered) + 1 < threshold:
        raise ProtocolAbort(
            Stage.SHARE_KEYS,
            f"client {client_id} has {len(offered) + 1} share holders, fewer than t = {threshold}",
        )
    return offered


def check_signed_keys(
    request: ShareKeysRequest, manifest: IdentityManifest, context: bytes, quorum: int
) -> None:
    """Malicious mode: enough clients take part to ever reach the quorum, and each
    neighbour's keys carry its own identity signature (a server that substitutes keys or
    invents clients is caught here)."""
    if len(request.participants) < quorum:
        raise ProtocolAbort(
            Stage.SHARE_KEYS,
            f"{len(request.participants)} participants can never reach the consistency "
            f"quorum of {quorum}",
        )
    for peer in request.neighbours:
        if peer.signature is None:
            raise InvalidSignature(f"client {peer.client_id}'s keys arrived unsigned")
        statement = advertise_statement(
            context, peer.client_id, peer.encryption_public_key, peer.masking_public_key
        )
        manifest.verify(peer.client_id, statement, peer.signature)


def check_fresh_keys(keys: PublicKeys, seen: set[bytes]) -> None:
    """A neighbour's keys are canonical X25519 encodings (so the reuse check compares points,
    not spellings) and reuse none in `seen`, which then gains them."""
    crypto.check_canonical(keys.encryption)
    crypto.check_canonical(keys.masking)
    if keys.encryption in seen or keys.masking in seen:
        raise MalformedMessage(f"client {keys.client_id} reuses a public key")
    seen |= {keys.encryption, keys.masking}


# -- unmask -----------------------------------------------------------------------------------


def check_unmask_partition(
    client_id: int, request: UnmaskRequest, held: set[int]
) -> tuple[set[int], set[int]]:
    """Survivors and dropped are disjoint (never both shares of one peer), without repeats, and
    partition the dealers whose shares the client holds, itself a survivor; returns both."""
    survivors, dropped = set(request.survivors), set(request.dropped)
    if survivors & dropped:
        raise RefusedRequest(
            f"client {client_id} refuses to reveal both shares of {sorted(survivors & dropped)}"
        )
    if len(survivors) != len(request.survivors) or len(dropped) != len(request.dropped):
        raise MalformedMessage("survivors and dropped must not repeat ids")
    if client_id not in survivors or survivors | dropped != held:
        raise MalformedMessage(
            f"survivors and dropped must partition the {len(held)} clients whose shares "
            f"client {client_id} holds, itself among the survivors"
        )
    return survivors, dropped
