"""The server view in results.json comes from the federated runs themselves (Flower simulation)."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.config import parse_config
from experiments.harness import run_experiment
from experiments.report.html import render_html
from experiments.results import Results


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Results:
    """A tiny world run once in the clear and once through secure aggregation, same seed."""
    config = parse_config(
        {
            "experiment": {"name": "server-view", "seeds": [0]},
            "data": {"source": "synthetic", "citizens": 3000},
            "training": {"epochs": 5, "batch_size": 256, "learning_rate": 0.1},
            "regimes": {
                "unified": False,
                "local_only": False,
                "federated_plain": True,
                "federated_secagg": True,
            },
            "federation": {"rounds": 2, "local_epochs": 5},
            "membership": {"pool": 200, "shadows": 0},
        }
    )
    return run_experiment(config, Path(tmp_path_factory.mktemp("run")))


@pytest.mark.slow  # two Flower simulations on Ray: about a minute
def test_switching_secure_aggregation_off_changes_what_the_server_infers(
    results: Results,
) -> None:
    # Prepare
    assert results.server_view is not None
    first = results.server_view.first_round
    assert first.plain is not None and first.secagg is not None
    # Execute / Assert: each firm's vector gives its size exactly and its default rate better
    # than any shared guess; the sum gives no firm more than the best shared guess
    assert first.plain.size_error.mean == pytest.approx(0.0, abs=1e-9)
    assert first.plain.default_rate_error.mean < first.baseline.default_rate_error.mean  # type: ignore[operator]
    assert first.secagg.default_rate_error.mean >= first.baseline.default_rate_error.mean - 1e-9  # type: ignore[operator]
    assert first.secagg.size_error.mean >= first.baseline.size_error.mean - 1e-9  # type: ignore[operator]
    run = results.server_view.disaggregation.run
    assert run.rank.mean == 1  # every firm in every round: nothing to disaggregate
    assert results.server_view.disaggregation.policies is not None


@pytest.mark.slow
def test_the_report_shows_the_server_view_and_the_release(results: Results) -> None:
    # Execute
    page = render_html(results.as_dict())
    # Assert
    assert "<h2>Server view</h2>" in page
    assert "heterogeneity baseline" in page
    assert "What is released" in page
    assert "From what the federation actually sent it" in page
