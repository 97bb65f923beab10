"""The deploy demo's identities for the malicious-server mode (protocol/SPEC.md §10).

Each firm makes a long-term Ed25519 identity key next to its SuperNode authentication key (in
`node-keys/`, mode 0600); the coordinator publishes the manifest of their public halves beside
`world.json` (`public/identities.json`, the deployment's public file) and each firm keeps a copy
in its own directory, as if sent out of band. `make_identities` returns what the node and run
configs of `experiments/cli/deploy.py` then add. docs/DEPLOY.md §2b does the same by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import IdentityManifest, generate_identity
from server.identities import write_identity_key, write_manifest


@dataclass(frozen=True)
class DemoIdentities:
    """What the malicious mode adds to the demo's command lines."""

    node_config: dict[str, str]
    """Firm -> the node-config entries naming its identity key and its copy of the manifest."""
    run_config: str
    """The run-config entries: the mode, and the manifest's path on the coordinator."""


def make_identities(
    work: Path, firms: list[tuple[str, Path]], public: Path, secagg_mode: str
) -> DemoIdentities:
    """Each firm's identity key next to its SuperNode key, and the manifest of them (client
    ids 1.. in firm order) in `public/` and in every firm's directory, as if sent out of band."""
    if secagg_mode == "semi-honest":
        return DemoIdentities({firm: "" for firm, _ in firms}, "secagg-mode='semi-honest'")
    keys: dict[int, Ed25519PrivateKey] = {}
    key_files: dict[str, Path] = {}
    for client_id, (firm, _) in enumerate(firms, start=1):
        keys[client_id] = generate_identity()
        key_files[firm] = work / "node-keys" / f"{firm}.identity.pem"
        write_identity_key(keys[client_id], key_files[firm])
    manifest = IdentityManifest.of("fedscore-deploy-demo", keys)
    write_manifest(manifest, public / "identities.json")
    node_config = {}
    for firm, data_dir in firms:
        write_manifest(manifest, data_dir / "identities.json")
        node_config[firm] = (
            f" identity-key='{key_files[firm]}' identity-manifest='{data_dir / 'identities.json'}'"
        )
    run_config = f"secagg-mode='malicious' identity-manifest='{public / 'identities.json'}'"
    return DemoIdentities(node_config, run_config)
