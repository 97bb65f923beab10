"""The deployment demo on loopback: TLS, SuperNode authentication, our SecAgg via `flwr run`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from experiments.cli.deploy import make_tls_material, run_demo
from experiments.cli.deploy_identities import make_identities


@pytest.mark.slow
def test_deployment_demo_runs_malicious_mode_rounds_and_leaves_no_process(
    tmp_path: Path, reap_started_processes: Callable[[], set[int]]
) -> None:
    # Execute: two rounds, so round 2 is prepared inside round 1's messages (SPEC.md §9) and
    # each SuperNode keeps two rounds' sessions in its own Context across messages; the
    # default mode is the malicious one (SPEC.md §10): every firm signs with its identity key
    result = run_demo(tmp_path / "demo", n_firms=3, rounds=2)
    # Assert: every firm in both secure sums, a transcript of five stages for each round
    assert result["settings"]["secagg-mode"] == "malicious"
    assert [(r["invited"], r["contributors"]) for r in result["history"]] == [(3, 3), (3, 3)]
    assert result["intruder_refused"]  # SuperNode authentication kept the unregistered key out
    assert result["history"][-1]["evaluation"]["n"] > 0
    entries = [
        json.loads(line)
        for line in (tmp_path / "demo" / "run" / "transcript.jsonl").read_text().splitlines()
    ]
    # rounds 1 and 2 train; round 3 only scores the final model, also through the secure sum
    for round_number in (1, 2, 3):
        assert {e["stage"] for e in entries if e["round"] == round_number} == {
            "advertise_keys",
            "share_keys",
            "masked_input",
            "consistency_check",
            "unmask",
        }
    signed = [e for e in entries if e["message_type"] == "ConsistencyCheckResponse"]
    assert len(signed) == 9  # three firms signed each round's survivor set
    # Assert: the manifest is public, each firm's identity key readable by its owner only
    manifest = json.loads((tmp_path / "demo" / "public" / "identities.json").read_text())
    assert sorted(manifest["keys"]) == ["1", "2", "3"]
    keys = sorted((tmp_path / "demo" / "node-keys").glob("*.identity.pem"))
    assert len(keys) == 3 and all(oct(k.stat().st_mode & 0o777) == "0o600" for k in keys)
    assert reap_started_processes() == set()  # run_demo stopped all it started


def test_tls_material_is_a_ca_and_a_server_certificate_for_loopback(tmp_path: Path) -> None:
    # Prepare
    from cryptography import x509

    # Execute
    paths = make_tls_material(tmp_path)
    # Assert
    ca = x509.load_pem_x509_certificate(paths["ca"].read_bytes())
    server = x509.load_pem_x509_certificate(paths["cert"].read_bytes())
    assert server.issuer == ca.subject
    server.verify_directly_issued_by(ca)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "127.0.0.1" in [str(ip) for ip in names.get_values_for_type(x509.IPAddress)]
    assert oct(paths["key"].stat().st_mode & 0o777) == "0o600"


def test_demo_identities_are_a_key_per_firm_and_the_same_manifest_everywhere(
    tmp_path: Path,
) -> None:
    # Prepare
    from flwr.app import Context, RecordDict

    from clients.secagg import node_identity
    from protocol import identity_public_key
    from server.identities import read_manifest

    firms = [(name, tmp_path / "nodes" / name) for name in ("payments", "travel")]
    for _, directory in firms:
        directory.mkdir(parents=True)
    (tmp_path / "public").mkdir()
    # Execute
    identities = make_identities(tmp_path, firms, tmp_path / "public", "malicious")
    # Assert: each firm's node config loads its own identity, listed in one manifest
    public = read_manifest(tmp_path / "public" / "identities.json")
    assert "secagg-mode='malicious'" in identities.run_config
    for client_id, (firm, directory) in enumerate(firms, start=1):
        assert read_manifest(directory / "identities.json") == public
        key_file = tmp_path / "node-keys" / f"{firm}.identity.pem"
        assert f"identity-key='{key_file}'" in identities.node_config[firm]
        node_config = {
            "identity-key": str(key_file),
            "identity-manifest": str(directory / "identities.json"),
        }
        context = Context(1, 1, node_config, RecordDict(), {})  # type: ignore[arg-type]
        identity = node_identity(context)
        assert identity is not None
        assert public.client_id_of(identity_public_key(identity.key)) == client_id
    semi = make_identities(tmp_path, firms, tmp_path / "public", "semi-honest")
    assert semi.node_config == {"payments": "", "travel": ""}
