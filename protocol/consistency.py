"""The client's rules for the consistency check (malicious mode): which survivor set it signs,
and which signed set it reveals shares for (SPEC.md §10, rules 3 and 4).

An honest client signs one survivor set per round and reveals shares only for that set, and only
once `config.consistency_quorum` survivors have signed the very same statement. Before signing it
checks the set is one an honest server could have produced (SPEC.md §10): it is in it, the set is
drawn from the participants it was shown, every neighbour listed as a survivor gave it shares,
the set can reach the quorum, and the set's neighbour graph is connected (so an active server
cannot certify a set whose pieces' sums it would read one by one, §5).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from protocol.config import SecAggConfig
from protocol.errors import MalformedMessage, ProtocolAbort, RefusedRequest
from protocol.graph import connected_pieces, graph_seed, neighbour_graph
from protocol.identity import IdentityManifest, count_valid_signers
from protocol.messages import UnmaskRequest
from protocol.stages import Stage


def check_survivor_set(
    client_id: int,
    survivors: Sequence[int],
    *,
    participants: Sequence[int],
    neighbours: Collection[int],
    held: Collection[int],
    config: SecAggConfig,
    round_number: int,
) -> None:
    """Raise unless an honest client may sign `survivors` (see the module docstring)."""
    members = set(survivors)
    if list(survivors) != sorted(members):
        raise MalformedMessage("the survivor set must be sorted and without repeats")
    if client_id not in members:
        raise RefusedRequest(f"client {client_id} is not in the survivor set it is asked to sign")
    strangers = members - set(participants)
    if strangers:
        raise MalformedMessage(f"survivors {sorted(strangers)} never took part in the round")
    unshared = (members & set(neighbours)) - set(held)
    if unshared:
        raise RefusedRequest(
            f"neighbours {sorted(unshared)} are listed as survivors but never gave client "
            f"{client_id} their shares"
        )
    quorum = config.consistency_quorum
    if len(members) < quorum:
        raise ProtocolAbort(
            Stage.CONSISTENCY_CHECK,
            f"{len(members)} survivors cannot reach the quorum of {quorum} signatures",
        )
    if config.degree < len(participants) - 1:
        graph = neighbour_graph(participants, config.degree, graph_seed(round_number, participants))
        pieces = connected_pieces(graph, members)
        if len(pieces) > 1:
            raise RefusedRequest(
                f"the survivor set's neighbour graph falls into {len(pieces)} pieces; client "
                f"{client_id} will not certify it"
            )


def check_certificate(
    manifest: IdentityManifest,
    statement: bytes,
    signatures: Iterable[tuple[int, bytes]],
    survivors: Collection[int],
    quorum: int,
) -> None:
    """Raise `RefusedRequest` unless at least `quorum` distinct survivors signed `statement`."""
    valid = count_valid_signers(manifest, statement, signatures, survivors, enough=quorum)
    if len(valid) < quorum:
        raise RefusedRequest(
            f"only {len(valid)} survivors signed the survivor set, the quorum is {quorum}: "
            "no share is revealed"
        )


def check_certified_request(
    client_id: int,
    request: UnmaskRequest,
    held: set[int],
    signed: list[int],
    manifest: IdentityManifest,
    statement: bytes,
    quorum: int,
) -> None:
    """Raise `RefusedRequest` unless the unmask request follows from the survivor set `signed`
    that this client signed (`statement`), and a quorum of those survivors signed it too."""
    members = set(signed)
    if request.survivors != sorted(held & members) or request.dropped != sorted(held - members):
        raise RefusedRequest(
            f"client {client_id} reveals shares only for the survivor set it signed"
        )
    check_certificate(
        manifest,
        statement,
        [(entry.signer, entry.signature) for entry in request.consistency_signatures],
        members,
        quorum,
    )
