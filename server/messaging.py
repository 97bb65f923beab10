"""One stage of a round over Flower: send a message to each node, sort replies from dropouts."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from flwr.app import Message, RecordDict
from flwr.serverapp import Grid


@dataclass
class StageReplies:
    """Replies by node id, and every node that did not answer properly, with why."""

    replies: dict[int, Message] = field(default_factory=dict)
    dropped: dict[int, str] = field(default_factory=dict)


def exchange(
    grid: Grid,
    contents: Mapping[int, RecordDict],
    message_type: str,
    group_id: str,
    timeout: float,
) -> StageReplies:
    """One `send_and_receive`; an error reply or silence until `timeout` is a dropout."""
    messages = [
        Message(content, dst_node_id=node, message_type=message_type, group_id=group_id)
        for node, content in contents.items()
    ]
    outcome = StageReplies()
    for reply in grid.send_and_receive(messages, timeout=timeout):
        node = reply.metadata.src_node_id
        if node not in contents:
            continue  # a reply from a node we did not ask: ignored, never trusted
        if reply.has_error():
            outcome.dropped[node] = f"error {reply.error.code}: {reply.error.reason}"
        else:
            outcome.replies[node] = reply
    for node in contents:
        if node not in outcome.replies and node not in outcome.dropped:
            outcome.dropped[node] = f"no reply within {timeout:g} s"
    return outcome


def wait_for_nodes(grid: Grid, minimum: int, timeout: float) -> list[int]:
    """The connected nodes, once at least `minimum` are there (SuperNodes join over time)."""
    deadline = time.monotonic() + timeout
    while True:
        nodes = sorted(grid.get_node_ids())
        if len(nodes) >= minimum:
            return nodes
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"only {len(nodes)} node(s) connected after {timeout:g} s; "
                f"min-clients requires {minimum}"
            )
        time.sleep(0.1)


def poll_faster(grid: Grid, interval: float = 0.01) -> None:
    """Flower's in-memory (simulation) Grid checks for replies every 0.1 s; each protocol stage
    waits for that tick, so a 4-stage round would pay it 4 times. Poll every `interval` instead
    (other Grids are left as they are)."""
    if hasattr(grid, "pull_interval"):
        grid.pull_interval = interval
