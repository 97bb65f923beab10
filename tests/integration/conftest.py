"""Tests that start real processes: every one is stopped by PID, pass or fail."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from experiments.cli.procfs import descendants, stop_pids


@pytest.fixture
def reap_started_processes() -> Iterator[Callable[[], set[int]]]:
    """Yields a function listing processes started since the test began; stops them after."""
    before = descendants(os.getpid())

    def started() -> set[int]:
        return descendants(os.getpid()) - before

    try:
        yield started
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        stop_pids(started())
