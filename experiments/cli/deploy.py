"""`make deploy-demo`: the federation on Flower's real engine, on loopback, with TLS and node auth.

What it does, in order (every file under the work directory, default `runs/deploy-demo`):
1. writes one data directory per firm holding only that firm's table and the public manifest,
   and a `public/` directory with the manifest alone for the server;
2. generates, with `cryptography`, a self-signed CA and a SuperLink certificate for 127.0.0.1,
   and one ECDSA P-384 key pair per SuperNode (OpenSSH format, as Flower expects);
3. starts a SuperLink with TLS, SuperNode authentication and a database (`state.db`: the
   registrations survive a restart), registers each SuperNode's public key through the Control
   API (`flwr supernode register`), starts one SuperNode per firm with its own data directory
   and private key, each under the firm-side supervisor `experiments.cli.supervise` (restarts
   it whenever it exits);
4. starts one more SuperNode whose key was never registered, which the SuperLink must refuse;
5. runs the federation with our secure aggregation through `flwr run`, waits for
   `federation.json`, and prints the final metrics;
6. stops every process it started, by PID (process groups, SIGTERM then SIGKILL), also when a
   step fails.
docs/DEPLOY.md shows the same steps across machines.

By default the rounds run in the malicious-server mode (protocol/SPEC.md §10): in step 2 each
firm also makes a long-term Ed25519 identity key, registered next to its SuperNode key; the
coordinator publishes the identity manifest beside `world.json` (the deployment's public file,
one copy in each firm's directory), and each SuperNode's node config names its own identity
key and the manifest (experiments/cli/deploy_identities.py). `--secagg-mode semi-honest` runs
without them.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from rich.console import Console

from experiments.cli.deploy_identities import DemoIdentities, make_identities
from server.rounds import RESULT_FILE

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
"""Where this environment's `flower-superlink`, `flower-supernode` and `flwr` are."""
_console = Console(stderr=True)


# -- certificates and keys ---------------------------------------------------------------------


def _write_private_key(key: ec.EllipticCurvePrivateKey, path: Path, openssh: bool) -> None:
    encoded = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH if openssh else serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(encoded)
    path.chmod(0o600)


def make_tls_material(directory: Path, host: str = "127.0.0.1") -> dict[str, Path]:
    """A throwaway CA and a server certificate for `host`, valid for one day."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fedscore demo CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP384R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(host)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = {
        "ca": directory / "ca.crt",
        "cert": directory / "server.pem",
        "key": directory / "server.key",
    }
    paths["ca"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    _write_private_key(server_key, paths["key"], openssh=False)
    return paths


def make_node_keys(directory: Path, name: str) -> tuple[Path, Path]:
    """A SuperNode's ECDSA P-384 authentication key pair, OpenSSH encoded."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP384R1())
    private, public = directory / f"{name}.key", directory / f"{name}.pub"
    _write_private_key(key, private, openssh=True)
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        + b"\n"
    )
    return private, public


# -- processes ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, timeout: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process {process.pid} exited with {process.returncode}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:g} s")


@dataclass
class Processes:
    """Every process the demo starts, each in its own session so its group can be stopped."""

    log_dir: Path
    env: dict[str, str]
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, name: str, command: list[str], append: bool = False) -> subprocess.Popen[bytes]:
        """`command` in its own session, output to `<log_dir>/<name>.log` (after what is there
        when `append`: a restarted process)."""
        log = open(self.log_dir / f"{name}.log", "ab" if append else "wb")  # noqa: SIM115
        _console.print(f"[dim]$ {shlex.join(command)}[/]")
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )
        self.started.append(process)
        return process

    def run(self, name: str, command: list[str], timeout: float) -> str:
        """A short command (register, run): waits for it, raises with its output on failure."""
        process = self.start(name, command)
        try:
            process.wait(timeout=timeout)
        finally:
            if process.poll() is None:
                self.stop(process)
        output = (self.log_dir / f"{name}.log").read_text(errors="replace")
        if process.returncode != 0:
            raise RuntimeError(f"`{shlex.join(command)}` failed ({process.returncode}):\n{output}")
        return output

    @staticmethod
    def stop(process: subprocess.Popen[bytes], grace: float = 5.0) -> None:
        """SIGTERM to the process group, SIGKILL after `grace` seconds."""
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
            if process.poll() is not None:
                break
            try:
                os.killpg(process.pid, sig)  # the group: flwr-serverapp/-clientapp children too
            except ProcessLookupError:
                break
            try:
                process.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        # Children that outlived their leader still carry its process group id.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            time.sleep(0.2)

    def stop_all(self) -> None:
        for process in reversed(self.started):
            self.stop(process)


# -- the demo ----------------------------------------------------------------------------------


def _firm_directories(work: Path, n_firms: int, seed: int) -> tuple[list[tuple[str, Path]], Path]:
    """One directory per firm (manifest + its own table only) and a manifest-only `public/`."""
    from experiments.world.datasets import load_german_credit
    from experiments.world.tables import write_world

    world_dir = work / "world"
    write_world(load_german_credit(n_firms=n_firms, seed=seed), world_dir)
    public = work / "public"
    public.mkdir(parents=True, exist_ok=True)
    shutil.copy(world_dir / "world.json", public / "world.json")
    firms = json.loads((world_dir / "world.json").read_text())["firms"]
    directories = []
    for firm in firms:
        own = work / "nodes" / firm
        (own / "firms").mkdir(parents=True, exist_ok=True)
        shutil.copy(world_dir / "world.json", own / "world.json")
        shutil.copy(world_dir / "firms" / f"{firm}.parquet", own / "firms" / f"{firm}.parquet")
        directories.append((firm, own))
    return directories, public


@dataclass
class Deployment:
    """One SuperLink (TLS, SuperNode authentication, a database) and the firms' SuperNodes, on
    loopback; every process through `processes`, so `processes.stop_all()` ends them all."""

    work: Path
    firms: dict[str, Path]
    """Firm -> its data directory (manifest + its own table)."""
    public: Path
    processes: Processes
    tls: dict[str, Path]
    port: int
    identities: DemoIdentities
    """What the malicious mode adds to the node and run configs (empty in semi-honest mode)."""
    superlink: subprocess.Popen[bytes] | None = None
    supernodes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    """Firm -> its SuperNode's supervisor (or the SuperNode itself, unsupervised)."""

    @classmethod
    def prepare(
        cls, work: Path, n_firms: int, seed: int = 0, secagg_mode: str = "malicious"
    ) -> Deployment:
        """Wipe `work`, write the firms' data (and identities in malicious mode), a CA and the
        `flwr` connection `demo`."""
        work = work.resolve()
        if work.exists():
            shutil.rmtree(work)
        (work / "logs").mkdir(parents=True)
        env = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "FLWR_HOME": str(work / "flwr-home"),
            "PYTHONUNBUFFERED": "1",
            # Apps run in this environment: never let Flower `uv sync` the project's dependencies
            # into a fresh one (that would fetch another torch, a CUDA build, gigabytes).
            "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
        }
        firms, public = _firm_directories(work, n_firms, seed)
        identities = make_identities(work, firms, public, secagg_mode)
        tls = make_tls_material(work / "tls")
        port = free_port()
        (work / "flwr-home").mkdir()
        (work / "flwr-home" / "config.toml").write_text(
            f'[superlink]\ndefault = "demo"\n\n[superlink.demo]\naddress = "127.0.0.1:{port}"\n'
            f'root-certificates = "{tls["ca"]}"\n'
        )
        return cls(work, dict(firms), public, Processes(work / "logs", env), tls, port, identities)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start_superlink(self) -> subprocess.Popen[bytes]:
        """Its state (registered keys, runs) lives in `state.db`: it survives a restart."""
        self.superlink = self.processes.start(
            "superlink",
            [
                str(BIN / "flower-superlink"),
                *("--ssl-ca-certfile", str(self.tls["ca"])),
                *("--ssl-certfile", str(self.tls["cert"])),
                *("--ssl-keyfile", str(self.tls["key"])),
                "--enable-supernode-auth",
                "--disable-runtime-dependency-installation",
                *("--host", "127.0.0.1", "--port", str(self.port)),
                *("--database", str(self.work / "state.db")),
            ],
            append=True,
        )
        wait_for_port(self.port, 60, self.superlink)
        return self.superlink

    def register(self, firm: str) -> Path:
        """A key pair for `firm`'s SuperNode, its public half registered; the private key."""
        private, public_key = make_node_keys(self.work / "node-keys", firm)
        self.flwr(f"register-{firm}", "supernode", "register", str(public_key), "demo")
        return private

    def start_supernode(
        self, firm: str, *, supervised: bool = True, extra: tuple[str, ...] = ()
    ) -> subprocess.Popen[bytes]:
        """`firm`'s SuperNode (under `experiments.cli.supervise` unless `supervised=False`)."""
        data_dir = self.firms.get(firm, next(iter(self.firms.values())))
        node_config = f"world-dir='{data_dir}' firm='{data_dir.name}'"
        node_config += self.identities.node_config.get(firm, "")  # the intruder has none
        command = [
            str(BIN / "flower-supernode"),
            *("--superlink", self.address, "--root-certificates", str(self.tls["ca"])),
            *("--auth-supernode-private-key", str(self.work / "node-keys" / f"{firm}.key")),
            *("--node-config", node_config),
            *("--port", str(free_port())),  # each SuperNode on a host needs its own
            *extra,
        ]
        if supervised:
            command = [sys.executable, "-m", "experiments.cli.supervise", "--", *command]
        process = self.processes.start(f"supernode-{firm}", command, append=True)
        self.supernodes[firm] = process
        return process

    def flwr(self, name: str, *args: str, timeout: float = 120) -> str:
        """One `flwr` command against the SuperLink; its output."""
        return self.processes.run(name, [str(BIN / "flwr"), *args], timeout=timeout)

    def submit(self, run_config: str, name: str = "flwr-run") -> int:
        """`flwr run` of the project (with the secagg mode's entries added); the run id."""
        run_config = f"{run_config} {self.identities.run_config}"
        output = self.flwr(name, "run", str(PROJECT_ROOT), "demo", "--run-config", run_config)
        found = re.search(r"Successfully started run (\d+)", output)
        if found is None:
            raise RuntimeError(f"no run id in the output of `flwr run`:\n{output}")
        return int(found.group(1))

    def server_log(self, run_id: int) -> str:
        """What the ServerApp printed (`flwr log <run id> demo --show`)."""
        return self.flwr(f"log-{run_id}", "log", str(run_id), "demo", "--show")


def run_demo(
    work: Path,
    n_firms: int = 3,
    rounds: int = 2,
    timeout: float = 240.0,
    seed: int = 0,
    secagg_mode: str = "malicious",
) -> dict[str, Any]:
    """The whole demo; returns `federation.json`'s content. Stops all it started, always."""
    deployment = Deployment.prepare(work, n_firms, seed, secagg_mode)
    run_dir = deployment.work / "run"
    try:
        superlink = deployment.start_superlink()
        for firm in deployment.firms:
            deployment.register(firm)
            deployment.start_supernode(firm)
        # A SuperNode whose key was never registered: SuperNode authentication must refuse it.
        make_node_keys(deployment.work / "node-keys", "intruder")
        intruder = deployment.start_supernode(
            "intruder", supervised=False, extra=("--max-retries", "2")
        )
        deployment.submit(
            f"world-dir='{deployment.public}' run-dir='{run_dir}' rounds={rounds} "
            f"secagg='ours' min-clients={n_firms} timeout=60.0 weight-scale=10000.0"
        )
        deadline = time.monotonic() + timeout
        result_file = run_dir / RESULT_FILE
        while not result_file.is_file():
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"no {result_file} after {timeout:g} s; see the logs in {work / 'logs'}"
                )
            if superlink.poll() is not None:
                raise RuntimeError(f"the SuperLink exited; see {work / 'logs' / 'superlink.log'}")
            time.sleep(0.5)
        result: dict[str, Any] = json.loads(result_file.read_text())
        intruder_log = (deployment.work / "logs" / "supernode-intruder.log").read_text(
            errors="replace"
        )
        result["intruder_refused"] = (
            intruder.poll() is not None and intruder.returncode != 0
        ) or "Failed to activate SuperNode" in intruder_log
        return result
    finally:
        deployment.processes.stop_all()


def main(
    work: Annotated[Path, typer.Option(help="Work directory (wiped first).")] = Path(
        "runs/deploy-demo"
    ),
    firms: Annotated[int, typer.Option(min=2, max=8, help="SuperNodes, one per firm.")] = 3,
    rounds: Annotated[
        int, typer.Option(min=1, help="Rounds; from 2 on, each prepares the next (pipelined).")
    ] = 2,
    secagg_mode: Annotated[
        str,
        typer.Option(
            help="'malicious' (firms sign with identity keys, SPEC §10) or 'semi-honest'."
        ),
    ] = "malicious",
) -> None:
    """Run the deployment demo and print the final metrics."""
    if secagg_mode not in ("malicious", "semi-honest"):
        raise typer.BadParameter(
            f"--secagg-mode must be malicious or semi-honest, got {secagg_mode}"
        )
    result = run_demo(work, firms, rounds, secagg_mode=secagg_mode)
    last = result["history"][-1]
    evaluation = last.get("evaluation", {})
    Console().print(
        f"[bold green]deployment demo done[/]: {rounds} {secagg_mode} round(s), "
        f"{last['contributors']}/{last['invited']} firms in the secure sum, "
        f"held-out loss {evaluation.get('loss', float('nan')):.4f}, "
        f"held-out Brier {evaluation.get('brier', float('nan')):.4f}; unregistered SuperNode "
        f"{'refused' if result['intruder_refused'] else 'NOT REFUSED'}; "
        f"transcript in {work / 'run' / 'transcript.jsonl'}"
    )


if __name__ == "__main__":
    typer.run(main)
