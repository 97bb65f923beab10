"""Named protocol errors: one class per fault, so callers and tests catch exactly what went wrong.

Every error derives from `ProtocolError`. `ProtocolAbort` ends the round; the others describe one
bad message, and the server answers them by treating the sender as dropped (see SPEC.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocol.stages import DropReason, Stage

if TYPE_CHECKING:
    from protocol.transcript import ServerView


class ProtocolError(Exception):
    """Base of every fault the secure-aggregation protocol reports."""

    drop_reason: DropReason = DropReason.MALFORMED_MESSAGE
    """What the server records when this error makes it drop the sender."""


class ProtocolAbort(ProtocolError):
    """The round cannot finish safely; nothing beyond what the protocol allows has been revealed."""

    def __init__(self, stage: Stage, reason: str, view: ServerView | None = None) -> None:
        super().__init__(f"secure aggregation aborted at stage {stage.value!r}: {reason}")
        self.stage = stage
        self.reason = reason
        self.view = view
        """The server's view at the abort (None when a client aborts)."""

    def __reduce__(self) -> tuple[type[ProtocolAbort], tuple[Stage, str, ServerView | None]]:
        """Pickle with the constructor's arguments (a worker process sends aborts back)."""
        return (type(self), (self.stage, self.reason, self.view))


class UnexpectedStage(ProtocolError):
    """A message arrived for a stage other than the one the state machine expects next."""

    drop_reason = DropReason.WRONG_STAGE


class RoundMismatch(ProtocolError):
    """A message carries another round number: a replay from an earlier or later round."""

    drop_reason = DropReason.WRONG_ROUND


class UnknownSender(ProtocolError):
    """A message came from a client that is not (or no longer) part of the round."""


class SenderMismatch(ProtocolError):
    """The `sender` inside a message differs from the client id the transport delivered it from."""

    drop_reason = DropReason.SENDER_MISMATCH


class DuplicateSender(ProtocolError):
    """Two messages in the same stage claim the same sender."""

    drop_reason = DropReason.DUPLICATE_SENDER


class MalformedMessage(ProtocolError):
    """A message does not parse, or breaks an invariant of its stage."""


class InvalidPublicKey(ProtocolError):
    """A public key is not a usable X25519 key (wrong length, low-order point, reused)."""

    drop_reason = DropReason.INVALID_PUBLIC_KEY


class DecryptionError(ProtocolError):
    """An encrypted share failed AES-GCM authentication: tampered, misrouted or replayed."""


class InvalidShare(ProtocolError):
    """A revealed share does not match the commitment its dealer made in the share-keys stage."""

    drop_reason = DropReason.INVALID_SHARE


class VectorLengthError(ProtocolError):
    """A vector does not have the length the round agreed on."""

    drop_reason = DropReason.WRONG_VECTOR_LENGTH


class InvalidInput(ProtocolError, ValueError):
    """A client's own input is not a finite numeric vector (NaN, inf, text, objects).

    Also a ValueError, as it was before it became a protocol error: callers that validate inputs
    up front still catch it that way."""


class InvalidSignature(ProtocolError):
    """Malicious mode: a signature does not verify under the identity key the manifest lists for
    its signer, or the signer is not in the manifest."""

    drop_reason = DropReason.INVALID_SIGNATURE


class MaskedInputMismatch(ProtocolError):
    """A masked input that cannot be summed: masked with another set of peers than the server
    expects, or whose binding to its session, peers and vector does not verify."""

    drop_reason = DropReason.MASKED_INPUT_MISMATCH


class MissingInput(ProtocolError):
    """A client was asked for its masked input before it was given an input to mask."""

    drop_reason = DropReason.NO_RESPONSE


class ConfigMismatch(ProtocolError):
    """The server's parameters differ from the ones this client was configured with."""


class RefusedRequest(ProtocolError):
    """An honest client refuses a request that would reveal more than the protocol allows."""
