"""The client state machine: one method per stage, each taking the server's request.

Every method first checks the envelope (type, expected stage, round, addressee) and raises
without changing state if it is wrong, so a stray or replayed message cannot derail an honest
client. A fault found while processing a well-addressed request (a tampered share, a request
to reveal too much) aborts the client: it forgets its secrets and answers nothing more.
Secrets live only as long as their stage needs them (fcp `secagg` round states).

Each stage method reads top to bottom as the protocol's rule for that stage; the work it
delegates lives beside it: the checks on a request in `client_checks.py` and `consistency.py`,
the key material and what is done with it (dealing, opening, masking, revealing shares) in
`keyring.py`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import crypto
from protocol.client_checks import (
    check_envelope,
    check_fresh_keys,
    check_neighbour_offer,
    check_participants,
    check_signed_keys,
    check_unmask_partition,
)
from protocol.config import SecAggConfig
from protocol.consistency import check_certified_request, check_survivor_set
from protocol.errors import (
    ConfigMismatch,
    MissingInput,
    ProtocolAbort,
    ProtocolError,
    UnexpectedStage,
    VectorLengthError,
)
from protocol.graph import graph_seed, neighbours_of
from protocol.identity import (
    IdentityManifest,
    advertise_statement,
    identity_public_key,
    session_context,
    sign,
    survivors_statement,
)
from protocol.keyring import Keyring
from protocol.masking import PublicKeys, masked_input_binding
from protocol.messages import (
    SERVER_ID,
    AdvertiseKeysRequest,
    AdvertiseKeysResponse,
    AnyRequest,
    AnyResponse,
    ConsistencyCheckRequest,
    ConsistencyCheckResponse,
    MaskedInputRequest,
    MaskedInputResponse,
    Message,
    ShareKeysRequest,
    ShareKeysResponse,
    UnmaskRequest,
    UnmaskResponse,
    seed_commitment,
)
from protocol.quantize import check_input, quantize
from protocol.stages import ClientStatus, Stage
from protocol.state import ClientState

_INPUT_STAGES = (Stage.ADVERTISE_KEYS, Stage.SHARE_KEYS, Stage.MASKED_INPUT)
"""Stages before which the client's input may still be given or replaced."""


class SecAggClient:
    """One client's side of one round.

    `vector` is the float64 input (update, weight and metric sums in one vector, pre-scaled to
    fit `config.clip`). `rounding_seed` seeds stochastic rounding only; keys and masks always
    come from the OS generator. `round_number`, when given, is checked on the first request;
    otherwise the client adopts the round of the first request it accepts. In the malicious
    mode (`config.mode`) the client needs its long-term `identity` key and the federation's
    `manifest`, which must list that key under `client_id`.
    """

    def __init__(
        self,
        client_id: int,
        config: SecAggConfig,
        vector: npt.ArrayLike | None = None,
        *,
        dimension: int | None = None,
        rounding_seed: int | None = None,
        round_number: int | None = None,
        identity: Ed25519PrivateKey | None = None,
        manifest: IdentityManifest | None = None,
    ) -> None:
        if not 1 <= client_id < 2**32:
            raise ValueError(f"client_id must be in [1, 2^32), got {client_id}")
        if config.mode == "malicious":
            if identity is None or manifest is None:
                raise ValueError("the malicious mode needs the client's identity and the manifest")
            if manifest.keys.get(client_id) != identity_public_key(identity):
                raise ValueError(f"the manifest lists another identity key for {client_id}")
        self._identity = identity
        self._manifest = manifest
        if round_number is not None and not 0 <= round_number < crypto.ROUND_LIMIT:
            raise ValueError(f"round_number must be in [0, 2^64), got {round_number}")
        if vector is None and dimension is None:
            raise ValueError("give the input vector, or its dimension and the input later")
        self.client_id = client_id
        self.config = config
        self.round_number = round_number
        self._rounding = np.random.default_rng(rounding_seed)
        self.quantized_input: npt.NDArray[np.uint32] | None = None
        """The client's own encoded input (its data, kept for local checks and simulations)."""
        self._dimension = int(dimension) if dimension is not None else 0
        if vector is not None:
            self._dimension = int(check_input(vector, dimension).shape[0])
            self.provide_input(vector)
        self.next_stage: Stage | None = Stage.ADVERTISE_KEYS
        self.status = ClientStatus.INVITED
        self.masks_expanded = 0
        # Keys and shares of the round, each deleted once its last stage is done.
        self._keyring = Keyring()
        # Malicious mode: U1 as shown, and the one survivor set this client signs.
        self._participants: list[int] | None = None
        self._survivor_set: list[int] | None = None

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def malicious(self) -> bool:
        return self.config.mode == "malicious"

    def _view_digest(self) -> bytes:
        """Malicious mode: the digest of U1 as this client saw it, bound into every sealed share
        so dealer and holder provably saw the same participants; empty otherwise."""
        if self._participants is None or self.round_number is None:
            return b""
        return graph_seed(self.round_number, self._participants)

    def _session_context(self) -> bytes:
        assert self._manifest is not None and self.round_number is not None
        return session_context(self._manifest, self.config, self._dimension, self.round_number)

    def _survivors_statement(self) -> bytes:
        """Malicious mode: what this client signs at consistency_check (U1 and U3)."""
        assert self._participants is not None and self._survivor_set is not None
        return survivors_statement(self._session_context(), self._participants, self._survivor_set)

    def provide_input(self, vector: npt.ArrayLike, rounding_seed: int | None = None) -> None:
        """Set (or replace) the input, any time before the masked-input stage.

        A firm may join the key stages first and train only once the masked-input request
        shows the round going ahead (as Flower's SecAgg+ does); the input is clipped,
        stochastically rounded and encoded here. `rounding_seed` re-seeds the rounding only
        (a repeatable experiment); the masks never depend on it.
        """
        if getattr(self, "next_stage", Stage.ADVERTISE_KEYS) not in _INPUT_STAGES:
            raise UnexpectedStage(
                f"client {self.client_id} has sent its masked input; its input can no longer change"
            )
        if rounding_seed is not None:
            self._rounding = np.random.default_rng(rounding_seed)
        self.quantized_input = quantize(vector, self.config, self._rounding, self._dimension)

    def release_input(self) -> None:
        """Forget the encoded input once it is masked and sent: a node that stores its state
        between stages then carries keys and shares only, not a d-long vector."""
        if self.next_stage in _INPUT_STAGES:
            raise UnexpectedStage(f"client {self.client_id} has not sent its masked input yet")
        self.quantized_input = None

    # -- state between stages (protocol/state.py) ---------------------------------------------

    def to_state(self) -> ClientState:
        """Everything this client holds, as data, to be stored on its own node only."""
        return ClientState(
            client_id=self.client_id,
            config=self.config,
            round_number=self.round_number,
            dimension=self._dimension,
            next_stage=self.next_stage,
            status=self.status,
            masks_expanded=self.masks_expanded,
            rounding=self._rounding.bit_generator.state,
            quantized_input=None
            if self.quantized_input is None
            else self.quantized_input.astype("<u4").tobytes(),
            **self._keyring.state_fields(),
            participants=self._participants,
            survivor_set=self._survivor_set,
        )

    @classmethod
    def from_state(
        cls,
        state: ClientState,
        identity: Ed25519PrivateKey | None = None,
        manifest: IdentityManifest | None = None,
    ) -> SecAggClient:
        """The client `to_state` described, ready for its next stage (the long-term identity
        and manifest are the node's, not the round's, so they are passed in, never stored)."""
        client = cls(
            state.client_id,
            state.config,
            dimension=state.dimension,
            round_number=state.round_number,
            rounding_seed=0,  # replaced by the stored generator state below (no OS seeding)
            identity=identity,
            manifest=manifest,
        )
        client._rounding.bit_generator.state = state.rounding
        if state.quantized_input is not None:
            words = np.frombuffer(state.quantized_input, dtype="<u4").astype(np.uint32)
            if words.shape[0] != state.dimension:
                raise VectorLengthError(
                    f"stored input has {words.shape[0]} words, dimension is {state.dimension}"
                )
            client.quantized_input = words
        client.next_stage, client.status = state.next_stage, state.status
        client.masks_expanded = state.masks_expanded
        client._keyring = Keyring.from_state(state)
        client._participants, client._survivor_set = state.participants, state.survivor_set
        return client

    # -- dispatch and envelope checks ---------------------------------------------------------

    def handle(self, request: AnyRequest) -> AnyResponse:
        """Answer any request by its type (what a transport adapter calls)."""
        if isinstance(request, AdvertiseKeysRequest):
            return self.advertise_keys(request)
        if isinstance(request, ShareKeysRequest):
            return self.share_keys(request)
        if isinstance(request, MaskedInputRequest):
            return self.masked_input(request)
        if isinstance(request, ConsistencyCheckRequest):
            return self.consistency_check(request)
        return self.unmask(request)

    def _check_envelope(self, request: Message, expected: type[Message]) -> None:
        check_envelope(request, expected, self.client_id, self.next_stage, self.round_number)

    def forget(self) -> None:
        """Give the round up: forget every secret and the input, refuse anything further (a
        transport calls this when a batch fails around the client rather than inside it)."""
        self._abort()
        self.quantized_input = None

    @contextmanager
    def _abort_on_fault(self) -> Iterator[None]:
        """A protocol fault found while processing a well-addressed request aborts the client
        (it forgets its secrets, `_abort`), then propagates."""
        try:
            yield
        except ProtocolError:
            self._abort()
            raise

    def _abort(self) -> None:
        """Forget every secret and refuse anything further."""
        self.next_stage = None
        self.status = ClientStatus.ABORTED
        self._keyring.wipe()
        self._survivor_set = None

    def _reply_header(self) -> dict[str, int]:
        assert self.round_number is not None
        return {"round": self.round_number, "sender": self.client_id, "receiver": SERVER_ID}

    # -- stage 1 ------------------------------------------------------------------------------

    def advertise_keys(self, request: AdvertiseKeysRequest) -> AdvertiseKeysResponse:
        """Check the round's parameters and answer with two fresh public keys."""
        self._check_envelope(request, AdvertiseKeysRequest)
        if request.config != self.config:
            raise ConfigMismatch(
                f"server config {request.config.model_dump()} differs from the client's "
                f"{self.config.model_dump()}"
            )
        if request.dimension != self.dimension:
            raise VectorLengthError(
                f"dimension must be {self.dimension} (the client's vector), got {request.dimension}"
            )
        self.round_number = request.round
        self._keyring.generate_keys(self.client_id)
        own_keys = self._keyring.own_keys
        assert own_keys is not None
        signature = None
        if self.malicious:
            assert self._identity is not None
            statement = advertise_statement(
                self._session_context(), self.client_id, own_keys.encryption, own_keys.masking
            )
            signature = sign(self._identity, statement)
        self.next_stage, self.status = Stage.SHARE_KEYS, ClientStatus.ADVERTISED_KEYS
        return AdvertiseKeysResponse(
            **self._reply_header(),
            encryption_public_key=own_keys.encryption,
            masking_public_key=own_keys.masking,
            signature=signature,
        )

    # -- stage 2 ------------------------------------------------------------------------------

    def share_keys(self, request: ShareKeysRequest) -> ShareKeysResponse:
        """Check the neighbour list against the public graph, then seal shares for each one."""
        self._check_envelope(request, ShareKeysRequest)
        with self._abort_on_fault():
            keyring = self._keyring
            assert keyring.own_keys and keyring.encryption_private_key
            assert keyring.self_mask_seed is not None and self.round_number is not None
            participants, manifest = request.participants, self._manifest
            check_participants(self.client_id, participants, self.config, self.malicious, manifest)
            expected = neighbours_of(
                self.client_id,
                participants,
                self.config.degree,
                graph_seed(self.round_number, participants),
            )
            threshold = self.config.reconstruction_threshold
            offered = check_neighbour_offer(self.client_id, request, expected, threshold)
            if self.malicious:
                assert manifest is not None
                quorum = self.config.consistency_quorum
                check_signed_keys(request, manifest, self._session_context(), quorum)
                self._participants = list(participants)
            seen_keys = {keyring.own_keys.encryption, keyring.own_keys.masking}
            encryption_key = crypto.private_key_from_bytes(keyring.encryption_private_key)
            for peer in request.neighbours:
                keys = PublicKeys(
                    peer.client_id, peer.encryption_public_key, peer.masking_public_key
                )
                check_fresh_keys(keys, seen_keys)
                keyring.add_neighbour(self.round_number, encryption_key, keys)
            sealed, own_commitments = keyring.deal(
                self.round_number,
                self.client_id,
                sorted(offered | {self.client_id}),
                threshold,
                self._view_digest(),
            )
            self.next_stage, self.status = Stage.MASKED_INPUT, ClientStatus.SHARED_KEYS
            return ShareKeysResponse(
                **self._reply_header(),
                shares=sealed,
                own_commitments=own_commitments,
                self_mask_seed_commitment=seed_commitment(
                    self.round_number, self.client_id, keyring.self_mask_seed
                ),
            )

    # -- stage 3 ------------------------------------------------------------------------------

    def masked_input(self, request: MaskedInputRequest) -> MaskedInputResponse:
        """Open the shares received, then mask the input with exactly those neighbours."""
        self._check_envelope(request, MaskedInputRequest)
        with self._abort_on_fault():
            keyring = self._keyring
            assert keyring.own_keys and keyring.masking_private_key and keyring.self_mask_seed
            assert self.round_number is not None
            for sealed in request.shares:
                keyring.open(self.round_number, self.client_id, sealed, self._view_digest())
            mask_peers = sorted(set(keyring.held_self_mask_shares) - {self.client_id})
            threshold = self.config.reconstruction_threshold
            if len(mask_peers) + 1 < threshold:
                raise ProtocolAbort(
                    Stage.MASKED_INPUT,
                    f"client {self.client_id} has {len(mask_peers) + 1} live share holders, "
                    f"fewer than t = {threshold}",
                )
            if self.quantized_input is None:
                raise MissingInput(
                    f"client {self.client_id} has no input: call provide_input before masked_input"
                )
            masked = keyring.mask(
                self.round_number, self.quantized_input, mask_peers, self.config.modulus
            )
            self.masks_expanded += 1 + len(mask_peers)
            vector = masked.tobytes()
            binding = masked_input_binding(self.round_number, keyring.own_keys, mask_peers, vector)
            keyring.forget_private_keys()  # the masks are sent; these secrets now live as shares
            self.next_stage = Stage.MASKED_INPUT.next(self.config.mode)
            self.status = ClientStatus.SENT_MASKED_INPUT
            return MaskedInputResponse(
                **self._reply_header(), mask_peers=mask_peers, binding=binding, masked_vector=vector
            )

    # -- malicious mode: consistency check ------------------------------------------------------

    def consistency_check(self, request: ConsistencyCheckRequest) -> ConsistencyCheckResponse:
        """Sign the survivor set, once, if an honest server could have produced it."""
        self._check_envelope(request, ConsistencyCheckRequest)
        with self._abort_on_fault():
            assert self._identity is not None and self._participants is not None
            assert self.round_number is not None
            check_survivor_set(
                self.client_id,
                request.survivors,
                participants=self._participants,
                neighbours=self._keyring.neighbours,
                held=self._keyring.held_self_mask_shares,
                config=self.config,
                round_number=self.round_number,
            )
        self._survivor_set = list(request.survivors)
        self.next_stage, self.status = Stage.UNMASK, ClientStatus.SIGNED_SURVIVORS
        return ConsistencyCheckResponse(
            **self._reply_header(), signature=sign(self._identity, self._survivors_statement())
        )

    # -- stage 4 ------------------------------------------------------------------------------

    def unmask(self, request: UnmaskRequest) -> UnmaskResponse:
        """Reveal one kind of share per peer, refusing any request for both of one peer."""
        self._check_envelope(request, UnmaskRequest)
        with self._abort_on_fault():
            held = set(self._keyring.held_self_mask_shares)
            survivors, dropped = check_unmask_partition(self.client_id, request, held)
            if self.malicious:
                assert self._manifest is not None and self._survivor_set is not None
                check_certified_request(
                    self.client_id,
                    request,
                    held,
                    self._survivor_set,
                    self._manifest,
                    self._survivors_statement(),
                    self.config.consistency_quorum,
                )
            threshold = self.config.reconstruction_threshold
            if len(survivors) < threshold:
                raise ProtocolAbort(
                    Stage.UNMASK,
                    f"only {len(survivors)} survivors around client {self.client_id}, fewer than "
                    f"t = {threshold}",
                )
            shares = self._keyring.reveal(survivors, dropped)
            self.next_stage, self.status = None, ClientStatus.UNMASKED
            return UnmaskResponse(**self._reply_header(), shares=shares)
