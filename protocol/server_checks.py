"""What the server checks in each response before it counts it, and the conditions under which
it stops a round before asking for any share (SPEC.md §4, §5).

Each response check raises the named error of SPEC.md §5 and changes nothing; `SecAggServer`
calls it from its stage method through `_collect`, which drops the sender. Each round check
raises `ProtocolAbort`, which the server turns into the round's end with its view attached.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from protocol import crypto, shamir
from protocol.errors import (
    InvalidPublicKey,
    InvalidShare,
    InvalidSignature,
    MalformedMessage,
    MaskedInputMismatch,
    ProtocolAbort,
    RoundMismatch,
    SenderMismatch,
    UnexpectedStage,
    UnknownSender,
    VectorLengthError,
)
from protocol.graph import connected_pieces
from protocol.identity import IdentityManifest, advertise_statement
from protocol.masking import PublicKeys, masked_input_binding
from protocol.messages import (
    SERVER_ID,
    AdvertiseKeysResponse,
    MaskedInputResponse,
    MaskingKeyShare,
    Message,
    ShareCommitments,
    ShareKeysResponse,
    UnmaskRequest,
    UnmaskResponse,
    share_commitment,
)
from protocol.stages import Stage

# -- the round's start and every response -----------------------------------------------------


def check_invitation(invited: list[int], num_clients: int, threshold: int) -> None:
    """Ids are Shamir x-coordinates in [1, 2^32); at least t and at most n clients."""
    if any(not 1 <= client_id < 2**32 for client_id in invited):
        raise ValueError("client ids must be in [1, 2^32)")
    if len(invited) > num_clients:
        raise ValueError(f"num_clients is {num_clients}, cannot invite {len(invited)} clients")
    if len(invited) < threshold:
        raise ValueError(f"invite at least t = {threshold} clients, got {len(invited)}")


def check_envelope(
    client_id: int,
    message: object,
    stage: Stage,
    expected: type[Message],
    active: Collection[int],
    round_number: int,
) -> None:
    """The sender is still in the round, and the message is of the stage's type, of this
    round, and from the id the transport delivered it from to the server."""
    if client_id not in active:
        raise UnknownSender(f"client {client_id} is not active in stage {stage}")
    if not isinstance(message, expected):
        raise UnexpectedStage(
            f"stage {stage} expects {expected.__name__}, client {client_id} sent "
            f"{type(message).__name__}"
        )
    if message.round != round_number:
        raise RoundMismatch(f"round {round_number} received a message for round {message.round}")
    if message.sender != client_id or message.receiver != SERVER_ID:
        raise SenderMismatch(
            f"message from transport id {client_id} claims {message.sender} -> {message.receiver}"
        )


# -- stage by stage ---------------------------------------------------------------------------


def check_advertised_keys(
    client_id: int,
    message: AdvertiseKeysResponse,
    seen_keys: set[bytes],
    manifest: IdentityManifest | None,
    context: bytes | None,
) -> None:
    """Both keys are usable X25519 keys, distinct and used by no other client (`seen_keys`,
    which then gains them); in the malicious mode (`manifest` and the session `context` given)
    they carry the sender's identity signature."""
    keys = (message.encryption_public_key, message.masking_public_key)
    for key in keys:  # canonical first, so the reuse check compares points
        crypto.check_public_key(key)
    if keys[0] == keys[1] or seen_keys & set(keys):
        raise InvalidPublicKey(f"client {client_id} reuses a public key")
    if manifest is not None and context is not None:
        if message.signature is None:
            raise InvalidSignature(f"client {client_id}'s keys are not signed")
        statement = advertise_statement(context, client_id, *keys)
        manifest.verify(client_id, statement, message.signature)
    seen_keys.update(keys)


def check_sealed_shares(
    client_id: int, message: ShareKeysResponse, neighbours: Collection[int]
) -> None:
    """One sealed pair for each graph neighbour, all dealt by the sender."""
    holders = [sealed.holder for sealed in message.shares]
    if sorted(holders) != sorted(neighbours) or len(set(holders)) != len(holders):
        raise MalformedMessage(
            f"client {client_id} must seal one share pair for each of its "
            f"{len(neighbours)} neighbours"
        )
    if any(sealed.dealer != client_id for sealed in message.shares):
        raise SenderMismatch(f"client {client_id} sent shares in another dealer's name")


def check_masked_input(
    client_id: int,
    message: MaskedInputResponse,
    dimension: int,
    routed: list[int],
    keys: PublicKeys,
    round_number: int,
) -> None:
    """d words, masked with exactly the peers the server `routed` shares from, and bound to
    the sender's session (its `keys`), those peers and the vector."""
    expected_bytes = 4 * dimension
    if len(message.masked_vector) != expected_bytes:
        raise VectorLengthError(
            f"client {client_id} sent {len(message.masked_vector)} bytes, expected "
            f"{expected_bytes} ({dimension} uint32 words)"
        )
    if message.mask_peers != routed:
        missing = sorted(set(routed) - set(message.mask_peers))
        raise MaskedInputMismatch(
            f"client {client_id} masked with {message.mask_peers}, but the server routed "
            f"it shares from {routed} (missing {missing}: lost in transit?)"
        )
    binding = masked_input_binding(round_number, keys, routed, message.masked_vector)
    if binding != message.binding:
        raise MaskedInputMismatch(
            f"client {client_id}'s masked input does not match its binding: altered in "
            "transit, or from another session of this round"
        )


def check_revealed_shares(
    client_id: int,
    message: UnmaskResponse,
    request: UnmaskRequest,
    commitments: Mapping[tuple[int, int], ShareCommitments],
    round_number: int,
) -> list[tuple[int, str, int]]:
    """Exactly one share of the kind asked for each listed peer, each matching its dealer's
    commitment; returns (owner, kind, Shamir value) for each."""
    wanted = {owner: "self_mask" for owner in request.survivors}
    wanted |= {owner: "masking_key" for owner in request.dropped}
    got = {share.owner: share.kind for share in message.shares}
    if got != wanted or len(got) != len(message.shares):
        raise MalformedMessage(
            f"client {client_id} must reveal exactly one share of the kind asked for "
            "each listed peer"
        )
    decoded: list[tuple[int, str, int]] = []
    for share in message.shares:
        committed = commitments[(share.owner, client_id)]
        expected = (
            committed.masking_key if isinstance(share, MaskingKeyShare) else committed.self_mask
        )
        actual = share_commitment(round_number, share.kind, share.owner, client_id, share.value)
        if actual != expected:
            raise InvalidShare(
                f"client {client_id}'s {share.kind} share of {share.owner} does not "
                "match the dealer's commitment"
            )
        try:
            decoded.append((share.owner, share.kind, shamir.decode_share(share.value)))
        except ValueError as error:
            raise InvalidShare(f"client {client_id}'s share of {share.owner}: {error}") from error
    return decoded


# -- who can still take part, and whether the round can go on --------------------------------


def isolated_clients(
    graph: Mapping[int, frozenset[int]], active: Collection[int], threshold: int
) -> list[tuple[int, int]]:
    """The clients left with fewer than t live share holders (themselves included), as
    (client, holders) in the order they drop: each one dropped can isolate others."""
    remaining = set(active)
    isolated: list[tuple[int, int]] = []
    changed = True
    while changed:
        changed = False
        for client_id in sorted(remaining):
            holders = len(graph[client_id] & remaining) + 1
            if holders < threshold:
                isolated.append((client_id, holders))
                remaining.discard(client_id)
                changed = True
    return isolated


def check_recoverable(
    graph: Mapping[int, frozenset[int]],
    survivors: Collection[int],
    dropped: Collection[int],
    threshold: int,
) -> None:
    """Every survivor's self-mask seed, and every dropped client's masking key that some
    survivor masked with, still has t surviving share holders."""
    alive = set(survivors)
    for client_id in sorted(alive):
        holders = len((graph[client_id] | {client_id}) & alive)
        if holders < threshold:
            raise ProtocolAbort(
                Stage.MASKED_INPUT,
                f"client {client_id} has {holders} surviving share holders, fewer than "
                f"t = {threshold}; its self mask could not be removed",
            )
    for client_id in sorted(dropped):
        holders = len(graph[client_id] & alive)
        if 0 < holders < threshold:
            raise ProtocolAbort(
                Stage.MASKED_INPUT,
                f"dropped client {client_id} has {holders} surviving share holders, fewer "
                f"than t = {threshold}; its pairwise masks could not be removed",
            )


def check_connected(
    graph: Mapping[int, frozenset[int]], survivors: Collection[int], degree: int
) -> None:
    """The survivors form one connected piece of the neighbour graph.

    Pairwise masks cancel inside every piece, so with two pieces the shares the unmask stage
    reveals would give the server each piece's sum, not only the total (SPEC.md §5 proves
    connectivity is exactly what hides everything but the total). The complete graph is
    connected whatever survives.
    """
    if degree >= len(graph) - 1:
        return
    pieces = connected_pieces(graph, survivors)
    if len(pieces) > 1:
        sizes = ", ".join(str(len(piece)) for piece in pieces)
        raise ProtocolAbort(
            Stage.MASKED_INPUT,
            f"the survivors' neighbour graph is not connected: {len(pieces)} pieces of "
            f"{sizes} clients, whose sums the server could read one by one",
        )
