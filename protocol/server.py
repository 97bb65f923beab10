"""The server state machine: one method per stage, each taking that stage's responses.

`start` invites the clients; `advertise_keys`, `share_keys` and `masked_input` each take the
responses of their stage (client id -> message, or (client id, message) pairs when the
transport may deliver duplicates) and return the next stage's requests; `unmask` returns the
aggregate. In the malicious mode `masked_input` asks for signatures on the survivor set and
`consistency_check` takes them before `unmask`. A client missing from the responses is dropped;
a bad response gets a named error, recorded in `rejections`, and its sender is dropped. Below t
survivors, or when a secret can no longer be rebuilt, the method raises `ProtocolAbort` before
asking for anything more.

Each stage method reads top to bottom as the protocol's rule for that stage. What needs none of
the round's state lives beside it: the checks on each response and the aborts before any share
is asked for in `server_checks.py`, how every response is taken in and logged (the raw material
of the server's view) in `intake.py`, the unmasking arithmetic in `reconstruct.py`, the
signature statements in `identity.py`. The module stays longer than the usual ~450 lines
because what is left is one state machine: five stage methods, each reading what the earlier
ones kept, in the order SPEC.md describes them.

`receive(stage, responses)` hands responses to their stage's method: the only stage -> method
table, so no driver (the in-process runner, the pipeline scheduler) keeps its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from protocol import crypto
from protocol.config import SecAggConfig
from protocol.errors import (
    ProtocolAbort,
    ProtocolError,
    UnexpectedStage,
)
from protocol.graph import graph_seed, neighbour_graph
from protocol.identity import IdentityManifest, session_context, survivors_statement
from protocol.intake import Responses, ResponseT, StageLog, take_in
from protocol.masking import PublicKeys, add_mask
from protocol.messages import (
    SERVER_ID,
    AdvertiseKeysRequest,
    AdvertiseKeysResponse,
    ConsistencyCheckRequest,
    ConsistencyCheckResponse,
    MaskedInputRequest,
    MaskedInputResponse,
    Message,
    PeerKeys,
    SealedShares,
    ShareCommitments,
    ShareKeysRequest,
    ShareKeysResponse,
    SurvivorSignature,
    UnmaskRequest,
    UnmaskResponse,
)
from protocol.quantize import to_signed
from protocol.reconstruct import rebuild_self_mask_seed, remove_pairwise_masks
from protocol.server_checks import (
    check_advertised_keys,
    check_connected,
    check_invitation,
    check_masked_input,
    check_recoverable,
    check_revealed_shares,
    check_sealed_shares,
    isolated_clients,
)
from protocol.stages import ClientStatus, DropReason, Stage
from protocol.transcript import DropRecord, ServerView


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
        self._logs: dict[Stage, StageLog] = {}
        self._keys: dict[int, PublicKeys] = {}
        self._graph: dict[int, frozenset[int]] = {}
        self._commitments: dict[tuple[int, int], ShareCommitments] = {}
        self._seed_commitments: dict[int, bytes] = {}
        self._shared: set[int] = set()
        self._unmask_requests: dict[int, UnmaskRequest] = {}
        self._survivor_set: list[int] = []
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
        log = self._logs[stage] = StageLog()
        accepted = take_in(
            stage,
            responses,
            expected,
            validate,
            active=self._active,
            round_number=self.round_number,
            log=log,
            rejections=self.rejections,
            drop=lambda client_id, error: self._drop(
                client_id, stage, error.drop_reason, str(error)
            ),
        )
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
        check_invitation(invited, self.config.num_clients, self.threshold)
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
        malicious = self._manifest is not None and self.config.mode == "malicious"
        manifest, context = (self._manifest, self._context()) if malicious else (None, None)

        def validate(client_id: int, message: AdvertiseKeysResponse) -> None:
            check_advertised_keys(client_id, message, seen_keys, manifest, context)

        stage = Stage.ADVERTISE_KEYS
        accepted = self._collect(stage, responses, AdvertiseKeysResponse, validate)
        self._require_survivors(stage)
        self._keys = {
            client_id: PublicKeys(
                client_id, message.encryption_public_key, message.masking_public_key
            )
            for client_id, message in accepted.items()
        }
        relayed = {  # each client's keys as it sent them, signature included
            client_id: PeerKeys(
                client_id=client_id,
                encryption_public_key=message.encryption_public_key,
                masking_public_key=message.masking_public_key,
                signature=message.signature,
            )
            for client_id, message in accepted.items()
        }
        participants = sorted(self._keys)
        self._graph = neighbour_graph(
            participants, self.config.degree, graph_seed(self.round_number, participants)
        )
        self._advance(stage, ClientStatus.ADVERTISED_KEYS)
        return {
            client_id: ShareKeysRequest(
                **self._header(client_id),
                participants=participants,
                neighbours=[relayed[peer] for peer in sorted(self._graph[client_id])],
            )
            for client_id in participants
        }

    # -- stage 2 ------------------------------------------------------------------------------

    def share_keys(self, responses: Responses[ShareKeysResponse]) -> dict[int, MaskedInputRequest]:
        """Keep the share commitments and route each sealed share to its holder."""

        def validate(client_id: int, message: ShareKeysResponse) -> None:
            check_sealed_shares(client_id, message, self._graph[client_id])

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
        for client_id, holders in isolated_clients(self._graph, self._active, self.threshold):
            detail = f"{holders} live share holders, t = {self.threshold}"
            self._drop(client_id, stage, DropReason.TOO_FEW_NEIGHBOURS, detail)

    # -- stage 3 ------------------------------------------------------------------------------

    def masked_input(
        self, responses: Responses[MaskedInputResponse]
    ) -> dict[int, UnmaskRequest] | dict[int, ConsistencyCheckRequest]:
        """Sum the masked vectors, check every needed secret can be rebuilt, then ask for shares
        (semi-honest) or for signatures on the survivor set (malicious mode)."""

        def validate(client_id: int, message: MaskedInputResponse) -> None:
            routed = sorted(self._graph[client_id] & self._shared)
            keys = self._keys[client_id]
            check_masked_input(client_id, message, self.dimension, routed, keys, self.round_number)

        stage = Stage.MASKED_INPUT
        accepted = self._collect(stage, responses, MaskedInputResponse, validate)
        self._require_survivors(stage)
        survivors = self._active
        try:  # before any share is asked for, so an abort here reveals nothing
            check_recoverable(self._graph, survivors, self._shared - survivors, self.threshold)
            check_connected(self._graph, survivors, self.config.degree)
        except ProtocolAbort as error:
            raise self._abort(stage, error.reason) from None
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
            for owner, kind, value in check_revealed_shares(
                client_id, message, request, self._commitments, self.round_number
            ):
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
        try:
            for owner in sorted(survivors):
                seed = rebuild_self_mask_seed(
                    self.round_number,
                    owner,
                    seed_shares.get(owner, {}),
                    self.threshold,
                    self._seed_commitments[owner],
                )
                add_mask(total, seed, -1)
                self.masks_expanded += 1
            for owner in sorted(dropped):
                neighbours = sorted(self._graph[owner] & survivors)
                if not neighbours:
                    continue
                remove_pairwise_masks(
                    total,
                    self.round_number,
                    self._keys[owner],
                    key_shares.get(owner, {}),
                    self.threshold,
                    [self._keys[peer] for peer in neighbours],
                )
                self.masks_expanded += len(neighbours)
        except ProtocolAbort as error:
            raise self._abort(stage, error.reason) from error
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
            stages=[log.as_view(stage) for stage, log in self._logs.items()],
            outcome=self.outcome,
            abort_reason=self.abort_reason,
            revealed_self_mask_shares=self._revealed_seed_shares,
            revealed_masking_key_shares=self._revealed_key_shares,
            aggregate_sha256=self._aggregate_digest,
        )
