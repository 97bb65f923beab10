"""A Grid that runs ClientApps in this process: no Ray, no SuperLink, same Message API.

The ServerApp code cannot tell it from the simulation engine: messages get ids, the ClientApp
is called with a per-node Context that persists between messages, and an exception in a
ClientApp comes back as an error reply, as Flower does. It makes protocol-level tests (a node
failing at one stage, a tampered reply) fast and deterministic. `intercept` sees every reply
before the server does and may alter it or drop it (return None) to play a faulty network.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from uuid import uuid4

from flwr.app import Context, Error, Message, RecordDict, UserConfigValue
from flwr.clientapp import ClientApp
from flwr.proto.node_pb2 import NodeInfo
from flwr.serverapp import Grid
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

Intercept = Callable[[int, Message, Message], Message | None]
"""(node id, request, reply) -> the reply the server receives, or None for silence."""

CLIENT_APP_RAISED = 1  # Flower's ErrorCode.CLIENT_APP_RAISED_EXCEPTION


class InProcessGrid(Grid):
    delivers_synchronously = True
    """Every reply exists once `push_messages` returns: `server.messaging.exchange` pulls once."""

    def __init__(
        self,
        client_app: ClientApp,
        node_configs: Iterable[Mapping[str, UserConfigValue]],
        run_config: Mapping[str, UserConfigValue] | None = None,
        intercept: Intercept | None = None,
    ) -> None:
        self.client_app = client_app
        self.intercept = intercept
        self._run = Run.create_empty(run_id=1)
        # What the simulation engine sets for its ServerApp: Flower's Message needs it.
        TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, 0
        self.contexts: dict[int, Context] = {
            node_id: Context(
                run_id=1,
                node_id=node_id,
                node_config=dict(config),
                state=RecordDict(),
                run_config=dict(run_config or {}),
            )
            for node_id, config in enumerate(node_configs, start=101)
        }
        self._replies: dict[str, Message] = {}

    def set_run(self, run: Run) -> None:
        self._run = run

    @property
    def run(self) -> Run:
        return self._run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        return list(self.contexts)

    def get_nodes(self) -> Iterable[NodeInfo]:
        return [NodeInfo(node_id=n) for n in self.contexts]

    def _deliver(self, message: Message) -> Message | None:
        node = message.metadata.dst_node_id
        if node not in self.contexts:
            raise ValueError(f"no node {node}; nodes are {sorted(self.contexts)}")
        delivered = copy.deepcopy(message)  # as if serialised: a client cannot touch ours
        try:
            reply = self.client_app(delivered, self.contexts[node])
        except Exception as error:  # a failing ClientApp is an error reply, as in Flower
            reply = Message(
                Error(code=CLIENT_APP_RAISED, reason=f"{type(error).__name__}: {error}"),
                reply_to=delivered,
            )
        return reply if self.intercept is None else self.intercept(node, message, reply)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for message in messages:
            message.metadata.__dict__["_message_id"] = str(uuid4())
            reply = self._deliver(message)
            if reply is not None:
                self._replies[message.metadata.message_id] = reply
            ids.append(message.metadata.message_id)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return [self._replies.pop(i) for i in message_ids if i in self._replies]

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        del timeout  # delivery is synchronous: whatever is missing now never comes
        return self.pull_messages(self.push_messages(messages))
