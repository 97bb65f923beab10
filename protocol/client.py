"""The client state machine: one method per stage, each taking the server's request.

Every method first checks the envelope (type, expected stage, round, addressee) and raises
without changing state if it is wrong, so a stray or replayed message cannot derail an honest
client. A fault found while processing a well-addressed request (a tampered share, a request
to reveal too much) aborts the client: it forgets its secrets and answers nothing more.
Secrets live only as long as their stage needs them (fcp `secagg` round states).

Longer than the usual module: one state machine, its state conversion (which must mirror every
attribute) and the malicious mode's per-stage checks belong together; the rules that need none
of its state (which survivor set to sign, a certificate's count) live in `consistency.py`.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import crypto, shamir
from protocol.config import SecAggConfig
from protocol.consistency import check_certificate, check_survivor_set
from protocol.errors import (
    ConfigMismatch,
    InvalidShare,
    InvalidSignature,
    MalformedMessage,
    MissingInput,
    ProtocolAbort,
    ProtocolError,
    RefusedRequest,
    RoundMismatch,
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
from protocol.masking import (
    PublicKeys,
    add_mask,
    masked_input_binding,
    pair_sign,
    pairwise_mask_seed,
    share_associated_data,
    share_channel,
)
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
    MaskingKeyShare,
    Message,
    PeerKeys,
    RevealedShare,
    SealedShares,
    SelfMaskShare,
    ShareCommitments,
    ShareKeysRequest,
    ShareKeysResponse,
    UnmaskRequest,
    UnmaskResponse,
    seed_commitment,
    share_commitment,
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
        # Secrets of the round, each deleted once its last stage is done.
        # Private keys stay raw bytes until the stage that uses them: loading one costs as much
        # as a key agreement, and a client is rebuilt from its state at every message.
        self._encryption_private_key: bytes | None = None
        self._masking_private_key: bytes | None = None
        self._self_mask_seed: bytes | None = None
        self._my_keys: PublicKeys | None = None
        self._neighbours: dict[int, PublicKeys] = {}
        self._channels: dict[int, tuple[bytes, bytes]] = {}
        self._held_self_mask_shares: dict[int, int] = {}
        self._held_key_shares: dict[int, int] = {}
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

        # Nested parts as plain dicts: pydantic validates them with the whole state in one
        # compiled pass (building each model in Python cost twice as much).
        def peer(keys: PublicKeys) -> dict[str, Any]:
            return {
                "client_id": keys.client_id,
                "encryption_public_key": keys.encryption,
                "masking_public_key": keys.masking,
            }

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
            encryption_private_key=self._encryption_private_key,
            masking_private_key=self._masking_private_key,
            self_mask_seed=self._self_mask_seed,
            own_keys=None if self._my_keys is None else peer(self._my_keys),
            neighbours=[peer(keys) for _, keys in sorted(self._neighbours.items())],
            channels=[
                {"peer": client_id, "key": key, "session": session}
                for client_id, (key, session) in sorted(self._channels.items())
            ],
            held_self_mask_shares={
                dealer: shamir.encode_share(value)
                for dealer, value in sorted(self._held_self_mask_shares.items())
            },
            held_key_shares={
                dealer: shamir.encode_share(value)
                for dealer, value in sorted(self._held_key_shares.items())
            },
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

        def keys(peer: PeerKeys) -> PublicKeys:
            return PublicKeys(peer.client_id, peer.encryption_public_key, peer.masking_public_key)

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
        client._encryption_private_key = state.encryption_private_key
        client._masking_private_key = state.masking_private_key
        client._self_mask_seed = state.self_mask_seed
        client._my_keys = None if state.own_keys is None else keys(state.own_keys)
        client._neighbours = {peer.client_id: keys(peer) for peer in state.neighbours}
        client._channels = {c.peer: (c.key, c.session) for c in state.channels}
        client._held_self_mask_shares = {
            dealer: shamir.decode_share(value)
            for dealer, value in state.held_self_mask_shares.items()
        }
        client._held_key_shares = {
            dealer: shamir.decode_share(value) for dealer, value in state.held_key_shares.items()
        }
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
        if not isinstance(request, expected) or self.next_stage is not expected.stage:
            wanted = self.next_stage.value if self.next_stage else "nothing (round over)"
            raise UnexpectedStage(
                f"client {self.client_id} expects {wanted}, got {type(request).__name__}"
            )
        if self.round_number is not None and request.round != self.round_number:
            raise RoundMismatch(
                f"client {self.client_id} is in round {self.round_number}, "
                f"message is for round {request.round}"
            )
        if request.sender != SERVER_ID or request.receiver != self.client_id:
            raise MalformedMessage(
                f"request must go from the server (0) to client {self.client_id}, "
                f"got {request.sender} -> {request.receiver}"
            )

    def forget(self) -> None:
        """Give the round up: forget every secret and the input, refuse anything further (a
        transport calls this when a batch fails around the client rather than inside it)."""
        self._abort()
        self.quantized_input = None

    def _abort(self) -> None:
        """Forget every secret and refuse anything further."""
        self.next_stage = None
        self.status = ClientStatus.ABORTED
        self._encryption_private_key = self._masking_private_key = self._self_mask_seed = None
        self._channels.clear()
        self._held_self_mask_shares.clear()
        self._held_key_shares.clear()
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
        encryption_key, masking_key = crypto.generate_private_key(), crypto.generate_private_key()
        self._encryption_private_key = crypto.private_key_bytes(encryption_key)
        self._masking_private_key = crypto.private_key_bytes(masking_key)
        self._self_mask_seed = os.urandom(shamir.SECRET_BYTES)
        self._my_keys = PublicKeys(
            self.client_id, crypto.public_key(encryption_key), crypto.public_key(masking_key)
        )
        signature = None
        if self.malicious:
            assert self._identity is not None
            statement = advertise_statement(
                self._session_context(),
                self.client_id,
                self._my_keys.encryption,
                self._my_keys.masking,
            )
            signature = sign(self._identity, statement)
        self.next_stage, self.status = Stage.SHARE_KEYS, ClientStatus.ADVERTISED_KEYS
        return AdvertiseKeysResponse(
            **self._reply_header(),
            encryption_public_key=self._my_keys.encryption,
            masking_public_key=self._my_keys.masking,
            signature=signature,
        )

    # -- stage 2 ------------------------------------------------------------------------------

    def share_keys(self, request: ShareKeysRequest) -> ShareKeysResponse:
        """Check the neighbour list against the public graph, then seal shares for each one."""
        self._check_envelope(request, ShareKeysRequest)
        try:
            return self._share_keys(request)
        except ProtocolError:
            self._abort()
            raise

    def _share_keys(self, request: ShareKeysRequest) -> ShareKeysResponse:
        assert self._my_keys and self._encryption_private_key and self._masking_private_key
        assert self._self_mask_seed is not None and self.round_number is not None
        participants = request.participants
        if participants != sorted(set(participants)) or self.client_id not in participants:
            raise MalformedMessage(
                f"participants must be sorted, distinct and include {self.client_id}"
            )
        if self._manifest is not None and self.malicious:
            # The consistency quorum is counted out of num_clients, so U1 may not be larger.
            if len(participants) > self.config.num_clients:
                raise MalformedMessage(
                    f"{len(participants)} participants, more than the "
                    f"{self.config.num_clients} clients the round invites"
                )
            strangers = sorted(set(participants) - set(self._manifest.keys))
            if strangers:
                raise InvalidSignature(f"participants {strangers} are not in the identity manifest")
        expected = neighbours_of(
            self.client_id,
            participants,
            self.config.degree,
            graph_seed(self.round_number, participants),
        )
        offered = {peer.client_id for peer in request.neighbours}
        if offered != expected or len(offered) != len(request.neighbours):
            raise MalformedMessage(
                f"neighbours must be exactly the graph neighbours of client {self.client_id}"
            )
        threshold = self.config.reconstruction_threshold
        if len(offered) + 1 < threshold:
            raise ProtocolAbort(
                Stage.SHARE_KEYS,
                f"client {self.client_id} has {len(offered) + 1} share holders, fewer than "
                f"t = {threshold}",
            )
        if self.malicious:
            self._check_signed_keys(request)
        seen_keys = {self._my_keys.encryption, self._my_keys.masking}
        encryption_key = crypto.private_key_from_bytes(self._encryption_private_key)
        for peer in request.neighbours:
            keys = PublicKeys(peer.client_id, peer.encryption_public_key, peer.masking_public_key)
            crypto.check_canonical(keys.encryption)  # canonical bytes: the reuse check below
            crypto.check_canonical(keys.masking)  # compares points, not spellings
            if keys.encryption in seen_keys or keys.masking in seen_keys:
                raise MalformedMessage(f"client {peer.client_id} reuses a public key")
            seen_keys |= {keys.encryption, keys.masking}
            self._neighbours[peer.client_id] = keys
            self._channels[peer.client_id] = share_channel(
                self.round_number, encryption_key, self._my_keys, keys
            )
        holders = sorted(offered | {self.client_id})
        seed_shares = shamir.split(self._self_mask_seed, holders, threshold)
        key_shares = shamir.split(self._masking_private_key, holders, threshold)
        sealed: list[SealedShares] = []
        for holder in holders:
            seed_value = shamir.encode_share(seed_shares[holder])
            key_value = shamir.encode_share(key_shares[holder])
            commitments = ShareCommitments(
                self_mask=share_commitment(
                    self.round_number, "self_mask", self.client_id, holder, seed_value
                ),
                masking_key=share_commitment(
                    self.round_number, "masking_key", self.client_id, holder, key_value
                ),
            )
            if holder == self.client_id:
                own_commitments = commitments
                self._held_self_mask_shares[holder] = seed_shares[holder]
                self._held_key_shares[holder] = key_shares[holder]
                continue
            channel_key, session = self._channels[holder]
            ciphertext = crypto.aead_encrypt(
                channel_key,
                seed_value + key_value,
                share_associated_data(session, self.client_id, holder, self._view_digest()),
            )
            sealed.append(
                SealedShares(
                    dealer=self.client_id,
                    holder=holder,
                    ciphertext=ciphertext,
                    commitments=commitments,
                )
            )
        self.next_stage, self.status = Stage.MASKED_INPUT, ClientStatus.SHARED_KEYS
        return ShareKeysResponse(
            **self._reply_header(),
            shares=sealed,
            own_commitments=own_commitments,
            self_mask_seed_commitment=seed_commitment(
                self.round_number, self.client_id, self._self_mask_seed
            ),
        )

    def _check_signed_keys(self, request: ShareKeysRequest) -> None:
        """Malicious mode: every participant is a registered client, enough of them took part
        to ever reach the quorum, and each neighbour's keys carry its own identity signature
        (a server that substitutes keys or invents clients is caught here)."""
        assert self._manifest is not None
        quorum = self.config.consistency_quorum
        if len(request.participants) < quorum:
            raise ProtocolAbort(
                Stage.SHARE_KEYS,
                f"{len(request.participants)} participants can never reach the consistency "
                f"quorum of {quorum}",
            )
        context = self._session_context()
        for peer in request.neighbours:
            if peer.signature is None:
                raise InvalidSignature(f"client {peer.client_id}'s keys arrived unsigned")
            statement = advertise_statement(
                context, peer.client_id, peer.encryption_public_key, peer.masking_public_key
            )
            self._manifest.verify(peer.client_id, statement, peer.signature)
        self._participants = list(request.participants)

    # -- stage 3 ------------------------------------------------------------------------------

    def masked_input(self, request: MaskedInputRequest) -> MaskedInputResponse:
        """Open the shares received, then mask the input with exactly those neighbours."""
        self._check_envelope(request, MaskedInputRequest)
        try:
            return self._masked_input(request)
        except ProtocolError:
            self._abort()
            raise

    def _open_shares(self, sealed: SealedShares) -> None:
        assert self.round_number is not None
        if sealed.holder != self.client_id or sealed.dealer not in self._neighbours:
            raise MalformedMessage(
                f"share from {sealed.dealer} to {sealed.holder} is not for client "
                f"{self.client_id} from one of its neighbours"
            )
        if sealed.dealer in self._held_self_mask_shares:
            raise MalformedMessage(f"two share messages from dealer {sealed.dealer}")
        channel_key, session = self._channels[sealed.dealer]
        plaintext = crypto.aead_decrypt(
            channel_key,
            sealed.ciphertext,
            share_associated_data(session, sealed.dealer, self.client_id, self._view_digest()),
        )
        if len(plaintext) != 2 * shamir.SHARE_BYTES:
            raise InvalidShare(f"shares from {sealed.dealer} have the wrong length")
        seed_value, key_value = plaintext[: shamir.SHARE_BYTES], plaintext[shamir.SHARE_BYTES :]
        committed = sealed.commitments
        if committed.self_mask != share_commitment(
            self.round_number, "self_mask", sealed.dealer, self.client_id, seed_value
        ) or committed.masking_key != share_commitment(
            self.round_number, "masking_key", sealed.dealer, self.client_id, key_value
        ):
            raise InvalidShare(f"shares from {sealed.dealer} do not match their commitments")
        try:
            self._held_self_mask_shares[sealed.dealer] = shamir.decode_share(seed_value)
            self._held_key_shares[sealed.dealer] = shamir.decode_share(key_value)
        except ValueError as error:
            raise InvalidShare(f"shares from {sealed.dealer}: {error}") from error

    def _masked_input(self, request: MaskedInputRequest) -> MaskedInputResponse:
        assert self._my_keys and self._masking_private_key and self._self_mask_seed
        assert self.round_number is not None
        for sealed in request.shares:
            self._open_shares(sealed)
        mask_peers = sorted(set(self._held_self_mask_shares) - {self.client_id})
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
        masking_key = crypto.private_key_from_bytes(self._masking_private_key)
        masked = self.quantized_input.copy()
        add_mask(masked, self._self_mask_seed, +1)
        for peer in mask_peers:
            seed = pairwise_mask_seed(
                self.round_number, masking_key, self._my_keys, self._neighbours[peer]
            )
            add_mask(masked, seed, pair_sign(self.client_id, peer))
        self.masks_expanded += 1 + len(mask_peers)
        if self.config.modulus_bits < 32:
            masked &= np.uint32(self.config.modulus - 1)
        vector = masked.tobytes()
        binding = masked_input_binding(self.round_number, self._my_keys, mask_peers, vector)
        # The masks are sent; these secrets now live only as shares.
        self._encryption_private_key = self._masking_private_key = self._self_mask_seed = None
        self._channels.clear()
        self.next_stage = Stage.MASKED_INPUT.next(self.config.mode)
        self.status = ClientStatus.SENT_MASKED_INPUT
        return MaskedInputResponse(
            **self._reply_header(), mask_peers=mask_peers, binding=binding, masked_vector=vector
        )

    # -- malicious mode: consistency check ------------------------------------------------------

    def consistency_check(self, request: ConsistencyCheckRequest) -> ConsistencyCheckResponse:
        """Sign the survivor set, once, if an honest server could have produced it."""
        self._check_envelope(request, ConsistencyCheckRequest)
        try:
            assert self._identity is not None and self._participants is not None
            assert self.round_number is not None
            check_survivor_set(
                self.client_id,
                request.survivors,
                participants=self._participants,
                neighbours=self._neighbours,
                held=self._held_self_mask_shares,
                config=self.config,
                round_number=self.round_number,
            )
        except ProtocolError:
            self._abort()
            raise
        self._survivor_set = list(request.survivors)
        statement = survivors_statement(
            self._session_context(), self._participants, self._survivor_set
        )
        self.next_stage, self.status = Stage.UNMASK, ClientStatus.SIGNED_SURVIVORS
        return ConsistencyCheckResponse(
            **self._reply_header(), signature=sign(self._identity, statement)
        )

    # -- stage 4 ------------------------------------------------------------------------------

    def unmask(self, request: UnmaskRequest) -> UnmaskResponse:
        """Reveal one kind of share per peer, refusing any request for both of one peer."""
        self._check_envelope(request, UnmaskRequest)
        try:
            return self._unmask(request)
        except ProtocolError:
            self._abort()
            raise

    def _unmask(self, request: UnmaskRequest) -> UnmaskResponse:
        survivors, dropped = set(request.survivors), set(request.dropped)
        if survivors & dropped:
            raise RefusedRequest(
                f"client {self.client_id} refuses to reveal both shares of "
                f"{sorted(survivors & dropped)}"
            )
        if len(survivors) != len(request.survivors) or len(dropped) != len(request.dropped):
            raise MalformedMessage("survivors and dropped must not repeat ids")
        held = set(self._held_self_mask_shares)
        if self.client_id not in survivors or survivors | dropped != held:
            raise MalformedMessage(
                f"survivors and dropped must partition the {len(held)} clients whose shares "
                f"client {self.client_id} holds, itself among the survivors"
            )
        if self.malicious:
            self._check_certified(request, held)
        threshold = self.config.reconstruction_threshold
        if len(survivors) < threshold:
            raise ProtocolAbort(
                Stage.UNMASK,
                f"only {len(survivors)} survivors around client {self.client_id}, fewer than "
                f"t = {threshold}",
            )
        shares: list[RevealedShare] = [
            SelfMaskShare(
                owner=owner, value=shamir.encode_share(self._held_self_mask_shares[owner])
            )
            for owner in sorted(survivors)
        ]
        shares += [
            MaskingKeyShare(owner=owner, value=shamir.encode_share(self._held_key_shares[owner]))
            for owner in sorted(dropped)
        ]
        self._held_self_mask_shares.clear()
        self._held_key_shares.clear()
        self.next_stage, self.status = None, ClientStatus.UNMASKED
        return UnmaskResponse(**self._reply_header(), shares=shares)

    def _check_certified(self, request: UnmaskRequest, held: set[int]) -> None:
        """Malicious mode: the request follows from the survivor set this client signed, and a
        quorum of those survivors signed the same statement."""
        assert self._manifest is not None and self._participants is not None
        assert self._survivor_set is not None
        signed = set(self._survivor_set)
        if request.survivors != sorted(held & signed) or request.dropped != sorted(held - signed):
            raise RefusedRequest(
                f"client {self.client_id} reveals shares only for the survivor set it signed"
            )
        statement = survivors_statement(
            self._session_context(), self._participants, self._survivor_set
        )
        check_certificate(
            self._manifest,
            statement,
            [(entry.signer, entry.signature) for entry in request.consistency_signatures],
            signed,
            self.config.consistency_quorum,
        )
