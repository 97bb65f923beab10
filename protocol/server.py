"""The server state machine: one method per stage, each taking that stage's responses.

`start` invites the clients; `advertise_keys`, `share_keys` and `masked_input` each take the
responses of their stage (client id -> message, or (client id, message) pairs when the
transport may deliver duplicates) and return the next stage's requests; `unmask` returns the
aggregate. In the malicious mode `masked_input` asks for signatures on the survivor set and
`consistency_check` takes them before `unmask`. A client missing from the responses is dropped;
a bad response gets a named error, recorded in `rejections`, and its sender is dropped. Below t
survivors, or when a secret can no longer be rebuilt, the method raises `ProtocolAbort` before
asking for anything more.

Longer than the usual module: one class holds the whole round's state and each stage method
reads what the earlier ones kept, so it stays in one place; the signature statements live in
`identity.py`.

`receive(stage, responses)` hands responses to their stage's method: the only stage -> method
table, so no driver (the in-process runner, the pipeline scheduler) keeps its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from protocol import crypto, shamir
from protocol.config import SecAggConfig
from protocol.errors import (
    DuplicateSender,
    InvalidPublicKey,
    InvalidShare,
    InvalidSignature,
    MalformedMessage,
    MaskedInputMismatch,
    ProtocolAbort,
    ProtocolError,
    RoundMismatch,
    SenderMismatch,
    UnexpectedStage,
    UnknownSender,
    VectorLengthError,
)
from protocol.graph import connected_pieces, graph_seed, neighbour_graph
from protocol.identity import (
    IdentityManifest,
    advertise_statement,
    session_context,
    survivors_statement,
)
from protocol.masking import (
    PublicKeys,
    add_mask,
    masked_input_binding,
    pair_sign,
    pairwise_mask_seed,
)
from protocol.messages import (
    SERVER_ID,
    AdvertiseKeysRequest,
    AdvertiseKeysResponse,
    ConsistencyCheckRequest,
    ConsistencyCheckResponse,
    MaskedInputRequest,
    MaskedInputResponse,
    MaskingKeyShare,
    Message,
    PeerKeys,
    SealedShares,
    ShareCommitments,
    ShareKeysRequest,
    ShareKeysResponse,
    SurvivorSignature,
    UnmaskRequest,
    UnmaskResponse,
    seed_commitment,
    share_commitment,
)
from protocol.quantize import to_signed
from protocol.stages import ClientStatus, DropReason, Stage
from protocol.transcript import DropRecord, ReceivedMessage, ServerView, StageView

ResponseT = TypeVar("ResponseT", bound=Message)
Responses = Mapping[int, ResponseT] | Iterable[tuple[int, ResponseT]]


@dataclass
class AggregateResult:
    """What the server learns at the end of a round."""

    float_sum: npt.NDArray[np.float64]
    """Dequantised sum of the survivors' inputs, shape (d,)."""
    integer_sum: npt.NDArray[np.int64]
    """Exact signed integer sum of the survivors' quantised inputs, shape (d,)."""
    survivors: tuple[int, ...]
    """Clients whose input is in the sum (those that sent a masked input)."""
    view: ServerView
    """The server's account of the round."""


@dataclass
class _StageLog:
    received: list[ReceivedMessage] = field(default_factory=list)
    accepted: list[int] = field(default_factory=list)
    dropped: list[DropRecord] = field(default_factory=list)


class SecAggServer:
    """The server's side of one round, for `dimension`-long vectors."""

    def __init__(
        self,
        config: SecAggConfig,
        dimension: int,
        round_number: int = 0,
        manifest: IdentityManifest | None = None,
    ) -> None:
        if dimension < 1:
            raise ValueError(f"dimension must be >= 1, got {dimension}")
        if not 0 <= round_number < crypto.ROUND_LIMIT:
            raise ValueError(f"round_number must be in [0, 2^64), got {round_number}")
        if config.mode == "malicious" and manifest is None:
            raise ValueError("the malicious mode needs the identity manifest")
        self.config = config
        self.dimension = dimension
        self.round_number = round_number
        self._manifest = manifest
        self.threshold = config.reconstruction_threshold
        self.next_stage: Stage | None = None
        self.statuses: dict[int, ClientStatus] = {}
        self.drops: dict[int, DropRecord] = {}
        self.rejections: list[tuple[int, ProtocolError]] = []
        """(transport client id, error) for every response the server refused."""
        self.masks_expanded = 0
        self.outcome = "running"
        self.abort_reason: str | None = None
        self._active: set[int] = set()
        self._logs: dict[Stage, _StageLog] = {}
        self._keys: dict[int, PublicKeys] = {}
        self._graph: dict[int, frozenset[int]] = {}
        self._commitments: dict[tuple[int, int], ShareCommitments] = {}
        self._seed_commitments: dict[int, bytes] = {}
        self._shared: set[int] = set()
        self._unmask_requests: dict[int, UnmaskRequest] = {}
        self._survivor_set: list[int] = []
        self._key_signatures: dict[int, bytes | None] = {}
        self._total: npt.NDArray[np.uint32] | None = None
        self._revealed_seed_shares: dict[int, int] = {}
        self._revealed_key_shares: dict[int, int] = {}
        self._aggregate_digest: str | None = None

    # -- bookkeeping --------------------------------------------------------------------------

    def _context(self) -> bytes:
        """The session context every malicious-mode signature of this round is bound to."""
        assert self._manifest is not None
        return session_context(self._manifest, self.config, self.dimension, self.round_number)

    def _header(self, client_id: int) -> dict[str, int]:
        return {"round": self.round_number, "sender": SERVER_ID, "receiver": client_id}

    def _drop(self, client_id: int, stage: Stage, reason: DropReason, detail: str = "") -> None:
        record = DropRecord(client_id=client_id, stage=stage, reason=reason, detail=detail)
        self.drops[client_id] = record
        self.statuses[client_id] = ClientStatus.DROPPED
        self._active.discard(client_id)
        self._logs[stage].dropped.append(record)

    def _abort(self, stage: Stage, reason: str) -> ProtocolAbort:
        """Stop the round for good; the caller raises the returned error."""
        error = ProtocolAbort(stage, reason)
        self.outcome, self.abort_reason, self.next_stage = "aborted", str(error), None
        self._total = None
        for client_id in self._active:
            self.statuses[client_id] = ClientStatus.ABORTED
        error.view = self.view()
        return error

    def _require_survivors(self, stage: Stage) -> None:
        if len(self._active) < self.threshold:
            raise self._abort(
                stage, f"{len(self._active)} clients remain, fewer than t = {self.threshold}"
            )
        quorum = self.config.consistency_quorum  # malicious: honest clients refuse to go on
        if self.config.mode == "malicious" and len(self._active) < quorum:
            reason = f"{len(self._active)} clients remain, below the consistency quorum {quorum}"
            raise self._abort(stage, reason)

    def _collect(
        self,
        stage: Stage,
        responses: Responses[ResponseT],
        expected: type[ResponseT],
        validate: Callable[[int, ResponseT], None],
    ) -> dict[int, ResponseT]:
        """Check every response's envelope and content; drop senders of bad or missing ones."""
        if self.next_stage is not stage:
            wanted = self.next_stage.value if self.next_stage else "nothing (round over)"
            raise UnexpectedStage(f"server expects {wanted} responses, not {stage.value}")
        log = self._logs[stage] = _StageLog()
        pairs = responses.items() if isinstance(responses, Mapping) else responses
        accepted: dict[int, ResponseT] = {}
        payloads: dict[int, bytes] = {}
        refused: set[int] = set()
        for client_id, message in pairs:
            is_message = isinstance(message, Message)
            payload = message.to_bytes() if is_message else b""
            received = ReceivedMessage(
                sender=client_id,
                message_type=type(message).__name__,
                bytes=len(payload),
                sha256=message.wire_sha256() if is_message else hashlib.sha256(b"").hexdigest(),
                accepted=False,
            )
            try:
                if client_id in accepted or client_id in refused:
                    if payloads.get(client_id) == payload:
                        log.received.append(received)
                        continue  # an identical retransmission changes nothing
                    accepted.pop(client_id, None)
                    raise DuplicateSender(
                        f"client {client_id} sent two different {stage} responses"
                    )
                if client_id not in self._active:
                    raise UnknownSender(f"client {client_id} is not active in stage {stage}")
                if not isinstance(message, expected):
                    raise UnexpectedStage(
                        f"stage {stage} expects {expected.__name__}, client {client_id} sent "
                        f"{type(message).__name__}"
                    )
                if message.round != self.round_number:
                    raise RoundMismatch(
                        f"round {self.round_number} received a message for round {message.round}"
                    )
                if message.sender != client_id or message.receiver != SERVER_ID:
                    raise SenderMismatch(
                        f"message from transport id {client_id} claims {message.sender} -> "
                        f"{message.receiver}"
                    )
                validate(client_id, message)
            except ProtocolError as error:
                log.received.append(received)
                self.rejections.append((client_id, error))
                if client_id in self._active and client_id not in refused:
                    refused.add(client_id)
                    payloads[client_id] = payload
                    self._drop(client_id, stage, error.drop_reason, str(error))
                continue
            log.received.append(received.model_copy(update={"accepted": True}))
            accepted[client_id] = message
            payloads[client_id] = payload
        for client_id in sorted(self._active - set(accepted)):
            self._drop(client_id, stage, DropReason.NO_RESPONSE)
        log.accepted = sorted(accepted)
        return accepted

    def _advance(self, stage: Stage, status: ClientStatus) -> None:
        for client_id in self._active:
            self.statuses[client_id] = status
        self.next_stage = stage.next(self.config.mode)

    # -- stage 0: invitation ------------------------------------------------------------------

    def start(self, client_ids: Iterable[int]) -> dict[int, AdvertiseKeysRequest]:
        """Invite the clients; ids are small positive ints (they are Shamir x-coordinates)."""
        if self.next_stage is not None or self.statuses:
            raise UnexpectedStage("the round has already started")
        invited = sorted(set(client_ids))
        if any(not 1 <= client_id < 2**32 for client_id in invited):
            raise ValueError("client ids must be in [1, 2^32)")
        if len(invited) > self.config.num_clients:
            raise ValueError(
                f"num_clients is {self.config.num_clients}, cannot invite {len(invited)} clients"
            )
        if len(invited) < self.threshold:
            raise ValueError(f"invite at least t = {self.threshold} clients, got {len(invited)}")
        self._active = set(invited)
        self.statuses = dict.fromkeys(invited, ClientStatus.INVITED)
        self.next_stage = Stage.ADVERTISE_KEYS
        self._logs = {}
        return {
            client_id: AdvertiseKeysRequest(
                **self._header(client_id), config=self.config, dimension=self.dimension
            )
            for client_id in invited
        }

    # -- stage 1 ------------------------------------------------------------------------------

    def advertise_keys(
        self, responses: Responses[AdvertiseKeysResponse]
    ) -> dict[int, ShareKeysRequest]:
        """Check the public keys, build the neighbour graph and send each client its neighbours."""
        seen_keys: set[bytes] = set()

        def validate(client_id: int, message: AdvertiseKeysResponse) -> None:
            keys = (message.encryption_public_key, message.masking_public_key)
            for key in keys:  # canonical first, so the reuse check compares points
                crypto.check_public_key(key)
            if keys[0] == keys[1] or seen_keys & set(keys):
                raise InvalidPublicKey(f"client {client_id} reuses a public key")
            if self._manifest is not None and self.config.mode == "malicious":
                if message.signature is None:
                    raise InvalidSignature(f"client {client_id}'s keys are not signed")
                statement = advertise_statement(self._context(), client_id, *keys)
                self._manifest.verify(client_id, statement, message.signature)
            seen_keys.update(keys)

        stage = Stage.ADVERTISE_KEYS
        accepted = self._collect(stage, responses, AdvertiseKeysResponse, validate)
        self._require_survivors(stage)
        self._keys = {
            client_id: PublicKeys(
                client_id, message.encryption_public_key, message.masking_public_key
            )
            for client_id, message in accepted.items()
        }
        self._key_signatures = {c: message.signature for c, message in accepted.items()}
        participants = sorted(self._keys)
        self._graph = neighbour_graph(
            participants, self.config.degree, graph_seed(self.round_number, participants)
        )
        self._advance(stage, ClientStatus.ADVERTISED_KEYS)
        return {
            client_id: ShareKeysRequest(
                **self._header(client_id),
                participants=participants,
                neighbours=[
                    PeerKeys(
                        client_id=peer,
                        encryption_public_key=self._keys[peer].encryption,
                        masking_public_key=self._keys[peer].masking,
                        signature=self._key_signatures[peer],
                    )
                    for peer in sorted(self._graph[client_id])
                ],
            )
            for client_id in participants
        }

    # -- stage 2 ------------------------------------------------------------------------------

    def share_keys(self, responses: Responses[ShareKeysResponse]) -> dict[int, MaskedInputRequest]:
        """Keep the share commitments and route each sealed share to its holder."""

        def validate(client_id: int, message: ShareKeysResponse) -> None:
            holders = [sealed.holder for sealed in message.shares]
            if sorted(holders) != sorted(self._graph[client_id]) or len(set(holders)) != len(
                holders
            ):
                raise MalformedMessage(
                    f"client {client_id} must seal one share pair for each of its "
                    f"{len(self._graph[client_id])} neighbours"
                )
            if any(sealed.dealer != client_id for sealed in message.shares):
                raise SenderMismatch(f"client {client_id} sent shares in another dealer's name")

        stage = Stage.SHARE_KEYS
        accepted = self._collect(stage, responses, ShareKeysResponse, validate)
        self._prune_isolated(stage)
        self._require_survivors(stage)
        self._shared = set(self._active)
        routed: dict[int, list[SealedShares]] = {client_id: [] for client_id in self._active}
        for dealer in sorted(self._active):
            message = accepted[dealer]
            self._seed_commitments[dealer] = message.self_mask_seed_commitment
            self._commitments[(dealer, dealer)] = message.own_commitments
            for sealed in message.shares:
                self._commitments[(dealer, sealed.holder)] = sealed.commitments
                if sealed.holder in routed:
                    routed[sealed.holder].append(sealed)
        self._advance(stage, ClientStatus.SHARED_KEYS)
        return {
            client_id: MaskedInputRequest(**self._header(client_id), shares=shares)
            for client_id, shares in routed.items()
        }

    def _prune_isolated(self, stage: Stage) -> None:
        """Drop clients with fewer than t live share holders: their secrets could not be rebuilt."""
        changed = True
        while changed:
            changed = False
            for client_id in sorted(self._active):
                holders = len(self._graph[client_id] & self._active) + 1
                if holders < self.threshold:
                    self._drop(
                        client_id,
                        stage,
                        DropReason.TOO_FEW_NEIGHBOURS,
                        f"{holders} live share holders, t = {self.threshold}",
                    )
                    changed = True

    # -- stage 3 ------------------------------------------------------------------------------

    def masked_input(
        self, responses: Responses[MaskedInputResponse]
    ) -> dict[int, UnmaskRequest] | dict[int, ConsistencyCheckRequest]:
        """Sum the masked vectors, check every needed secret can be rebuilt, then ask for shares
        (semi-honest) or for signatures on the survivor set (malicious mode)."""
        expected_bytes = 4 * self.dimension

        def validate(client_id: int, message: MaskedInputResponse) -> None:
            if len(message.masked_vector) != expected_bytes:
                raise VectorLengthError(
                    f"client {client_id} sent {len(message.masked_vector)} bytes, expected "
                    f"{expected_bytes} ({self.dimension} uint32 words)"
                )
            routed = sorted(self._graph[client_id] & self._shared)
            if message.mask_peers != routed:
                missing = sorted(set(routed) - set(message.mask_peers))
                raise MaskedInputMismatch(
                    f"client {client_id} masked with {message.mask_peers}, but the server routed "
                    f"it shares from {routed} (missing {missing}: lost in transit?)"
                )
            binding = masked_input_binding(
                self.round_number, self._keys[client_id], routed, message.masked_vector
            )
            if binding != message.binding:
                raise MaskedInputMismatch(
                    f"client {client_id}'s masked input does not match its binding: altered in "
                    "transit, or from another session of this round"
                )

        stage = Stage.MASKED_INPUT
        accepted = self._collect(stage, responses, MaskedInputResponse, validate)
        self._require_survivors(stage)
        survivors = self._active
        dropped = self._shared - survivors
        for client_id in sorted(survivors):
            holders = len((self._graph[client_id] | {client_id}) & survivors)
            if holders < self.threshold:
                raise self._abort(
                    stage,
                    f"client {client_id} has {holders} surviving share holders, fewer than "
                    f"t = {self.threshold}; its self mask could not be removed",
                )
        for client_id in sorted(dropped):
            holders = len(self._graph[client_id] & survivors)
            if 0 < holders < self.threshold:
                raise self._abort(
                    stage,
                    f"dropped client {client_id} has {holders} surviving share holders, fewer "
                    f"than t = {self.threshold}; its pairwise masks could not be removed",
                )
        self._require_connected(stage, survivors)
        total = np.zeros(self.dimension, dtype=np.uint32)
        for message in accepted.values():
            np.add(total, message.vector(), out=total)
        self._total = total
        self._survivor_set = sorted(survivors)
        self._advance(stage, ClientStatus.SENT_MASKED_INPUT)
        if self.config.mode == "malicious":
            return self._consistency_requests(stage)
        self._unmask_requests = self._build_unmask_requests(survivors, [])
        return dict(self._unmask_requests)

    def _build_unmask_requests(
        self, recipients: Iterable[int], signatures: list[SurvivorSignature]
    ) -> dict[int, UnmaskRequest]:
        """Each recipient's partition of the clients whose shares it holds: survivors (reveal
        the self-mask share) and dropped after sharing keys (reveal the masking-key share)."""
        survivors = set(self._survivor_set)
        dropped = self._shared - survivors
        return {
            client_id: UnmaskRequest(
                **self._header(client_id),
                survivors=sorted((self._graph[client_id] | {client_id}) & survivors),
                dropped=sorted(self._graph[client_id] & dropped),
                consistency_signatures=signatures,
            )
            for client_id in sorted(recipients)
        }

    def _require_connected(self, stage: Stage, survivors: set[int]) -> None:
        """Abort unless the survivors form one connected piece of the neighbour graph.

        Pairwise masks cancel inside every piece, so with two pieces the shares the unmask
        stage reveals would give the server each piece's sum, not only the total (SPEC.md §5
        proves connectivity is exactly what hides everything but the total). Checked before
        any unmask request goes out. The complete graph is connected whatever survives.
        """
        if self.config.degree >= len(self._graph) - 1:
            return
        pieces = connected_pieces(self._graph, survivors)
        if len(pieces) > 1:
            sizes = ", ".join(str(len(piece)) for piece in pieces)
            raise self._abort(
                stage,
                f"the survivors' neighbour graph is not connected: {len(pieces)} pieces of "
                f"{sizes} clients, whose sums the server could read one by one",
            )

    # -- malicious mode: consistency check ------------------------------------------------------

    def _consistency_requests(self, stage: Stage) -> dict[int, ConsistencyCheckRequest]:
        quorum = self.config.consistency_quorum
        if len(self._survivor_set) < quorum:
            raise self._abort(
                stage,
                f"{len(self._survivor_set)} survivors cannot reach the consistency quorum of "
                f"{quorum} signatures",
            )
        return {
            client_id: ConsistencyCheckRequest(
                **self._header(client_id), survivors=self._survivor_set
            )
            for client_id in self._survivor_set
        }

    def consistency_check(
        self, responses: Responses[ConsistencyCheckResponse]
    ) -> dict[int, UnmaskRequest]:
        """Malicious mode: keep the survivors' signatures on the survivor set; with a quorum of
        them, ask the signers for their shares, relaying every signature (SPEC.md §10)."""
        if self.next_stage is not Stage.CONSISTENCY_CHECK or self._manifest is None:
            wanted = self.next_stage.value if self.next_stage else "nothing (round over)"
            raise UnexpectedStage(f"server expects {wanted} responses, not consistency_check")
        statement = survivors_statement(self._context(), sorted(self._keys), self._survivor_set)

        def validate(client_id: int, message: ConsistencyCheckResponse) -> None:
            assert self._manifest is not None
            self._manifest.verify(client_id, statement, message.signature)

        stage = Stage.CONSISTENCY_CHECK
        accepted = self._collect(stage, responses, ConsistencyCheckResponse, validate)
        quorum = self.config.consistency_quorum
        if len(accepted) < quorum:
            raise self._abort(
                stage,
                f"{len(accepted)} survivors signed the survivor set, fewer than the quorum of "
                f"{quorum}; no share is asked for",
            )
        signatures = [
            SurvivorSignature(signer=client_id, signature=accepted[client_id].signature)
            for client_id in sorted(accepted)
        ]
        self._unmask_requests = self._build_unmask_requests(accepted, signatures)
        self._advance(stage, ClientStatus.SIGNED_SURVIVORS)
        return dict(self._unmask_requests)

    # -- stage 4 ------------------------------------------------------------------------------

    def unmask(self, responses: Responses[UnmaskResponse]) -> AggregateResult:
        """Check every revealed share against its commitment, rebuild the secrets, remove masks."""
        seed_shares: dict[int, dict[int, int]] = {}
        key_shares: dict[int, dict[int, int]] = {}

        def validate(client_id: int, message: UnmaskResponse) -> None:
            request = self._unmask_requests[client_id]
            wanted = {owner: "self_mask" for owner in request.survivors}
            wanted |= {owner: "masking_key" for owner in request.dropped}
            got = {share.owner: share.kind for share in message.shares}
            if got != wanted or len(got) != len(message.shares):
                raise MalformedMessage(
                    f"client {client_id} must reveal exactly one share of the kind asked for "
                    "each listed peer"
                )
            decoded: list[tuple[int, str, int]] = []
            for share in message.shares:
                committed = self._commitments[(share.owner, client_id)]
                expected = (
                    committed.masking_key
                    if isinstance(share, MaskingKeyShare)
                    else committed.self_mask
                )
                actual = share_commitment(
                    self.round_number, share.kind, share.owner, client_id, share.value
                )
                if actual != expected:
                    raise InvalidShare(
                        f"client {client_id}'s {share.kind} share of {share.owner} does not "
                        "match the dealer's commitment"
                    )
                try:
                    decoded.append((share.owner, share.kind, shamir.decode_share(share.value)))
                except ValueError as error:
                    raise InvalidShare(
                        f"client {client_id}'s share of {share.owner}: {error}"
                    ) from error
            for owner, kind, value in decoded:
                target = key_shares if kind == "masking_key" else seed_shares
                target.setdefault(owner, {})[client_id] = value

        stage = Stage.UNMASK
        self._collect(stage, responses, UnmaskResponse, validate)
        self._revealed_seed_shares = {o: len(s) for o, s in sorted(seed_shares.items())}
        self._revealed_key_shares = {o: len(s) for o, s in sorted(key_shares.items())}
        assert self._total is not None
        survivors = set(self._survivor_set)
        dropped = self._shared - survivors
        total = self._total
        for owner in sorted(survivors):
            seed = self._rebuild(stage, owner, seed_shares.get(owner, {}), "self-mask seed")
            if seed_commitment(self.round_number, owner, seed) != self._seed_commitments[owner]:
                raise self._abort(
                    stage, f"client {owner}'s rebuilt self-mask seed does not match its commitment"
                )
            add_mask(total, seed, -1)
            self.masks_expanded += 1
        for owner in sorted(dropped):
            neighbours = sorted(self._graph[owner] & survivors)
            if not neighbours:
                continue
            private_key = crypto.private_key_from_bytes(
                self._rebuild(stage, owner, key_shares.get(owner, {}), "masking key")
            )
            if crypto.public_key(private_key) != self._keys[owner].masking:
                raise self._abort(
                    stage, f"client {owner}'s rebuilt masking key does not match its public key"
                )
            for peer in neighbours:
                seed = pairwise_mask_seed(
                    self.round_number, private_key, self._keys[owner], self._keys[peer]
                )
                add_mask(total, seed, -pair_sign(peer, owner))
            self.masks_expanded += len(neighbours)
        integer_sum = to_signed(total, self.config)
        self._aggregate_digest = hashlib.sha256(integer_sum.tobytes()).hexdigest()
        self.outcome, self.next_stage, self._total = "completed", None, None
        for client_id in survivors:
            if self.statuses.get(client_id) is not ClientStatus.DROPPED:
                self.statuses[client_id] = ClientStatus.UNMASKED
        return AggregateResult(
            float_sum=integer_sum / self.config.scale,
            integer_sum=integer_sum,
            survivors=tuple(sorted(survivors)),
            view=self.view(),
        )

    def _rebuild(self, stage: Stage, owner: int, shares: dict[int, int], what: str) -> bytes:
        if len(shares) < self.threshold:
            raise self._abort(
                stage,
                f"only {len(shares)} shares of client {owner}'s {what} arrived, fewer than "
                f"t = {self.threshold}",
            )
        try:
            return shamir.combine(shares, self.threshold)
        except ValueError as error:
            raise self._abort(stage, f"client {owner}'s {what}: {error}") from error

    # -- one entry point for transports -------------------------------------------------------

    def receive(
        self, stage: Stage, responses: Responses[Any]
    ) -> Mapping[int, Message] | AggregateResult:
        """`stage`'s responses to that stage's method: the next stage's requests, or the sum.

        The one stage -> method table. A response of another stage's kind is refused by the
        method like any bad response; responses for a stage other than the one due next raise
        `UnexpectedStage`.
        """
        match stage:
            case Stage.ADVERTISE_KEYS:
                return self.advertise_keys(responses)
            case Stage.SHARE_KEYS:
                return self.share_keys(responses)
            case Stage.MASKED_INPUT:
                return self.masked_input(responses)
            case Stage.CONSISTENCY_CHECK:
                return self.consistency_check(responses)
            case Stage.UNMASK:
                return self.unmask(responses)

    # -- the server's view --------------------------------------------------------------------

    def view(self) -> ServerView:
        """Everything this server has seen so far, as data."""
        return ServerView(
            round=self.round_number,
            config=self.config,
            dimension=self.dimension,
            invited=sorted(self.statuses),
            stages=[
                StageView(
                    stage=stage,
                    received=log.received,
                    accepted=log.accepted,
                    dropped=log.dropped,
                )
                for stage, log in self._logs.items()
            ],
            outcome=self.outcome,
            abort_reason=self.abort_reason,
            revealed_self_mask_shares=self._revealed_seed_shares,
            revealed_masking_key_shares=self._revealed_key_shares,
            aggregate_sha256=self._aggregate_digest,
        )
