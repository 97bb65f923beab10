"""A firm's identity for the malicious mode: read from its node config, never the run config."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flwr.app import Context, RecordDict

from clients import records as R
from clients.secagg import node_identity
from protocol import generate_identity, identity_public_key
from server.identities import simulated_identities, write_identity_key


def _context(
    node_config: dict[str, object], run_config: dict[str, object] | None = None
) -> Context:
    return Context(
        run_id=1,
        node_id=7,
        node_config=node_config,  # type: ignore[arg-type]
        state=RecordDict(),
        run_config=run_config or {},  # type: ignore[arg-type]
    )


@pytest.fixture
def identities(tmp_path: Path) -> dict[str, str]:
    _, defaults = simulated_identities(tmp_path / "ids", range(3), "identity-test")
    return defaults


def test_a_node_with_its_key_and_the_manifest_holds_its_identity(
    identities: dict[str, str],
) -> None:
    # Prepare: a deployed node names its own key file
    key_file = str(Path(identities[R.IDENTITY_KEY]) / "2.pem")
    context = _context(
        {R.IDENTITY_KEY: key_file, R.IDENTITY_MANIFEST: identities[R.IDENTITY_MANIFEST]}
    )
    # Execute
    identity = node_identity(context)
    # Assert: partition 2 is client 3 of the manifest
    assert identity is not None
    assert identity.manifest.client_id_of(identity_public_key(identity.key)) == 3


def test_a_simulated_node_finds_its_key_by_partition_in_the_defaults(
    identities: dict[str, str],
) -> None:
    # Execute
    identity = node_identity(_context({R.PARTITION_ID: 1}), identities)
    missing = node_identity(_context({R.PARTITION_ID: 5}), identities)
    # Assert: a simulated node without a key file holds no identity
    assert identity is not None
    assert identity.manifest.client_id_of(identity_public_key(identity.key)) == 2
    assert missing is None


def test_the_run_config_never_gives_a_node_an_identity(identities: dict[str, str]) -> None:
    # The server controls the run config: it must not pick a firm's trust anchor
    assert node_identity(_context({R.PARTITION_ID: 1}, run_config=identities)) is None


def test_no_identity_settings_mean_no_identity() -> None:
    assert node_identity(_context({R.PARTITION_ID: 0})) is None


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("key-only", "sets 'identity-key' but not 'identity-manifest'"),
        ("manifest-only", "sets 'identity-manifest' but not 'identity-key'"),
        ("directory", "is a directory: give the key file itself"),
        ("ecdsa", "holds a .*, expected an Ed25519 private key"),
        ("stranger", "does not list this node's identity key"),
        ("no-file", "does not load"),
    ],
)
def test_a_bad_identity_setting_is_an_error_naming_it(
    identities: dict[str, str], tmp_path: Path, fault: str, message: str
) -> None:
    # Prepare
    key_file = str(Path(identities[R.IDENTITY_KEY]) / "0.pem")
    manifest = identities[R.IDENTITY_MANIFEST]
    config = {R.IDENTITY_KEY: key_file, R.IDENTITY_MANIFEST: manifest}
    if fault == "key-only":
        del config[R.IDENTITY_MANIFEST]
    elif fault == "manifest-only":
        del config[R.IDENTITY_KEY]
    elif fault == "directory":
        config[R.IDENTITY_KEY] = identities[R.IDENTITY_KEY]
    elif fault == "ecdsa":
        other = tmp_path / "ecdsa.pem"
        other.write_bytes(
            ec.generate_private_key(ec.SECP384R1()).private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        config[R.IDENTITY_KEY] = str(other)
    elif fault == "stranger":
        write_identity_key(generate_identity(), tmp_path / "stranger.pem")
        config[R.IDENTITY_KEY] = str(tmp_path / "stranger.pem")
    else:
        config[R.IDENTITY_MANIFEST] = str(tmp_path / "nowhere.json")
    # Execute / Assert
    with pytest.raises(ValueError, match=message):
        node_identity(_context(config))  # type: ignore[arg-type]


def test_an_identity_key_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    write_identity_key(generate_identity(), tmp_path / "key.pem")
    assert oct((tmp_path / "key.pem").stat().st_mode & 0o777) == "0o600"


def test_a_worker_serving_many_nodes_reads_each_identity_once_and_shares_the_manifest(
    tmp_path: Path,
) -> None:
    # Prepare: a simulation engine's worker serves 100 nodes in turn (the federation
    # benchmark's size), more than a small bounded cache holds
    _, defaults = simulated_identities(tmp_path / "ids", range(100), "many-nodes")
    contexts = [_context({R.PARTITION_ID: p}) for p in range(100)]
    # Execute: two messages to each node, in turn
    first = [node_identity(c, defaults) for c in contexts]
    second = [node_identity(c, defaults) for c in contexts]
    # Assert: the second message finds what the first read, and all nodes share one manifest
    # (so each public key is parsed once per process for the signature checks)
    assert all(a is b for a, b in zip(first, second, strict=True))
    manifests = {id(identity.manifest) for identity in first if identity is not None}
    assert len(manifests) == 1
