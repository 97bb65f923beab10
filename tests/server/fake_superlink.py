"""A Grid that answers as a SuperLink does when firms fail: for tests only, never in production.

Real ClientApps answer (through `InProcessGrid`), but each reply reaches the server as it would
through Flower 1.42's `HttpGrid`:
- a reply becomes visible `delay` seconds after the push (firms take time);
- a firm in `stalled` announced its reply but died uploading its data: a pull that includes it
  blocks for `stall` seconds (Flower retries the missing data), then returns the error message
  Flower makes, from node 1 (the SuperLink) with `reply_to_message_id` set; the replies pulled
  in the same call wait behind it, as in `HttpGrid.pull_messages`;
- a firm in `unavailable` stops heartbeating: after `lapse` seconds the SuperLink answers for it
  with a "node unavailable" error, again from node 1.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from flwr.app import Error, Message, Metadata
from flwr.app.message import make_message
from flwr.common.constant import SUPERLINK_NODE_ID, ErrorCode
from flwr.proto.node_pb2 import NodeInfo  # type: ignore[attr-defined]
from flwr.serverapp import Grid
from flwr.supercore.run import Run

from server.inprocess import InProcessGrid


def superlink_error(request: Message, code: int, reason: str) -> Message:
    """An error reply as the SuperLink writes it: sender node 1, the request's id to match."""
    return make_message(
        metadata=Metadata(
            run_id=request.metadata.run_id,
            message_id="",
            src_node_id=SUPERLINK_NODE_ID,
            dst_node_id=SUPERLINK_NODE_ID,
            reply_to_message_id=request.metadata.message_id,
            group_id=request.metadata.group_id,
            ttl=0,
            message_type=request.metadata.message_type,
            created_at=time.time(),
        ),
        error=Error(code=code, reason=reason),
    )


class FailingSuperLink(Grid):
    def __init__(
        self,
        firms: InProcessGrid,
        delay: float = 0.0,
        stalled: Iterable[int] = (),
        stall: float = 30.0,
        unavailable: Iterable[int] = (),
        lapse: float = 0.3,
        late: dict[int, float] | None = None,
    ) -> None:
        self.firms = firms  # not `inner`: this grid must not look synchronous to `exchange`
        self.delay, self.stall, self.lapse = delay, stall, lapse
        self.stalled, self.unavailable = set(stalled), set(unavailable)
        self.late = dict(late or {})
        """Node -> seconds after the push at which its reply appears (overrides `delay`)."""
        self.requests: dict[str, tuple[Message, float]] = {}
        self.pushed_at = 0.0
        """When the last push returned (time.monotonic): a stage's deadline counts from there."""

    def set_run(self, run: Run) -> None:
        self.firms.set_run(run)

    @property
    def run(self) -> Run:
        return self.firms.run

    def create_message(self, *args: object, **kwargs: object) -> Message:
        raise NotImplementedError

    def get_node_ids(self) -> Iterable[int]:
        return self.firms.get_node_ids()

    def get_nodes(self) -> Iterable[NodeInfo]:
        return self.firms.get_nodes()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        messages = list(messages)
        ids = list(self.firms.push_messages(messages))
        pushed = self.pushed_at = time.monotonic()
        for message in messages:
            self.requests[message.metadata.message_id] = (message, pushed)
        return ids

    def _visible(self, message_id: str) -> Message | None:
        request, pushed = self.requests[message_id]
        node = request.metadata.dst_node_id
        waited = time.monotonic() - pushed
        if node in self.unavailable:
            if waited < self.lapse:
                return None
            return superlink_error(request, ErrorCode.NODE_UNAVAILABLE, "no heartbeat")
        if waited < self.late.get(node, self.delay):
            return None
        replies = list(self.firms.pull_messages([message_id]))
        return replies[0] if replies else None

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        announced = [r for i in message_ids if (r := self._visible(i)) is not None]
        inflated = []
        for reply in announced:  # one after the other, as HttpGrid inflates them
            node = self.requests[reply.metadata.reply_to_message_id][0].metadata.dst_node_id
            if node in self.stalled:
                time.sleep(self.stall)
                reply = superlink_error(
                    self.requests[reply.metadata.reply_to_message_id][0],
                    ErrorCode.MESSAGE_UNAVAILABLE,
                    "Reply message objects are unavailable.",
                )
            inflated.append(reply)
        return inflated

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        """Flower's pull loop would block behind a stalled reply: `exchange` must not use it."""
        raise AssertionError("send_and_receive called: exchange must push and pull on its own")
