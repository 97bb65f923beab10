"""One stage of a round over Flower: send a message to each node, sort replies from dropouts.

Why not Flower's `send_and_receive`: over a real SuperLink (`HttpGrid`) its pull downloads each
reply's data with retries that outlast any stage timeout (Flower 1.42 allows 7200 s). When a firm
dies while uploading, its reply is announced but its data never completes, the pull blocks on it
for minutes, and the replies pulled in the same batch wait behind it; by the time it returns the
stage's deadline has passed and healthy firms count as dropouts (issue 17). So `exchange` pushes
with `push_messages` and pulls each message's reply on its own with `pull_messages`, against the
stage's own deadline, then sweeps once more for late ones. A dead firm costs at most `timeout` plus
`STAGE_MARGIN`; a reply that arrived is never held hostage by another.

Errors the SuperLink returns for a node ("node unavailable", "reply data unavailable") name the
SuperLink (node 1) as their sender; they are matched to the node through `reply_to_message_id`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from flwr.app import Error, Message, RecordDict
from flwr.common.constant import ErrorCode
from flwr.serverapp import Grid
from flwr.superlink.grid import InMemoryGrid

STAGE_MARGIN = 5.0
"""Seconds after a stage's deadline in which replies still being downloaded may finish and a
last sweep collects replies that came in at the deadline. A stage never takes longer than its
timeout plus this (plus one poll interval)."""

POLL_INTERVAL = 0.25
"""Seconds between two pulls of one message's reply over a SuperLink (Flower's own: 3 s)."""

_ERROR_LABELS = {
    ErrorCode.NODE_UNAVAILABLE: "node unavailable (the SuperLink missed its heartbeats)",
    ErrorCode.MESSAGE_UNAVAILABLE: "reply data unavailable (its upload did not complete)",
    ErrorCode.REPLY_MESSAGE_UNAVAILABLE: "reply expired before it was collected",
    ErrorCode.CLIENT_APP_RAISED_EXCEPTION: "the firm's ClientApp raised an exception",
}


@dataclass
class StageReplies:
    """Replies by node id, and every node that did not answer properly, with why."""

    replies: dict[int, Message] = field(default_factory=dict)
    dropped: dict[int, str] = field(default_factory=dict)


def describe_error(error: Error) -> str:
    """`error 3: node unavailable (...)`: Flower's code, what it means here, Flower's words."""
    label = _ERROR_LABELS.get(error.code)
    reason = " ".join(str(error.reason).split())
    if label is None:
        return f"error {error.code}: {reason}"
    return f"error {error.code}: {label}; {reason}" if reason else f"error {error.code}: {label}"


def exchange(
    grid: Grid,
    contents: Mapping[int, RecordDict],
    message_type: str,
    group_id: str,
    timeout: float,
) -> StageReplies:
    """Send `contents[node]` to each node; an error reply or silence until `timeout` is a dropout.

    Replies come back in the order of `contents`, whatever order they arrived in. Messages
    expire shortly after the stage (TTL), so a firm that restarts meanwhile does not work
    through stages that are over."""
    messages = {
        node: Message(
            content,
            dst_node_id=node,
            message_type=message_type,
            ttl=timeout + 2 * STAGE_MARGIN,
            group_id=group_id,
        )
        for node, content in contents.items()
    }
    accepted = set(grid.push_messages(list(messages.values())))
    deadline = time.monotonic() + timeout
    outcome = StageReplies()
    node_of: dict[str, int] = {}
    for node, message in messages.items():
        if message.metadata.message_id and message.metadata.message_id in accepted:
            node_of[message.metadata.message_id] = node
        else:
            outcome.dropped[node] = "the SuperLink did not accept the message"
    collector = _Collector(node_of, timeout)
    if getattr(_innermost(grid), "delivers_synchronously", False):
        collector.file(grid.pull_messages(list(node_of)))  # whatever is missing never comes
    elif isinstance(_innermost(grid), InMemoryGrid):
        _collect_in_turn(grid, collector, deadline)
    else:
        _collect_each_on_its_own(grid, collector, deadline)
    replies, dropped = collector.close()
    for node in contents:
        if node in replies:
            outcome.replies[node] = replies[node]
        elif node not in outcome.dropped:
            outcome.dropped[node] = dropped[node]
    return outcome


def _innermost(grid: Grid) -> Grid:
    """The transport under wrappers such as `server.recording.RecordingGrid` (`.inner`)."""
    while isinstance(inner := getattr(grid, "inner", None), Grid):
        grid = inner
    return grid


class _Collector:
    """Files each reply under the node its message went to; thread-safe."""

    def __init__(self, node_of: dict[str, int], timeout: float) -> None:
        self.node_of = node_of
        self.timeout = timeout
        self.pending = set(node_of)
        self.replies: dict[int, Message] = {}
        self.dropped: dict[int, str] = {}
        self.pulling_since: dict[str, float] = {}
        self.closed = False
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)

    def file(self, replies: Iterable[Message]) -> None:
        with self.lock:
            for reply in replies:
                self._file_one(reply)
            self.changed.notify_all()

    def _file_one(self, reply: Message) -> None:
        message_id = reply.metadata.reply_to_message_id
        if self.closed or message_id not in self.pending:
            return  # a reply to a message we did not send (or already filed): never trusted
        node = self.node_of[message_id]
        self.pending.discard(message_id)
        if reply.has_error():
            self.dropped[node] = describe_error(reply.error)
        elif reply.metadata.src_node_id != node:
            self.dropped[node] = f"reply came from node {reply.metadata.src_node_id}, not {node}"
        else:
            self.replies[node] = reply

    def close(self) -> tuple[dict[int, Message], dict[int, str]]:
        """The stage is over: what was filed, and why every other node is a dropout. A reply
        that a left-behind puller files later is ignored."""
        with self.lock:
            self.closed = True
            dropped = dict(self.dropped)
            for message_id in self.pending:
                dropped[self.node_of[message_id]] = (
                    f"reply announced but its data still incomplete after {self.timeout:g} s "
                    "(the firm may have stopped while uploading)"
                    if message_id in self.pulling_since
                    else f"no reply within {self.timeout:g} s"
                )
            return dict(self.replies), dropped


def _collect_in_turn(grid: Grid, collector: _Collector, deadline: float) -> None:
    """In-memory grids (simulation) never block in a pull: one pull for all, each tick."""
    interval = float(getattr(grid, "pull_interval", 0.1))
    while collector.pending and time.monotonic() < deadline:
        collector.file(grid.pull_messages(list(collector.pending)))
        if collector.pending:
            time.sleep(max(0.0, min(interval, deadline - time.monotonic())))
    if collector.pending:  # the sweep: replies that came in at the deadline
        collector.file(grid.pull_messages(list(collector.pending)))


def _collect_each_on_its_own(grid: Grid, collector: _Collector, deadline: float) -> None:
    """One puller thread per message, so a reply whose data never completes blocks only itself.

    Until the deadline each puller pulls every `POLL_INTERVAL`; then each makes one last pull
    (the sweep), and pulls still running get `STAGE_MARGIN` seconds. A puller still stuck after
    that is left behind (a daemon thread; Flower's own retry limit ends it)."""
    sweep = threading.Event()

    def follow(message_id: str) -> None:
        while True:
            with collector.lock:
                if message_id not in collector.pending:
                    return
                last = sweep.is_set()
                collector.pulling_since[message_id] = time.monotonic()
            try:
                replies = list(grid.pull_messages([message_id]))
            except Exception:  # a failed pull (SuperLink busy) is retried until the deadline
                replies = []
            with collector.lock:
                collector.pulling_since.pop(message_id, None)
            collector.file(replies)
            if last:
                with collector.lock:
                    collector.changed.notify_all()
                return
            sweep.wait(POLL_INTERVAL)

    pullers = [
        threading.Thread(target=follow, args=(m,), name=f"pull-{n}", daemon=True)
        for m, n in collector.node_of.items()
    ]
    for puller in pullers:
        puller.start()
    with collector.lock:
        collector.changed.wait_for(
            lambda: not collector.pending, timeout=max(0.0, deadline - time.monotonic())
        )
    sweep.set()
    until = deadline + STAGE_MARGIN
    for puller in pullers:
        puller.join(timeout=max(0.0, until - time.monotonic()))


class TooFewNodes(TimeoutError):
    """Fewer nodes than min-clients stayed connected for the whole wait."""

    def __init__(self, connected: int, minimum: int, waited: float) -> None:
        super().__init__(
            f"only {connected} node(s) connected after {waited:g} s; min-clients requires {minimum}"
        )
        self.connected = connected
        self.minimum = minimum
        self.waited = waited


def wait_for_nodes(grid: Grid, minimum: int, timeout: float) -> list[int]:
    """The connected nodes, once at least `minimum` are there (SuperNodes join over time)."""
    deadline = time.monotonic() + timeout
    while True:
        nodes = sorted(grid.get_node_ids())
        if len(nodes) >= minimum:
            return nodes
        if time.monotonic() > deadline:
            raise TooFewNodes(len(nodes), minimum, timeout)
        time.sleep(0.1 if isinstance(_innermost(grid), InMemoryGrid) else POLL_INTERVAL)


def poll_faster(grid: Grid, interval: float = 0.01) -> None:
    """Flower's in-memory (simulation) Grid checks for replies every 0.1 s; each protocol stage
    waits for that tick, so a 4-stage round would pay it 4 times. Poll every `interval` instead
    (other Grids are left as they are)."""
    if hasattr(grid, "pull_interval"):
        grid.pull_interval = interval
