"""A firm's side of our secure aggregation over Flower messages.

A message carries one protocol request per round: one stage of one round, or, when the server
pipelines (SPEC.md §9), a stage of round r with a key stage of round r+1. `protocol.ClientSessions`
routes each request to its round's state machine.

The firm trains at the masked-input stage (as in Flower's SecAgg+): that request carries the
global weights, the firm trains, quantises its contribution vector (layout in
`clients/participant.py`) and masks it. Before that, it only exchanges keys, so a firm that
drops out early never trains for nothing.

Between messages the sessions are kept in the node's own Context (`context.state`), which never
leaves the node: in the simulation engine a node's messages may be served by different worker
processes, and a SuperNode may run each message in a fresh ClientApp process, so the state has
to be bytes. It is `protocol.SessionsState` as JSON (protocol/state.py lists every secret in
it: the open rounds' private keys and held shares), never a pickle, and a round's part is
dropped once the round is over. The state stays small (a few kB per open round) because a
round's d-long input exists only while it is being masked: the simulation engine ships a node's
Context with every message, and a 400 kB state would cost about a second per stage at 100 nodes.

Malicious mode (protocol/SPEC.md §10): a firm whose node config names an `identity-key` and the
`identity-manifest` it received out of band holds a long-term identity. It then joins
malicious-mode rounds only (`ClientSessions` refuses a semi-honest proposal), and answers the
server's one-off `identify` message with a proof of which manifest entry it is. Both settings
come from the node config (or, in simulation, the ClientApp's defaults), never from the run
config: the server must not choose a firm's trust anchor, nor switch its checks off.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from flwr.app import ConfigRecord, Context, Message, RecordDict, UserConfigValue

from clients import records as R
from clients.participant import LocalResult
from protocol import ClientSessions, IdentityManifest, SecAggClient, parse_message
from protocol.identity import identity_public_key, prove_identity
from protocol.sessions import ConfigPolicy

_STATE_KEY = "sessions"


@dataclass(frozen=True)
class NodeIdentity:
    """A firm's long-term identity (malicious mode): its private key and the manifest it
    trusts."""

    key: Ed25519PrivateKey
    manifest: IdentityManifest


def _node_setting(
    context: Context, defaults: Mapping[str, UserConfigValue] | None, key: str
) -> str:
    for source in (context.node_config, defaults or {}):
        if key in source and source[key] != "":
            return str(source[key])
    return ""


def node_identity(
    context: Context, defaults: Mapping[str, UserConfigValue] | None = None
) -> NodeIdentity | None:
    """The node's identity from its node config (simulation: the ClientApp's `defaults`), or
    None when it holds none. In simulation `identity-key` may be a directory of
    `<partition-id>.pem`: a simulated node without a file there holds no identity."""
    key_setting = _node_setting(context, defaults, R.IDENTITY_KEY)
    manifest_setting = _node_setting(context, defaults, R.IDENTITY_MANIFEST)
    if not key_setting and not manifest_setting:
        return None
    if not key_setting or not manifest_setting:
        given, missing = (
            (R.IDENTITY_MANIFEST, R.IDENTITY_KEY)
            if not key_setting
            else (R.IDENTITY_KEY, R.IDENTITY_MANIFEST)
        )
        raise ValueError(f"node config sets {given!r} but not {missing!r}: an identity needs both")
    key_file = Path(key_setting)
    if key_file.is_dir():
        partition = context.node_config.get(R.PARTITION_ID)
        if partition is None:
            raise ValueError(
                f"{R.IDENTITY_KEY} {key_setting!r} is a directory: give the key file itself "
                "(a directory of <partition-id>.pem is for simulated nodes only)"
            )
        key_file = key_file / f"{partition}.pem"
        if not key_file.is_file():
            return None
    return _read_identity(key_file, Path(manifest_setting))


@functools.cache
def _read_identity(key_file: Path, manifest_file: Path) -> NodeIdentity:
    """Read once per process, not once per message (as the firm's table is): the key file and
    the manifest are the node's own and do not change during a run. Unbounded: a simulation
    engine's worker serves many nodes in turn (the federation benchmark's, 100 key files), and
    a bounded cache smaller than that missed on every message."""
    try:
        key = load_pem_private_key(key_file.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as error:
        raise ValueError(f"{R.IDENTITY_KEY} {str(key_file)!r} does not load: {error}") from error
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(
            f"{R.IDENTITY_KEY} {str(key_file)!r} holds a {type(key).__name__}, expected an "
            "Ed25519 private key (PKCS#8 PEM, e.g. `openssl genpkey -algorithm ed25519`)"
        )
    manifest = _read_manifest(manifest_file)
    if manifest.client_id_of(identity_public_key(key)) is None:
        raise ValueError(
            f"the identity manifest {str(manifest_file)!r} does not list this node's identity "
            f"key {str(key_file)!r}"
        )
    return NodeIdentity(key, manifest)


@functools.cache
def _read_manifest(manifest_file: Path) -> IdentityManifest:
    """One `IdentityManifest` per file and process, shared by every node the process serves,
    so the public keys it parses for signature checks are parsed once (public data only: each
    node still checks every signature itself)."""
    try:
        return IdentityManifest.model_validate_json(manifest_file.read_bytes())
    except (OSError, ValueError) as error:
        raise ValueError(
            f"{R.IDENTITY_MANIFEST} {str(manifest_file)!r} does not load: {error}"
        ) from error


def load_sessions(
    context: Context, identity: NodeIdentity | None = None, policy: ConfigPolicy | None = None
) -> ClientSessions:
    """This node's open rounds (none if it has never taken part), under its identity and its
    `policy` (`clients/policy.py`: the rounds it accepts)."""
    key, manifest = (identity.key, identity.manifest) if identity else (None, None)
    record = context.state.config_records.get(R.CLIENT_STATE_RECORD)
    if record is None or _STATE_KEY not in record:
        return ClientSessions(key, manifest, policy)
    stored = record[_STATE_KEY]
    if not isinstance(stored, bytes):
        raise TypeError(f"node state must hold bytes, got {type(stored).__name__}")
    return ClientSessions.from_bytes(stored, key, manifest, policy)


def _store_sessions(context: Context, sessions: ClientSessions) -> None:
    if not sessions.open_rounds:  # nothing in progress: keep no secret around
        context.state.config_records.pop(R.CLIENT_STATE_RECORD, None)
        return
    context.state.config_records[R.CLIENT_STATE_RECORD] = ConfigRecord(
        {_STATE_KEY: sessions.to_bytes()}
    )


def _is_bytes_list(value: object) -> TypeGuard[list[bytes]]:
    return isinstance(value, list) and all(isinstance(p, bytes) for p in value)


def _secagg_reply(msg: Message, stage: str, payloads: list[bytes]) -> Message:
    """The reply: the protocol messages and nothing else, so no metric leaves the node beside
    the masked vector."""
    content = RecordDict({R.SECAGG_RECORD: ConfigRecord({R.STAGE: stage, R.PAYLOADS: payloads})})
    return Message(content, reply_to=msg)


def answer_stage(
    msg: Message,
    context: Context,
    train: Callable[[], LocalResult],
    policy: ConfigPolicy | None = None,
    defaults: Mapping[str, UserConfigValue] | None = None,
) -> Message:
    """Answer one message's requests; a ProtocolError (a config `policy` refuses, too)
    propagates, and Flower turns it into an error reply (the server then counts this firm as
    dropped from every round in the message). `defaults` stand in for a simulated node's config
    (its identity)."""
    record = msg.content.config_records[R.SECAGG_RECORD]
    payloads = record[R.PAYLOADS]
    if not _is_bytes_list(payloads):
        raise TypeError(f"secagg payloads must be a list of bytes, got {type(payloads).__name__}")
    identity = node_identity(context, defaults)
    if record.get(R.STAGE) == R.IDENTIFY:
        if identity is None:
            raise ValueError(
                f"this node holds no identity: set {R.IDENTITY_KEY!r} and "
                f"{R.IDENTITY_MANIFEST!r} in its node config to join malicious-mode rounds"
            )
        if len(payloads) != 1:
            raise ValueError(f"an identify message carries one challenge, got {len(payloads)}")
        proof = prove_identity(identity.key, identity.manifest, context.node_id, payloads[0])
        return _secagg_reply(msg, R.IDENTIFY, [proof])
    requests = [parse_message(payload) for payload in payloads]

    def provide_input(client: SecAggClient) -> None:
        result = train()
        # A repeatable run rounds repeatably; the masks still come from fresh keys.
        client.provide_input(result.contribution, rounding_seed=result.rounding_seed)

    sessions = load_sessions(context, identity, policy)
    try:
        responses = sessions.handle_batch(requests, provide_input)  # type: ignore[arg-type]
    finally:
        _store_sessions(context, sessions)
    return _secagg_reply(
        msg,
        "+".join(response.stage.value for response in responses),
        [response.to_bytes() for response in responses],
    )
