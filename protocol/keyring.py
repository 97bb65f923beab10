"""A client's key material in one round, and the work done with it: dealing its secrets out as
sealed shares, opening the shares it is dealt, masking its input, revealing shares.

`SecAggClient` (client.py) decides whether and when each of these happens: it checks every
request and runs the stages in order. A `Keyring` only does them, and forgets each secret when
the client says its last stage is done (fcp `secagg` round states hand on only what the next
stage needs). `state_fields` and `from_state` list every attribute, so the stored
`ClientState` (state.py) mirrors the keyring exactly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from protocol import crypto, shamir
from protocol.errors import InvalidShare, MalformedMessage
from protocol.masking import (
    PublicKeys,
    add_mask,
    pair_sign,
    pairwise_mask_seed,
    share_associated_data,
    share_channel,
)
from protocol.messages import (
    MaskingKeyShare,
    PeerKeys,
    RevealedShare,
    SealedShares,
    SelfMaskShare,
    ShareCommitments,
    share_commitment,
)
from protocol.state import ClientState


@dataclass(repr=False, eq=False)
class Keyring:
    """Keys, channels and shares one client holds in one round.

    Private keys stay raw bytes until the stage that uses them: loading one costs as much as a
    key agreement, and a client is rebuilt from its state at every message. No generated repr
    (a traceback or a log line must never print the secrets) and no field-wise equality.
    """

    encryption_private_key: bytes | None = None
    """X25519 private key of the share-encryption channel (c_sk), until masked_input."""
    masking_private_key: bytes | None = None
    """X25519 private key of the pairwise masks (s_sk), until masked_input; then only shares."""
    self_mask_seed: bytes | None = None
    """The self-mask seed b, until masked_input; then only shares."""
    own_keys: PublicKeys | None = None
    """This client's two public keys."""
    neighbours: dict[int, PublicKeys] = field(default_factory=dict)
    """Public keys of each graph neighbour, by id (from share_keys)."""
    channels: dict[int, tuple[bytes, bytes]] = field(default_factory=dict)
    """AES-GCM key and session id shared with each neighbour, until masked_input."""
    held_self_mask_shares: dict[int, int] = field(default_factory=dict)
    """Shares of each dealer's self-mask seed this client holds (its own included), by dealer."""
    held_key_shares: dict[int, int] = field(default_factory=dict)
    """Shares of each dealer's masking key this client holds (its own included), by dealer."""

    def generate_keys(self, client_id: int) -> None:
        """Two fresh X25519 key pairs and a self-mask seed, all from the OS generator."""
        encryption_key, masking_key = crypto.generate_private_key(), crypto.generate_private_key()
        self.encryption_private_key = crypto.private_key_bytes(encryption_key)
        self.masking_private_key = crypto.private_key_bytes(masking_key)
        self.self_mask_seed = os.urandom(shamir.SECRET_BYTES)
        self.own_keys = PublicKeys(
            client_id, crypto.public_key(encryption_key), crypto.public_key(masking_key)
        )

    # -- share_keys -----------------------------------------------------------------------------

    def add_neighbour(
        self, round_number: int, encryption_key: X25519PrivateKey, keys: PublicKeys
    ) -> None:
        """Keep a neighbour's public keys and agree the channel its shares travel on."""
        assert self.own_keys is not None
        self.neighbours[keys.client_id] = keys
        self.channels[keys.client_id] = share_channel(
            round_number, encryption_key, self.own_keys, keys
        )

    def deal(
        self,
        round_number: int,
        dealer: int,
        holders: list[int],
        threshold: int,
        view_digest: bytes,
    ) -> tuple[list[SealedShares], ShareCommitments]:
        """Split b and s_sk among `holders` (the dealer among them), keep the dealer's own
        shares, and seal every other holder's pair for that holder alone, with commitments.

        Returns the sealed pairs and the commitments to the dealer's own shares.
        """
        assert self.self_mask_seed is not None and self.masking_private_key is not None
        seed_shares = shamir.split(self.self_mask_seed, holders, threshold)
        key_shares = shamir.split(self.masking_private_key, holders, threshold)
        sealed: list[SealedShares] = []
        for holder in holders:
            seed_value = shamir.encode_share(seed_shares[holder])
            key_value = shamir.encode_share(key_shares[holder])
            commitments = ShareCommitments(
                self_mask=share_commitment(round_number, "self_mask", dealer, holder, seed_value),
                masking_key=share_commitment(
                    round_number, "masking_key", dealer, holder, key_value
                ),
            )
            if holder == dealer:
                own_commitments = commitments
                self.held_self_mask_shares[holder] = seed_shares[holder]
                self.held_key_shares[holder] = key_shares[holder]
                continue
            channel_key, session = self.channels[holder]
            ciphertext = crypto.aead_encrypt(
                channel_key,
                seed_value + key_value,
                share_associated_data(session, dealer, holder, view_digest),
            )
            sealed.append(
                SealedShares(
                    dealer=dealer, holder=holder, ciphertext=ciphertext, commitments=commitments
                )
            )
        return sealed, own_commitments

    # -- masked_input -----------------------------------------------------------------------------

    def open(
        self, round_number: int, holder: int, sealed: SealedShares, view_digest: bytes
    ) -> None:
        """Open a pair of shares dealt to `holder` by a neighbour, check both against the
        dealer's commitments and keep them; raise on any fault (nothing is kept then)."""
        if sealed.holder != holder or sealed.dealer not in self.neighbours:
            raise MalformedMessage(
                f"share from {sealed.dealer} to {sealed.holder} is not for client "
                f"{holder} from one of its neighbours"
            )
        if sealed.dealer in self.held_self_mask_shares:
            raise MalformedMessage(f"two share messages from dealer {sealed.dealer}")
        channel_key, session = self.channels[sealed.dealer]
        plaintext = crypto.aead_decrypt(
            channel_key,
            sealed.ciphertext,
            share_associated_data(session, sealed.dealer, holder, view_digest),
        )
        if len(plaintext) != 2 * shamir.SHARE_BYTES:
            raise InvalidShare(f"shares from {sealed.dealer} have the wrong length")
        seed_value, key_value = plaintext[: shamir.SHARE_BYTES], plaintext[shamir.SHARE_BYTES :]
        committed = sealed.commitments
        if committed.self_mask != share_commitment(
            round_number, "self_mask", sealed.dealer, holder, seed_value
        ) or committed.masking_key != share_commitment(
            round_number, "masking_key", sealed.dealer, holder, key_value
        ):
            raise InvalidShare(f"shares from {sealed.dealer} do not match their commitments")
        try:
            self.held_self_mask_shares[sealed.dealer] = shamir.decode_share(seed_value)
            self.held_key_shares[sealed.dealer] = shamir.decode_share(key_value)
        except ValueError as error:
            raise InvalidShare(f"shares from {sealed.dealer}: {error}") from error

    def mask(
        self,
        round_number: int,
        quantized_input: npt.NDArray[np.uint32],
        mask_peers: list[int],
        modulus: int,
    ) -> npt.NDArray[np.uint32]:
        """y = q + PRG(b) + Σ_{v ∈ mask_peers} ±PRG(s_uv) mod `modulus` (a new array)."""
        assert self.own_keys and self.masking_private_key and self.self_mask_seed
        masking_key = crypto.private_key_from_bytes(self.masking_private_key)
        masked = quantized_input.copy()
        add_mask(masked, self.self_mask_seed, +1)
        for peer in mask_peers:
            seed = pairwise_mask_seed(
                round_number, masking_key, self.own_keys, self.neighbours[peer]
            )
            add_mask(masked, seed, pair_sign(self.own_keys.client_id, peer))
        if modulus < 2**32:
            masked &= np.uint32(modulus - 1)
        return masked

    def forget_private_keys(self) -> None:
        """The masks are sent: the private keys and seed now live only as shares, and no share
        is sealed or opened any more."""
        self.encryption_private_key = self.masking_private_key = self.self_mask_seed = None
        self.channels.clear()

    # -- unmask ---------------------------------------------------------------------------------

    def reveal(self, survivors: set[int], dropped: set[int]) -> list[RevealedShare]:
        """The self-mask share of each survivor and the masking-key share of each dropped
        peer, then forget every share held (the caller has checked the two sets)."""
        shares: list[RevealedShare] = [
            SelfMaskShare(owner=owner, value=shamir.encode_share(self.held_self_mask_shares[owner]))
            for owner in sorted(survivors)
        ]
        shares += [
            MaskingKeyShare(owner=owner, value=shamir.encode_share(self.held_key_shares[owner]))
            for owner in sorted(dropped)
        ]
        self.held_self_mask_shares.clear()
        self.held_key_shares.clear()
        return shares

    def wipe(self) -> None:
        """Forget every secret (the client gives the round up); public keys stay."""
        self.forget_private_keys()
        self.held_self_mask_shares.clear()
        self.held_key_shares.clear()

    # -- state between stages (protocol/state.py) -----------------------------------------------

    def state_fields(self) -> dict[str, Any]:
        """The keyring's part of `ClientState`, as keyword arguments.

        Nested parts are plain dicts: pydantic validates them with the whole state in one
        compiled pass (building each model in Python cost twice as much).
        """

        def peer(keys: PublicKeys) -> dict[str, Any]:
            return {
                "client_id": keys.client_id,
                "encryption_public_key": keys.encryption,
                "masking_public_key": keys.masking,
            }

        return {
            "encryption_private_key": self.encryption_private_key,
            "masking_private_key": self.masking_private_key,
            "self_mask_seed": self.self_mask_seed,
            "own_keys": None if self.own_keys is None else peer(self.own_keys),
            "neighbours": [peer(keys) for _, keys in sorted(self.neighbours.items())],
            "channels": [
                {"peer": client_id, "key": key, "session": session}
                for client_id, (key, session) in sorted(self.channels.items())
            ],
            "held_self_mask_shares": {
                dealer: shamir.encode_share(value)
                for dealer, value in sorted(self.held_self_mask_shares.items())
            },
            "held_key_shares": {
                dealer: shamir.encode_share(value)
                for dealer, value in sorted(self.held_key_shares.items())
            },
        }

    @classmethod
    def from_state(cls, state: ClientState) -> Keyring:
        """The keyring `state_fields` described."""

        def keys(peer: PeerKeys) -> PublicKeys:
            return PublicKeys(peer.client_id, peer.encryption_public_key, peer.masking_public_key)

        return cls(
            encryption_private_key=state.encryption_private_key,
            masking_private_key=state.masking_private_key,
            self_mask_seed=state.self_mask_seed,
            own_keys=None if state.own_keys is None else keys(state.own_keys),
            neighbours={peer.client_id: keys(peer) for peer in state.neighbours},
            channels={c.peer: (c.key, c.session) for c in state.channels},
            held_self_mask_shares={
                dealer: shamir.decode_share(value)
                for dealer, value in state.held_self_mask_shares.items()
            },
            held_key_shares={
                dealer: shamir.decode_share(value)
                for dealer, value in state.held_key_shares.items()
            },
        )
