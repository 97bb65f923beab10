"""A recording in-process transport for the pipeline scheduler, and its exactness check: never
in production.

Both pipeline test modules (semi-honest and malicious rounds) drive `PipelineScheduler` through
`protocol.nodes.LocalNodes`; this is the one copy of what they need around it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from protocol import AggregateResult, to_signed
from protocol.nodes import LocalNodes
from protocol.pipeline import Reply, RoundInFlight, TransportMessage


class Recorder:
    """A transport that remembers every message it carries, then lets `nodes` answer."""

    def __init__(self, nodes: LocalNodes) -> None:
        self.nodes = nodes
        self.sent: list[TransportMessage] = []

    def __call__(self, message: TransportMessage) -> Mapping[int, Reply]:
        self.sent.append(message)
        return self.nodes(message)

    def labels(self) -> list[tuple[int, str]]:
        return [(message.round_number, message.label) for message in self.sent]


def assert_exact(round_: RoundInFlight, nodes: LocalNodes) -> None:
    """The round's unmasked sum is exactly the sum of its contributors' encoded inputs."""
    assert isinstance(round_.outcome, AggregateResult)
    encoded = nodes.encoded[round_.number]
    total = sum(
        (encoded[node] for node in round_.contributors()),
        np.zeros(round_.server.dimension, dtype=np.uint32),
    )
    expected = to_signed(np.asarray(total, dtype=np.uint32), round_.cohort.config)
    np.testing.assert_array_equal(round_.outcome.integer_sum, expected)
