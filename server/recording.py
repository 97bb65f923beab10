"""A Grid wrapper that writes down every message it carries: size and SHA-256 of the content.

Used where the protocol messages are not ours to record (Flower's own SecAgg+), so that every
real run leaves a transcript in its run directory, in the same JSON fields as
`protocol.Transcript` (round, stage, sender, receiver, message_type, bytes, sha256).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from flwr.app import Message, RecordDict
from flwr.common.serde import recorddict_to_proto
from flwr.proto.node_pb2 import NodeInfo
from flwr.serverapp import Grid
from flwr.supercore.run import Run

SECAGGPLUS_CONFIGS = "secaggplus_configs"  # Flower's record key for its SecAgg+ stage configs


def _stage(message: Message) -> str:
    configs = message.content.config_records.get(SECAGGPLUS_CONFIGS)
    stage = configs.get("stage") if configs is not None else None
    if isinstance(stage, str) and stage:  # Flower's SecAgg+ names its stages by str constants
        return f"secaggplus.{stage}"
    return message.metadata.message_type


class RecordingGrid(Grid):
    def __init__(self, inner: Grid) -> None:
        self.inner = inner
        self.entries: list[dict[str, Any]] = []

    def _record(self, message: Message, stage: str, sender: int, receiver: int) -> None:
        payload = (
            recorddict_to_proto(message.content).SerializeToString()
            if message.has_content()
            else b""
        )
        group = message.metadata.group_id
        self.entries.append(
            {
                "round": int(group) if group.isdigit() else 0,
                "stage": stage,
                "sender": sender,
                "receiver": receiver,
                "message_type": message.metadata.message_type,
                "bytes": len(payload),
                "sha256": hashlib.sha256(payload).hexdigest(),
            }
        )

    def set_run(self, run: Run) -> None:
        self.inner.set_run(run)

    @property
    def run(self) -> Run:
        return self.inner.run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return self.inner.create_message(content, message_type, dst_node_id, group_id, ttl)

    def get_node_ids(self) -> Iterable[int]:
        return self.inner.get_node_ids()

    def get_nodes(self) -> Iterable[NodeInfo]:
        return self.inner.get_nodes()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        messages = list(messages)
        for message in messages:
            self._record(message, _stage(message), 0, message.metadata.dst_node_id)
        return self.inner.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        replies = list(self.inner.pull_messages(message_ids))
        for reply in replies:
            self._record(reply, _stage(reply), reply.metadata.src_node_id, 0)
        return replies

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        messages = list(messages)
        stages = {}
        for message in messages:
            stage = _stage(message)
            self._record(message, stage, 0, message.metadata.dst_node_id)
            stages[message.metadata.dst_node_id] = stage
        replies = list(self.inner.send_and_receive(messages, timeout=timeout))
        for reply in replies:
            node = reply.metadata.src_node_id
            self._record(reply, stages.get(node, _stage(reply)), node, 0)
        return replies
