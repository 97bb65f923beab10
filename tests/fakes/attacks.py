"""An active server's two classic attacks on secure aggregation, as code: never in production.

Each attack drives the real client state machines with requests an honest `SecAggServer` would
never send, and then does the server-side arithmetic that turns what the victim revealed into
its input. The tests in tests/protocol/test_protocol_active_server.py show they recover a
victim's input in the semi-honest mode (SPEC.md §1 states that limit) and fail in the
malicious mode.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from protocol import crypto, shamir
from protocol.masking import (
    PublicKeys,
    add_mask,
    pair_sign,
    pairwise_mask_seed,
    share_associated_data,
    share_channel,
)
from protocol.messages import (
    AdvertiseKeysResponse,
    MaskedInputRequest,
    MaskedInputResponse,
    PeerKeys,
    SealedShares,
    ShareCommitments,
    ShareKeysRequest,
    ShareKeysResponse,
    share_commitment,
)


def public_keys(response: AdvertiseKeysResponse) -> PublicKeys:
    """A client's advertised keys, as the server holds them."""
    return PublicKeys(response.sender, response.encryption_public_key, response.masking_public_key)


def strip_masks(
    round_number: int,
    masked_vector: bytes,
    self_mask_seed: bytes,
    victim: PublicKeys,
    pair_seeds: Mapping[int, bytes],
) -> npt.NDArray[np.uint32]:
    """y_v - PRG(b_v) - Σ_w ±PRG(s_vw): the victim's encoded input, once the server holds its
    self-mask seed and the seed of every pairwise mask it added."""
    words = np.frombuffer(masked_vector, dtype="<u4").astype(np.uint32)
    add_mask(words, self_mask_seed, -1)
    for peer, seed in pair_seeds.items():
        add_mask(words, seed, -pair_sign(victim.client_id, peer))
    return words


def pair_seeds_from_masking_key(
    round_number: int, masking_key: bytes, victim: PublicKeys, peers: Iterable[PublicKeys]
) -> dict[int, bytes]:
    """Every pairwise-mask seed of the victim, from its rebuilt masking private key."""
    private = crypto.private_key_from_bytes(masking_key)
    return {
        peer.client_id: pairwise_mask_seed(round_number, private, victim, peer) for peer in peers
    }


@dataclass
class _FakePeer:
    keys: PublicKeys
    encryption_private: bytes
    masking_private: bytes


@dataclass
class KeySubstitution:
    """The server swaps every neighbour's public keys in the victim's share-keys request for key
    pairs it made itself, then forges those neighbours' sealed shares for the victim.

    Feed it the messages of a round in transit (`alter_request`, `observe_response`); once the
    victim has sent its masked input, `recover()` returns the victim's encoded input.
    """

    victim: int
    round_number: int
    threshold: int
    victim_keys: PublicKeys | None = None
    fakes: dict[int, _FakePeer] = field(default_factory=dict)
    seed_shares: dict[int, int] = field(default_factory=dict)
    masked_vector: bytes | None = None

    def alter_request(self, request: object) -> object:
        if isinstance(request, ShareKeysRequest) and request.receiver == self.victim:
            return self._substitute_keys(request)
        if isinstance(request, MaskedInputRequest) and request.receiver == self.victim:
            return self._forge_shares(request)
        return request

    def observe_response(self, response: object) -> None:
        if getattr(response, "sender", None) != self.victim:
            return
        if isinstance(response, AdvertiseKeysResponse):
            self.victim_keys = public_keys(response)
        elif isinstance(response, ShareKeysResponse):
            self._open_victim_shares(response)
        elif isinstance(response, MaskedInputResponse):
            self.masked_vector = response.masked_vector

    def _substitute_keys(self, request: ShareKeysRequest) -> ShareKeysRequest:
        neighbours = []
        for peer in request.neighbours:
            encryption, masking = crypto.generate_private_key(), crypto.generate_private_key()
            keys = PublicKeys(
                peer.client_id, crypto.public_key(encryption), crypto.public_key(masking)
            )
            self.fakes[peer.client_id] = _FakePeer(
                keys, crypto.private_key_bytes(encryption), crypto.private_key_bytes(masking)
            )
            neighbours.append(  # the owner's signature, if any, cannot be forged: keep it
                PeerKeys(
                    client_id=peer.client_id,
                    encryption_public_key=keys.encryption,
                    masking_public_key=keys.masking,
                    signature=peer.signature,
                )
            )
        return request.model_copy(update={"neighbours": neighbours})

    def _channel(self, peer: int) -> tuple[bytes, bytes]:
        assert self.victim_keys is not None
        fake = self.fakes[peer]
        private = crypto.private_key_from_bytes(fake.encryption_private)
        return share_channel(self.round_number, private, fake.keys, self.victim_keys)

    def _open_victim_shares(self, response: ShareKeysResponse) -> None:
        for sealed in response.shares:
            if sealed.holder not in self.fakes:
                continue
            key, session = self._channel(sealed.holder)
            plaintext = crypto.aead_decrypt(
                key,
                sealed.ciphertext,
                share_associated_data(session, self.victim, sealed.holder),
            )
            self.seed_shares[sealed.holder] = shamir.decode_share(plaintext[: shamir.SHARE_BYTES])

    def _forge_shares(self, request: MaskedInputRequest) -> MaskedInputRequest:
        forged = []
        for peer in sorted(self.fakes):
            key, session = self._channel(peer)
            seed_value = key_value = shamir.encode_share(1)  # any field element will do
            associated = share_associated_data(session, peer, self.victim)
            forged.append(
                SealedShares(
                    dealer=peer,
                    holder=self.victim,
                    ciphertext=crypto.aead_encrypt(key, seed_value + key_value, associated),
                    commitments=ShareCommitments(
                        self_mask=share_commitment(
                            self.round_number, "self_mask", peer, self.victim, seed_value
                        ),
                        masking_key=share_commitment(
                            self.round_number, "masking_key", peer, self.victim, key_value
                        ),
                    ),
                )
            )
        return request.model_copy(update={"shares": forged})

    def recover(self) -> npt.NDArray[np.uint32]:
        """The victim's encoded input; raises if the attack did not get what it needs."""
        if self.victim_keys is None or self.masked_vector is None:
            raise AssertionError("the victim never sent its masked input")
        if len(self.seed_shares) < self.threshold:
            raise AssertionError(f"only {len(self.seed_shares)} shares of the victim's seed")
        seed = shamir.combine(self.seed_shares, self.threshold)
        pair_seeds = {
            peer: pairwise_mask_seed(
                self.round_number,
                crypto.private_key_from_bytes(fake.masking_private),
                fake.keys,
                self.victim_keys,
            )
            for peer, fake in self.fakes.items()
        }
        return strip_masks(
            self.round_number, self.masked_vector, seed, self.victim_keys, pair_seeds
        )
