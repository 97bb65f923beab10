"""The SecAgg+ neighbour graph: a Harary graph over a public pseudo-random permutation.

Clients are placed on a ring in the order of 64-bit keys read from the AES-CTR keystream of a
public seed, and each is joined to the k/2 nearest clients on either side. The seed is public
(derived from the round number and the participant list), so every client can recompute its
own neighbours and check the server's routing; the server's only influence is which clients
take part. The permutation is computed with one vectorised argsort, so a client's check costs
O(n log n) in C and O(k) in Python.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Collection, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from protocol.crypto import DOMAIN, prg_uint32


def graph_seed(round_number: int, participants: Sequence[int]) -> bytes:
    """Public randomness for the permutation: a hash of the round and the sorted participant ids."""
    ids = np.asarray(sorted(participants), dtype="<u4")
    header = DOMAIN + b"/graph" + struct.pack("<QI", round_number, ids.shape[0])
    return hashlib.sha256(header + ids.tobytes()).digest()


def ring_order(participants: Sequence[int], seed: bytes) -> npt.NDArray[np.int64]:
    """The participants, sorted, then permuted by 64-bit keys from the keystream of `seed`."""
    ids = np.asarray(sorted(participants), dtype=np.int64)
    if ids.shape[0] and np.any(ids[1:] == ids[:-1]):
        raise ValueError("participants must be distinct")
    keys = prg_uint32(seed, 2 * ids.shape[0]).view(np.uint64)
    return ids[np.argsort(keys, kind="stable")]


def _check_degree(size: int, degree: int) -> bool:
    """True for the complete graph; raises for an impossible sparse degree."""
    if degree >= size - 1:
        return True
    if degree % 2 == 1 or degree < 0:
        raise ValueError(f"a sparse degree must be even and >= 0, got {degree}")
    return False


def neighbours_of(
    client_id: int, participants: Sequence[int], degree: int, seed: bytes
) -> frozenset[int]:
    """One participant's neighbours (itself excluded) in the degree-k Harary graph."""
    ring = ring_order(participants, seed)
    positions = np.flatnonzero(ring == client_id)
    if positions.shape[0] != 1:
        raise ValueError(f"client {client_id} is not a participant")
    if _check_degree(ring.shape[0], degree):
        return frozenset(int(peer) for peer in ring if peer != client_id)
    half = degree // 2
    offsets = np.r_[1 : half + 1, -half:0]
    return frozenset(int(peer) for peer in ring[(positions[0] + offsets) % ring.shape[0]])


def neighbour_graph(
    participants: Sequence[int], degree: int, seed: bytes
) -> dict[int, frozenset[int]]:
    """Every participant's neighbours (itself excluded) in the degree-k Harary graph.

    A degree at or above `len(participants) - 1` gives the complete graph. A sparse degree must
    be even, as `SecAggConfig` enforces.
    """
    ring = ring_order(participants, seed)
    size = ring.shape[0]
    if _check_degree(size, degree):
        everyone = frozenset(int(client) for client in ring)
        return {client: everyone - {client} for client in sorted(everyone)}
    half = degree // 2
    offsets = np.r_[1 : half + 1, -half:0]
    table = ring[(np.arange(size)[:, None] + offsets[None, :]) % size]
    return {int(client): frozenset(row.tolist()) for client, row in zip(ring, table, strict=True)}


def connected_pieces(
    graph: Mapping[int, frozenset[int]], members: Collection[int]
) -> list[frozenset[int]]:
    """The connected components of the subgraph induced on `members`, largest first.

    Pairwise masks cancel inside each component of the survivors' graph, so each component's
    sum is what the server could read; the server aborts unless there is exactly one (SPEC.md
    §5). A breadth-first search, O(|members| · k).
    """
    left = set(members)
    pieces: list[frozenset[int]] = []
    while left:
        frontier = [left.pop()]
        piece = set(frontier)
        while frontier:
            reached = graph[frontier.pop()] & left
            left -= reached
            piece |= reached
            frontier.extend(reached)
        pieces.append(frozenset(piece))
    return sorted(pieces, key=lambda piece: (-len(piece), min(piece)))
