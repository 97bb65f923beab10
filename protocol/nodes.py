"""In-process nodes for the pipeline scheduler: what a federation's nodes do, minus the network.

Each node keeps its open rounds in one `ClientSessions` and answers each transport message from
its wire bytes, one response per round, as a firm's ClientApp does (`clients/secagg.py`). It
gets its input just before it masks, as a firm trains then. `protocol.run_rounds` drives them;
tests use them to watch what the scheduler sends.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.client import SecAggClient
from protocol.errors import ProtocolError
from protocol.identity import IdentityManifest
from protocol.messages import AnyRequest, parse_message
from protocol.pipeline import NodeBatch, Reply, TransportMessage
from protocol.sessions import ClientSessions
from protocol.stages import Stage

DropoutPlan = Mapping[int, Mapping[int, Stage]]
"""round -> {node: stage}: the node stays silent in every message that carries that stage of
that round, or a later one of it."""


def _rounding_seed(seed: int | None, round_number: int, node: int) -> int | None:
    """One rounding stream per round and node, all from one run seed."""
    if seed is None:
        return None
    return int(np.random.SeedSequence([seed, round_number, node]).generate_state(1)[0])


class LocalNodes:
    """In-process nodes for `PipelineScheduler` (a `Send`): one `ClientSessions` per node,
    answering each message from its wire bytes, as a federation's node does.

    A node's round-r client gets `inputs[r][node]` just before it masks (a firm trains then).
    Under `dropout`, a silent node misses the whole message, so a pipelined message costs it
    the other round it carries too. With `persist`, each node is rebuilt from its stored bytes
    after every message, as a SuperNode keeps it. With `identities` (malicious mode), a node
    listed there holds that long-term identity key and the federation's `manifest`, so it joins
    malicious-mode rounds only (`ClientSessions`).
    """

    def __init__(
        self,
        inputs: Mapping[int, Mapping[int, npt.NDArray[np.float64]]],
        *,
        dropout: DropoutPlan | None = None,
        rounding_seed: int | None = None,
        persist: bool = False,
        identities: Mapping[int, Ed25519PrivateKey] | None = None,
        manifest: IdentityManifest | None = None,
    ) -> None:
        if (identities is None) != (manifest is None):
            raise ValueError("give both the identities and the manifest, or neither")
        self.inputs = inputs
        self.dropout = dropout or {}
        self.rounding_seed = rounding_seed
        self.persist = persist
        self.identities = dict(identities or {})
        self.manifest = manifest
        self.sessions = {
            node: self._sessions(node) for round_ in inputs.values() for node in round_
        }
        self.encoded: dict[int, dict[int, npt.NDArray[np.uint32]]] = {}
        """round -> node -> its quantised input, kept to check the sum (simulation only)."""
        self.errors: dict[int, dict[int, ProtocolError]] = {}
        """round -> node -> the error that stopped the node in a message carrying that round."""
        self.masks_expanded: dict[int, int] = {}
        """round -> masks expanded by its clients."""
        self.messages: dict[int, list[str]] = {}
        """round r -> the labels of the messages sent in r's turn, in order."""

    def _sessions(self, node: int, stored: bytes | None = None) -> ClientSessions:
        identity = self.identities.get(node)
        manifest = self.manifest if identity is not None else None
        if stored is None:
            return ClientSessions(identity, manifest)
        return ClientSessions.from_bytes(stored, identity, manifest)

    def __call__(self, message: TransportMessage) -> dict[int, Reply]:
        self.messages.setdefault(message.round_number, []).append(message.label)
        replies: dict[int, Reply] = {}
        for node, batch in message.batches.items():
            reply = None if self._silent(node, batch) else self._answer(node, batch)
            if reply is not None:
                replies[node] = reply
        return replies

    def _silent(self, node: int, batch: NodeBatch) -> bool:
        for part in batch.parts:
            silent_from = self.dropout.get(part.round_number, {}).get(node)
            if silent_from is not None and silent_from.position <= part.stage.position:
                return True
        return False

    def _answer(self, node: int, batch: NodeBatch) -> list[bytes] | None:
        sessions = self.sessions[node]
        masking: list[tuple[int, SecAggClient]] = []

        def provide_input(client: SecAggClient) -> None:
            round_number = client.round_number
            assert round_number is not None  # ClientSessions opens each client for its round
            seed = _rounding_seed(self.rounding_seed, round_number, node)
            client.provide_input(self.inputs[round_number][node], rounding_seed=seed)
            assert client.quantized_input is not None
            self.encoded.setdefault(round_number, {})[node] = client.quantized_input
            masking.append((round_number, client))

        try:
            parsed = [parse_message(payload) for payload in batch.payloads]
            # handle_batch itself refuses anything that is not a request
            responses = sessions.handle_batch(cast(list[AnyRequest], parsed), provide_input)
        except ProtocolError as error:  # the node stops: no reply, the batch's rounds forgotten
            for part in batch.parts:
                self.errors.setdefault(part.round_number, {})[node] = error
            return None
        finally:
            for round_number, client in masking:
                count = self.masks_expanded.get(round_number, 0) + client.masks_expanded
                self.masks_expanded[round_number] = count
            if self.persist:
                self.sessions[node] = self._sessions(node, sessions.to_bytes())
        return [response.to_bytes() for response in responses]
