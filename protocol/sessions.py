"""A client's open rounds, when a transport pipelines round r+1's key stages into round r.

Each round is its own `SecAggClient`: fresh keys, fresh self-mask seed, fresh shares, its own
state machine (SPEC.md §9). Pipelining only changes *when* requests arrive: one transport
message may carry requests of two consecutive rounds, e.g. round r's masked-input request with
round r+1's advertise-keys request. `ClientSessions` routes each request to its round, opens a
round on its advertise-keys request and forgets a round once it is over, aborted, or abandoned
by the server.

A node that holds a long-term identity (malicious mode, SPEC.md §10) passes it here: it then
takes part in malicious-mode rounds only (a server could otherwise simply ask for a semi-honest
one), and never reopens a round whose survivor set it has signed.

A round's parameters come from the server's advertise-keys request, so a node that took them as
they come would join any round (SPEC.md §4). A node passes its own `ConfigPolicy`, built from
its local configuration and never from the server; a proposal it refuses is a `ConfigMismatch`
before the round has any key.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.client import SecAggClient
from protocol.config import SecAggConfig
from protocol.errors import (
    ConfigMismatch,
    MalformedMessage,
    ProtocolError,
    RefusedRequest,
    UnexpectedStage,
)
from protocol.identity import IdentityManifest
from protocol.messages import (
    AdvertiseKeysRequest,
    AnyRequest,
    AnyResponse,
    ConsistencyCheckRequest,
    MaskedInputRequest,
    ShareKeysRequest,
    UnmaskRequest,
)
from protocol.stages import Stage
from protocol.state import SessionsState

_REQUEST_TYPES = (
    AdvertiseKeysRequest,
    ShareKeysRequest,
    MaskedInputRequest,
    ConsistencyCheckRequest,
    UnmaskRequest,
)

MAX_OPEN_ROUNDS = 2
"""Round r waiting for its unmask request and round r+1 sharing keys: never more."""

ConfigPolicy = Callable[[SecAggConfig], str | None]
"""A node's own rules for the rounds it joins: why it refuses a proposed config, or None."""

ProvideInput = Callable[[SecAggClient], None]
"""Called with a round's client just before it masks: the place to train and `provide_input`."""


class ClientSessions:
    """One client's protocol state across rounds: at most `MAX_OPEN_ROUNDS` rounds open."""

    def __init__(
        self,
        identity: Ed25519PrivateKey | None = None,
        manifest: IdentityManifest | None = None,
        policy: ConfigPolicy | None = None,
    ) -> None:
        if (identity is None) != (manifest is None):
            raise ValueError("give both the identity and the manifest, or neither")
        self._rounds: dict[int, SecAggClient] = {}
        self._identity, self._manifest = identity, manifest
        self._policy = policy
        self.signed_through: int | None = None
        """The latest round whose survivor set this node signed (malicious mode)."""

    @property
    def open_rounds(self) -> list[int]:
        return sorted(self._rounds)

    def session(self, round_number: int) -> SecAggClient | None:
        return self._rounds.get(round_number)

    def to_state(self) -> SessionsState:
        return SessionsState(
            rounds={r: c.to_state() for r, c in sorted(self._rounds.items())},
            signed_through=self.signed_through,
        )

    @classmethod
    def from_state(
        cls,
        state: SessionsState,
        identity: Ed25519PrivateKey | None = None,
        manifest: IdentityManifest | None = None,
        policy: ConfigPolicy | None = None,
    ) -> ClientSessions:
        """The sessions `to_state` described; the node's identity, manifest and policy are
        passed in (they are the node's own, not a round's, so the stored state never holds
        them)."""
        misfiled = [r for r, client in state.rounds.items() if client.round_number != r]
        if misfiled:
            raise MalformedMessage(f"stored rounds {misfiled} hold another round's state")
        sessions = cls(identity, manifest, policy)
        sessions._rounds = {
            r: SecAggClient.from_state(c, identity, manifest) for r, c in state.rounds.items()
        }
        sessions.signed_through = state.signed_through
        return sessions

    def to_bytes(self) -> bytes:
        """JSON of `SessionsState`: private keys and shares in base64, for the node only."""
        return self.to_state().model_dump_json().encode()

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        identity: Ed25519PrivateKey | None = None,
        manifest: IdentityManifest | None = None,
        policy: ConfigPolicy | None = None,
    ) -> ClientSessions:
        """Load `to_bytes` output; anything else (a corrupted or foreign store) raises
        MalformedMessage, so the transport treats it like any bad input."""
        try:
            state = SessionsState.model_validate_json(data)
            return cls.from_state(state, identity, manifest, policy)
        except ProtocolError:
            raise
        except (ValueError, TypeError, KeyError, ArithmeticError, RecursionError) as error:
            raise MalformedMessage(f"stored sessions state does not load: {error!r}") from error

    def handle_batch(
        self, requests: Sequence[AnyRequest], provide_input: ProvideInput | None = None
    ) -> list[AnyResponse]:
        """Answer one transport message's requests, in order, one per round.

        Rounds older than the oldest round in the batch are forgotten first: the server has
        moved past them, so their secrets can never be asked for again. A protocol fault in any
        request forgets every round the batch touched and propagates: the transport reports an
        error, and the server counts this client as dropped from all of them. So does any other
        exception (a failure in `provide_input`, e.g. training): a round is never left open
        with its keys after the batch failed.
        """
        strays = [type(r).__name__ for r in requests if not isinstance(r, _REQUEST_TYPES)]
        if strays:
            raise MalformedMessage(f"a client answers server requests only, got {strays}")
        rounds = [request.round for request in requests]
        if not requests or len(set(rounds)) != len(rounds):
            raise MalformedMessage(
                f"a batch must hold one request per round, got rounds {rounds or 'none'}"
            )
        oldest = min(rounds)
        for stale in [r for r in self._rounds if r < oldest]:
            del self._rounds[stale]
        opening = {r.round for r in requests if isinstance(r, AdvertiseKeysRequest)}
        if len(set(self._rounds) | opening) > MAX_OPEN_ROUNDS:
            raise MalformedMessage(
                f"at most {MAX_OPEN_ROUNDS} rounds may be open at once; rounds "
                f"{sorted(set(self._rounds) | opening)} were asked for"
            )
        try:
            return [self._answer(request, provide_input) for request in requests]
        except Exception:
            for round_number in rounds:
                forgotten = self._rounds.pop(round_number, None)
                if forgotten is not None:
                    forgotten.forget()
            raise

    def _answer(self, request: AnyRequest, provide_input: ProvideInput | None) -> AnyResponse:
        if isinstance(request, AdvertiseKeysRequest):
            # A new advertise-keys request (re)opens the round with fresh keys; the earlier
            # attempt at this round is dropped.
            self._check_may_open(request)
            client = SecAggClient(
                request.receiver,
                request.config,
                dimension=request.dimension,
                round_number=request.round,
                identity=self._identity,
                manifest=self._manifest,
            )
            self._rounds[request.round] = client
        else:
            opened = self._rounds.get(request.round)
            if opened is None:
                raise UnexpectedStage(
                    f"no open round {request.round} at client {request.receiver}: "
                    f"{type(request).__name__} arrived before its advertise_keys request"
                )
            client = opened
        masking = isinstance(request, MaskedInputRequest)
        if masking and client.next_stage is Stage.MASKED_INPUT and provide_input is not None:
            provide_input(client)
        response = client.handle(request)
        if isinstance(request, ConsistencyCheckRequest):
            self.signed_through = max(request.round, self.signed_through or 0)
        if masking:
            client.release_input()  # masked and sent: only keys and shares stay
        if client.next_stage is None:
            del self._rounds[request.round]  # round over: keep no secret around
        return response

    def _check_may_open(self, request: AdvertiseKeysRequest) -> None:
        """The node's policy must accept the proposed config. A node with an identity takes
        part in malicious-mode rounds only, and signs at most one survivor set per round
        number: it refuses to (re)open a round at or before the last one it signed for, so no
        server can collect two of its signatures for one round."""
        refusal = None if self._policy is None else self._policy(request.config)
        if refusal is not None:
            raise ConfigMismatch(
                f"client {request.receiver} refuses round {request.round}'s config: {refusal}"
            )
        if self._identity is None:
            return
        if request.config.mode != "malicious":
            raise ConfigMismatch(
                f"this node holds an identity key and joins malicious-mode rounds only, the "
                f"server asked for mode {request.config.mode!r}"
            )
        if self.signed_through is not None and request.round <= self.signed_through:
            raise RefusedRequest(
                f"round {request.round} is not after round {self.signed_through}, whose survivor "
                "set this node already signed"
            )
