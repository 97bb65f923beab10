"""The firm-side supervisor: restarts on any exit, gives up on a command refused for good."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from experiments.cli.supervise import supervise

PROJECT_ROOT = Path(__file__).resolve().parents[3]


def test_a_refused_node_is_started_again_until_it_stays_up(tmp_path: Path) -> None:
    # Prepare: refused twice (status 1, as Flower while the old session is active), then it
    # exits with 0 (as after a SuperLink restart), then it is accepted and runs
    starts = tmp_path / "starts"
    script = (
        f"echo x >> {starts}; n=$(wc -l < {starts}); "
        'if [ "$n" -le 2 ]; then exit 1; elif [ "$n" -eq 3 ]; then exit 0; else exec sleep 60; fi'
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "experiments.cli.supervise",
            "--delay",
            "0.2",
            "--",
            "sh",
            "-c",
            script,
        ],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not (starts.is_file() and len(starts.read_text().split()) >= 4):
            assert time.monotonic() < deadline, "the supervisor did not start it a fourth time"
            time.sleep(0.1)
        time.sleep(0.5)
        # Execute: the operator stops the supervisor
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    # Assert: four starts, the last one still running until the supervisor stopped it
    assert status == 0
    assert len(starts.read_text().split()) == 4
    assert process.stderr is not None
    said = process.stderr.read().decode()
    assert "exited with status 1" in said and "exited with status 0" in said


def test_a_key_refused_for_good_makes_it_give_up_with_status_1() -> None:
    # Execute
    status = supervise(["sh", "-c", "exit 1"], delay=0.1, max_delay=0.2, give_up_after=1.0)
    # Assert
    assert status == 1
