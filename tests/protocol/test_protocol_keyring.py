"""A client's keyring: what it forgets, and that it never prints its secrets."""

from __future__ import annotations

import numpy as np

from protocol import SecAggClient, SecAggConfig, SecAggServer
from protocol.keyring import Keyring


def _secrets(keyring: Keyring) -> list[bytes]:
    return [
        secret
        for secret in (
            keyring.encryption_private_key,
            keyring.masking_private_key,
            keyring.self_mask_seed,
        )
        if secret is not None
    ]


def test_a_keyring_and_its_client_never_print_their_secrets() -> None:
    # Prepare: a client that has just advertised its keys holds both private keys and b
    client = SecAggClient(1, SecAggConfig(num_clients=3), np.zeros(2))
    client.handle(SecAggServer(SecAggConfig(num_clients=3), 2).start([1, 2, 3])[1])
    keyring = client._keyring
    # Execute
    printed = repr(keyring) + str(keyring) + repr(client)
    # Assert
    assert len(_secrets(keyring)) == 3
    for secret in _secrets(keyring):
        assert secret.hex() not in printed and repr(secret) not in printed


def test_wiping_a_keyring_forgets_every_secret_but_keeps_public_keys() -> None:
    # Prepare
    keyring = Keyring()
    keyring.generate_keys(7)
    keyring.held_self_mask_shares[7] = 5
    keyring.held_key_shares[7] = 6
    keyring.channels[8] = (b"k" * 32, b"session")
    own_keys = keyring.own_keys
    # Execute
    keyring.wipe()
    # Assert
    assert _secrets(keyring) == []
    assert not keyring.channels and not keyring.held_self_mask_shares
    assert not keyring.held_key_shares
    assert keyring.own_keys == own_keys
