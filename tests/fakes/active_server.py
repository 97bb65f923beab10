"""An in-process Flower grid whose server rewrites its own requests: never in production.

`ActiveServerGrid` delivers the ServerApp's messages to real ClientApps, as `InProcessGrid`
does, but first lets an attack rewrite every protocol request in a `train.secagg` message, and
shows the attack every protocol response that comes back. It also hands the attack the stored
protocol state of the nodes it corrupts, just before each message reaches them (a colluding
firm gives the server whatever it holds). With tests/fakes/attacks.py it plays an active server
against the real firms, end to end over Flower messages.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping

from flwr.app import ConfigRecord, Message, UserConfigValue
from flwr.clientapp import ClientApp

from clients import records as R
from clients.secagg import load_sessions, node_identity
from protocol import SessionsState, parse_message
from protocol.messages import Message as ProtocolMessage
from server.inprocess import InProcessGrid

Rewrite = Callable[[int, ProtocolMessage], ProtocolMessage]
"""(node, request) -> the request the node receives."""
Observe = Callable[[int, ProtocolMessage], None]
"""(node, response): called for every protocol response a node sends."""


class ActiveServerGrid(InProcessGrid):
    def __init__(
        self,
        client_app: ClientApp,
        node_configs: Iterable[Mapping[str, UserConfigValue]],
        rewrite: Rewrite,
        observe: Observe,
        corrupt: Iterable[int] = (),
        defaults: Mapping[str, UserConfigValue] | None = None,
    ) -> None:
        super().__init__(client_app, node_configs)
        self.rewrite, self.observe = rewrite, observe
        self.corrupt = set(corrupt)
        self.defaults = dict(defaults or {})
        self.loot: dict[int, SessionsState] = {}
        """Corrupt node -> its protocol state, as it was before its latest message."""

    def _deliver(self, message: Message) -> Message | None:
        node = message.metadata.dst_node_id
        record = message.content.config_records.get(R.SECAGG_RECORD)
        if record is not None and record[R.STAGE] != R.IDENTIFY:
            message = copy.deepcopy(message)
            payloads = [
                self.rewrite(node, parse_message(payload)).to_bytes()
                for payload in record[R.PAYLOADS]  # type: ignore[union-attr]
            ]
            message.content.config_records[R.SECAGG_RECORD] = ConfigRecord(
                {R.STAGE: record[R.STAGE], R.PAYLOADS: payloads}
            )
        if node in self.corrupt:
            context = self.contexts[node]
            identity = node_identity(context, self.defaults)
            self.loot[node] = load_sessions(context, identity).to_state()
        reply = super()._deliver(message)
        if reply is not None and not reply.has_error() and record is not None:
            answers = reply.content.config_records[R.SECAGG_RECORD]
            if answers[R.STAGE] != R.IDENTIFY:
                for payload in answers[R.PAYLOADS]:  # type: ignore[union-attr]
                    self.observe(node, parse_message(payload))
        return reply
