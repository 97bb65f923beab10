"""The SecAgg+ neighbour graph: a Harary graph over a public pseudo-random permutation.

Clients are placed on a ring in the order of SHA-256(public seed || id) and each is joined to the
k/2 nearest clients on either side. The seed is public (derived from the round number and the
participant list), so every client can recompute the graph and check the server's routing; the
server's only influence is which clients take part.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

from protocol.crypto import DOMAIN


def graph_seed(round_number: int, participants: Sequence[int]) -> bytes:
    """Public randomness for the permutation: a hash of the round and the sorted participant ids."""
    ids = sorted(participants)
    payload = DOMAIN + b"/graph" + struct.pack(f"<QI{len(ids)}I", round_number, len(ids), *ids)
    return hashlib.sha256(payload).digest()


def neighbour_graph(
    participants: Sequence[int], degree: int, seed: bytes
) -> dict[int, frozenset[int]]:
    """Each participant's neighbours (itself excluded) in the degree-k Harary graph.

    A degree at or above `len(participants) - 1` gives the complete graph. A sparse degree must
    be even, as `SecAggConfig` enforces.
    """
    ids = sorted(set(participants))
    if len(ids) != len(participants):
        raise ValueError("participants must be distinct")
    if degree >= len(ids) - 1:
        everyone = frozenset(ids)
        return {client: everyone - {client} for client in ids}
    if degree % 2 == 1 or degree < 0:
        raise ValueError(f"a sparse degree must be even and >= 0, got {degree}")
    ring = sorted(ids, key=lambda client: hashlib.sha256(seed + struct.pack("<I", client)).digest())
    size = len(ring)
    half = degree // 2
    neighbours: dict[int, frozenset[int]] = {}
    for position, client in enumerate(ring):
        offsets = [*range(1, half + 1), *range(-half, 0)]
        neighbours[client] = frozenset(ring[(position + offset) % size] for offset in offsets)
    return neighbours
