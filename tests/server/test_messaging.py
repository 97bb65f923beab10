"""`exchange` against a SuperLink that behaves as Flower's does when firms fail (issue 17)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from fake_superlink import FailingSuperLink
from flwr.app import Array, ArrayRecord, RecordDict

from clients import records as R
from server import messaging
from server.inprocess import InProcessGrid
from server.messaging import StageReplies, TooFewNodes, exchange, wait_for_nodes
from server.settings import FederationRun

FIRMS = [101, 102, 103, 104]


def _evaluate_content(settings: FederationRun) -> RecordDict:
    spec = settings.model_spec()
    return RecordDict(
        {
            R.GLOBAL_RECORD: ArrayRecord({R.WEIGHTS: Array(spec.initial_weights())}),
            R.CONFIG_RECORD: settings.round_config(spec, 1, train=False, evaluate=True).to_record(),
        }
    )


def _timed_exchange(
    grid: FailingSuperLink, settings: FederationRun, timeout: float
) -> tuple[StageReplies, float]:
    outcome = exchange(
        grid, dict.fromkeys(FIRMS, _evaluate_content(settings)), "evaluate", "1", timeout
    )
    return outcome, time.monotonic() - grid.pushed_at  # the firms' own work is not waiting


def test_a_firm_dying_while_uploading_costs_one_timeout_and_no_healthy_reply(
    make_grid: Callable[..., InProcessGrid],
    settings: FederationRun,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Prepare: firm 101's reply is announced first but its data never completes; Flower would
    # retry it for minutes, holding the other replies of the same pull behind it
    monkeypatch.setattr(messaging, "STAGE_MARGIN", 0.5)
    grid = FailingSuperLink(make_grid(), delay=0.2, stalled=[101], stall=60.0)
    # Execute
    outcome, seconds = _timed_exchange(grid, settings, timeout=1.5)
    # Assert
    assert seconds < 1.5 + 0.5 + 0.5
    assert sorted(outcome.replies) == [102, 103, 104]
    assert list(outcome.dropped) == [101]
    assert "data still incomplete" in outcome.dropped[101]


def test_superlink_errors_are_matched_to_their_node_not_to_node_1(
    make_grid: Callable[..., InProcessGrid], settings: FederationRun
) -> None:
    # Prepare: firm 103 stops heartbeating; the SuperLink answers for it, from node 1
    grid = FailingSuperLink(make_grid(), delay=0.1, unavailable=[103], lapse=0.3)
    # Execute
    outcome, seconds = _timed_exchange(grid, settings, timeout=30.0)
    # Assert: the stage ends as soon as every node is accounted for, not at the timeout
    assert seconds < 5.0
    assert sorted(outcome.replies) == [101, 102, 104]
    assert list(outcome.dropped) == [103]
    assert "node unavailable" in outcome.dropped[103]


def test_a_reply_arriving_at_the_deadline_is_kept_and_replies_keep_the_node_order(
    make_grid: Callable[..., InProcessGrid], settings: FederationRun
) -> None:
    # Prepare: 104 answers first, 101 last, just before the deadline
    grid = FailingSuperLink(make_grid(), late={104: 0.0, 103: 0.3, 102: 0.6, 101: 0.95})
    # Execute
    outcome, _ = _timed_exchange(grid, settings, timeout=1.0)
    # Assert
    assert list(outcome.replies) == FIRMS
    assert outcome.dropped == {}


def test_silence_is_a_dropout_after_the_timeout(
    make_grid: Callable[..., InProcessGrid], settings: FederationRun
) -> None:
    # Prepare: 102 answers long after the stage is over
    grid = FailingSuperLink(make_grid(), late={102: 30.0})
    # Execute
    outcome, seconds = _timed_exchange(grid, settings, timeout=0.8)
    # Assert
    assert 0.8 <= seconds < 0.8 + messaging.STAGE_MARGIN + 0.5
    assert outcome.dropped == {102: "no reply within 0.8 s"}


def test_too_few_nodes_is_a_typed_error_naming_the_shortfall(
    make_grid: Callable[..., InProcessGrid],
) -> None:
    # Execute / Assert
    with pytest.raises(TooFewNodes, match="only 4 node\\(s\\) connected") as raised:
        wait_for_nodes(make_grid(), minimum=5, timeout=0.2)
    assert (raised.value.connected, raised.value.minimum) == (4, 5)
