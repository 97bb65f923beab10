"""Shared helpers for protocol tests: a round driven by hand, stage by stage."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pytest

from protocol import (
    AggregateResult,
    IdentityManifest,
    Message,
    ProtocolError,
    SecAggClient,
    SecAggConfig,
    SecAggServer,
    Stage,
    generate_identity,
    stage_order,
)


class ManualRound:
    """Real clients and a real server, advanced one stage at a time by the test.

    A malicious-mode config gets a fresh identity per client and their manifest."""

    def __init__(
        self,
        num_clients: int = 4,
        dimension: int = 6,
        config: SecAggConfig | None = None,
        round_number: int = 0,
        seed: int = 0,
    ) -> None:
        self.config = config or SecAggConfig(num_clients=num_clients, scale=2.0**10)
        self.order = stage_order(self.config.mode)
        malicious = self.config.mode == "malicious"
        self.identities = (
            {c: generate_identity() for c in range(1, num_clients + 1)} if malicious else {}
        )
        self.manifest = (
            IdentityManifest.of("test-federation", self.identities) if malicious else None
        )
        rng = np.random.default_rng(seed)
        self.inputs = {
            client_id: rng.uniform(-1, 1, dimension) for client_id in range(1, num_clients + 1)
        }
        self.clients = {
            client_id: SecAggClient(
                client_id,
                self.config,
                vector,
                rounding_seed=seed + client_id,
                round_number=round_number,
                identity=self.identities.get(client_id),
                manifest=self.manifest,
            )
            for client_id, vector in self.inputs.items()
        }
        self.server = SecAggServer(self.config, dimension, round_number, self.manifest)
        self.requests: dict[Stage, dict[int, Any]] = {
            Stage.ADVERTISE_KEYS: self.server.start(sorted(self.clients))
        }
        self.responses: dict[Stage, dict[int, Any]] = {}
        self.client_errors: dict[int, ProtocolError] = {}
        self.result: AggregateResult | None = None

    def answer(
        self, stage: Stage, silent: Iterable[int] = (), tolerate: bool = False
    ) -> dict[int, Message]:
        """Let every invited client answer its request for `stage`, except the silent ones.

        With `tolerate`, a client that raises a protocol error stays silent instead (the error
        is kept in `client_errors`), as over a network."""
        quiet = set(silent)
        responses = {}
        for client_id, request in self.requests[stage].items():
            if client_id in quiet:
                continue
            try:
                responses[client_id] = self.clients[client_id].handle(request)
            except ProtocolError as error:
                if not tolerate:
                    raise
                self.client_errors[client_id] = error
        self.responses[stage] = responses
        return responses

    def deliver(self, stage: Stage, responses: Mapping[int, Any] | list[tuple[int, Any]]) -> Any:
        """Hand responses to the server and keep what it returns."""
        outcome = self.server.receive(stage, responses)
        next_stage = stage.next(self.config.mode)
        if next_stage is None:
            self.result = outcome
        else:
            self.requests[next_stage] = outcome
        return outcome

    def play(self, stage: Stage, silent: Iterable[int] = ()) -> Any:
        return self.deliver(stage, self.answer(stage, silent))

    def play_until(self, stage: Stage) -> None:
        """Complete every stage before `stage` (in this round's mode)."""
        for earlier in self.order[: self.order.index(stage)]:
            self.play(earlier)

    def play_all(self) -> None:
        """Complete the round."""
        for stage in self.order:
            self.play(stage)

    def expected_sum(self, survivors: Iterable[int]) -> np.ndarray:
        from protocol import to_signed

        total = np.zeros(len(next(iter(self.inputs.values()))), dtype=np.uint32)
        for client_id in survivors:
            total += self.clients[client_id].quantized_input
        return to_signed(total, self.config)


@pytest.fixture
def manual_round() -> type[ManualRound]:
    return ManualRound
