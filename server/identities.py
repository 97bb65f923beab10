"""The files of the malicious mode's identities: each firm's key, and the public manifest.

A firm's identity key is an Ed25519 private key in PKCS#8 PEM (what `openssl genpkey -algorithm
ed25519` writes), readable by its owner only. The manifest is `protocol.IdentityManifest` as
JSON: the federation's name and each firm's client id -> raw public key (base64). In a
deployment each firm makes its own key and registers the public half out of band, next to its
SuperNode authentication key (docs/DEPLOY.md); in simulation (`fedscore run`, the federation
benchmark) `simulated_identities` makes them all in the run directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from clients import records as R
from protocol import IdentityManifest, generate_identity

MANIFEST_FILE = "manifest.json"
KEYS_DIR = "keys"


def write_identity_key(key: Ed25519PrivateKey, path: Path) -> None:
    """The key as PKCS#8 PEM, created with mode 0600 (never readable by anyone else)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    encoded = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(encoded)


def write_manifest(manifest: IdentityManifest, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(manifest.model_dump_json(indent=2) + "\n")


def read_manifest(path: str | Path) -> IdentityManifest:
    """The manifest at `path`; a missing or malformed file is an error naming the setting."""
    try:
        return IdentityManifest.model_validate_json(Path(path).read_bytes())
    except (OSError, ValueError) as error:
        raise ValueError(f"identity-manifest {str(path)!r} does not load: {error}") from error


def simulated_identities(
    directory: Path, partitions: Iterable[int], federation: str
) -> tuple[Path, dict[str, str]]:
    """A fresh identity for each simulated node (partition p is client id p + 1): keys in
    `directory/keys/<p>.pem`, the manifest in `directory/manifest.json`. Returns the manifest's
    path (the server's `identity-manifest`) and the ClientApp defaults that point each node at
    its key and the manifest."""
    keys = {partition + 1: generate_identity() for partition in partitions}
    for client_id, key in keys.items():
        write_identity_key(key, directory / KEYS_DIR / f"{client_id - 1}.pem")
    manifest_path = directory / MANIFEST_FILE
    write_manifest(IdentityManifest.of(federation, keys), manifest_path)
    defaults = {
        R.IDENTITY_KEY: str(directory / KEYS_DIR),
        R.IDENTITY_MANIFEST: str(manifest_path),
    }
    return manifest_path, defaults
