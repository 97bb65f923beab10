"""`flwr run .` end to end with the local simulation connection, as docs/DEPLOY.md describes it.

Flower's `local` connection starts a managed SuperLink in simulation mode, detached in its own
session (`start_new_session`), and leaves it running after `flwr run` returns; it is then no
descendant of pytest. Every process of this test carries the test's own `FLWR_HOME` in its
environment (the CLI, the SuperLink it spawns, the SuperExec, `flwr-simulation`, Ray), so the
test finds them by that marker among the PIDs that did not exist before it began, and stops
them by PID, pass or fail. It never reads or writes the user's ~/.flwr, and it gives the
managed SuperLink free ports of its own, so it can neither reuse nor disturb a SuperLink that
is already running on Flower's default local port (39091).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from experiments.cli.procfs import all_pids, is_live, parent, stop_pids

PROJECT_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.prefix) / "bin"  # the project's .venv, which runs pytest
CITIZENS = 2_000
ROUNDS = 2
RUN_TIMEOUT = 240.0  # seconds; a run takes well under a minute on two cores


def _cmdline(pid: int) -> bytes:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return b""


def _carries(pid: int, marker: bytes, home: bytes) -> bool:
    """Whether the process's environment holds `marker` or its command line names `home`."""
    proc = Path("/proc") / str(pid)
    try:
        if marker in (proc / "environ").read_bytes().split(b"\0"):
            return True
        return home in (proc / "cmdline").read_bytes()
    except OSError:
        return False  # exited, or not ours to read


@dataclass
class LocalFlower:
    """A private Flower home and the processes started under it since `before`."""

    home: Path
    env: dict[str, str]
    before: frozenset[int]

    def started(self) -> set[int]:
        """Live processes that are new since the test began and run under this home."""
        new = {pid for pid in all_pids() - self.before if is_live(pid)}
        marker = f"FLWR_HOME={self.home}".encode()
        ours = {pid for pid in new if _carries(pid, marker, str(self.home).encode())}
        # Also any new descendant of those, should one have dropped the environment.
        grew = True
        while grew:
            below = {pid for pid in new - ours if parent(pid) in ours}
            grew = bool(below)
            ours |= below
        return ours

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM every started process, SIGKILL what is left after `grace` seconds."""
        for _ in range(3):  # a dying parent may have spawned one more child meanwhile
            pids = self.started()
            if not pids:
                return
            stop_pids(pids, grace)
            time.sleep(0.2)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def local_flower(tmp_path: Path) -> Iterator[LocalFlower]:
    """An isolated FLWR_HOME whose `local` connection is a managed simulation SuperLink."""
    home = tmp_path / "flwr-home"
    home.mkdir()
    (home / "config.toml").write_text(
        '[superlink]\ndefault = "local"\n\n[superlink.local]\naddress = ":local:"\n'
    )
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "FLWR_HOME": str(home),
        # Otherwise the managed SuperLink uv-syncs the app's dependencies (another torch).
        "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
        "FLWR_DISABLE_UPDATE_CHECK": "1",
        # The managed SuperLink listens here instead of Flower's fixed defaults.
        "FLWR_LOCAL_SUPERLINK_HTTP_API_PORT": str(_free_port()),
        "FLWR_LOCAL_CONTROL_API_PORT": str(_free_port()),
    }
    env.pop("RAY_ADDRESS", None)  # the simulation starts a Ray of its own
    flower = LocalFlower(home, env, frozenset(all_pids()))
    try:
        yield flower
    finally:
        flower.stop()


def _superlink_log(home: Path) -> str:
    log = home / "local-superlink" / "superlink.log"
    return log.read_text()[-4000:] if log.exists() else "(no superlink.log)"


@pytest.mark.slow
@pytest.mark.usefixtures("reap_started_processes")
def test_flwr_run_dot_runs_a_secure_federation_on_the_local_simulation_superlink(
    tmp_path: Path, local_flower: LocalFlower
) -> None:
    # Prepare: a small world, one simulated SuperNode per firm
    from experiments.world.synthetic import generate_world
    from experiments.world.tables import write_world

    if not (VENV_BIN / "flwr").exists():
        pytest.skip(f"no flwr in {VENV_BIN}")
    world_dir, run_dir = tmp_path / "world", tmp_path / "run"
    write_world(generate_world(CITIZENS, seed=0), world_dir)
    n_firms = len(json.loads((world_dir / "world.json").read_text())["firms"])
    command = [
        str(VENV_BIN / "flwr"),
        "run",
        ".",
        "local",
        "--stream",
        "--federation-config",
        f"num-supernodes={n_firms}",
        "--run-config",
        f"world-dir='{world_dir}' run-dir='{run_dir}' rounds={ROUNDS} secagg='ours'",
    ]
    # Execute
    try:
        done = subprocess.run(
            command,
            cwd=PROJECT_ROOT,
            env=local_flower.env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
        # Assert: the run went through the managed SuperLink of this test's home
        report = (
            f"flwr run exited {done.returncode}\n--- stdout\n{done.stdout[-4000:]}\n"
            f"--- stderr\n{done.stderr[-4000:]}\n--- superlink.log\n"
            f"{_superlink_log(local_flower.home)}"
        )
        assert done.returncode == 0, report
        superlink = [p for p in local_flower.started() if b"flower-superlink" in _cmdline(p)]
        assert len(superlink) == 1, report  # the detached SuperLink outlived `flwr run`
        # Assert: both rounds, every firm in the secure sum, a transcript, all under run-dir
        assert (run_dir / "federation.json").exists(), report
        result = json.loads((run_dir / "federation.json").read_text())
        history = result["history"]
        assert [r["round"] for r in history] == [1, 2]
        assert [r["contributors"] for r in history] == [n_firms] * ROUNDS
        assert [r["invited"] for r in history] == [n_firms] * ROUNDS
        assert all(r["evaluation"]["n"] > 0 for r in history)
        assert result["settings"]["secagg"] == "ours"
        assert (run_dir / "transcript.jsonl").stat().st_size > 0
        assert (run_dir / "final_weights.npy").exists()
        # Assert: Flower kept to the private home (the app is installed there, not in ~/.flwr)
        assert any((local_flower.home / "apps").iterdir())
    finally:
        local_flower.stop()
    # Assert: nothing this test started is still running
    assert local_flower.started() == set()
