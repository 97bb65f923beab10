"""A firm-side supervisor for `flower-supernode`: start it again whenever it exits.

Why a firm needs one (Flower 1.42, docs/DEPLOY.md "When things fail"):
- a SuperNode that crashed cannot come back at once: until its old session expires (two missed
  heartbeats of 30 s, so up to 60 s) the SuperLink refuses the same key with "[code: 2004]
  Failed to activate SuperNode" and the SuperNode exits with status 1, never retrying;
- after a SuperLink restart a SuperNode may exit by itself, with status 0 ("terminated
  gracefully"), so a supervisor that restarts only on failure would leave it down.
So it restarts on any exit, after a delay that doubles while starts keep failing quickly (from
`--delay` up to `--max-delay`), and gives up, with status 1, once they have failed quickly for
`--give-up-after` seconds (a key that was never registered is refused forever). systemd's
`Restart=always` with `RestartSec=5` does the same on a firm's server.

    python -m experiments.cli.supervise -- flower-supernode --superlink ... --node-config ...

SIGTERM or SIGINT stops the SuperNode (SIGTERM: it deactivates its session, so a restart is
accepted at once) and then the supervisor.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import Annotated

import typer

SETTLED = 30.0
"""A SuperNode that ran this long was accepted: its next failure starts the delays afresh."""


def _say(text: str) -> None:
    print(f"supervise: {text}", file=sys.stderr, flush=True)


def supervise(
    command: list[str], delay: float = 2.0, max_delay: float = 10.0, give_up_after: float = 300.0
) -> int:
    """Run `command` until told to stop; returns the supervisor's exit status."""
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        del signum, frame
        stopping = True  # `_wait` passes it on to the SuperNode

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return _keep_running(command, delay, max_delay, give_up_after, lambda: stopping)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _keep_running(
    command: list[str],
    delay: float,
    max_delay: float,
    give_up_after: float,
    stopping: Callable[[], bool],
) -> int:
    wait = delay
    failing_since: float | None = None
    while not stopping():
        started = time.monotonic()
        child = subprocess.Popen(command)
        _say(f"started {command[0]} (pid {child.pid})")
        status = _wait(child, stopping)
        if stopping():
            break
        now = time.monotonic()
        if failing_since is None or now - started >= SETTLED:
            failing_since, wait = now, delay  # a new run of failures
        elif now - failing_since > give_up_after:
            _say(f"giving up: {command[0]} kept exiting for {give_up_after:g} s (last: {status})")
            return 1
        _say(
            f"{command[0]} exited with status {status} after {now - started:.0f} s; "
            f"starting it again in {wait:g} s"
        )
        while not stopping() and time.monotonic() < now + wait:
            time.sleep(0.1)
        wait = min(2 * wait, max_delay)
    return 0


def _wait(child: subprocess.Popen[bytes], stopping: Callable[[], bool]) -> int:
    """The child's exit status; once a stop is requested: SIGTERM, and SIGKILL 10 s later."""
    asked_at: float | None = None
    while (status := child.poll()) is None:
        if stopping():
            if asked_at is None:
                asked_at = time.monotonic()
                child.send_signal(signal.SIGTERM)
            elif time.monotonic() - asked_at > 10.0:
                child.kill()
        time.sleep(0.1)
    return status


def main(
    command: Annotated[list[str], typer.Argument(help="The SuperNode command, after `--`.")],
    delay: Annotated[float, typer.Option(min=0.1, help="First delay before a restart (s).")] = 2.0,
    max_delay: Annotated[float, typer.Option(min=0.1, help="Longest delay (s).")] = 10.0,
    give_up_after: Annotated[
        float, typer.Option(min=1.0, help="Give up after failing quickly this long (s).")
    ] = 300.0,
) -> None:
    """Keep a SuperNode running: restart it whenever it exits."""
    raise typer.Exit(supervise(command, delay, max_delay, give_up_after))


if __name__ == "__main__":
    typer.run(main)
