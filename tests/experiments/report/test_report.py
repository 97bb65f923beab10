"""The HTML report opens in a real headless Chromium with no console errors."""

import csv
import json
import os
import shutil
from pathlib import Path

import pytest

from experiments.config import parse_config
from experiments.harness import run_experiment
from experiments.report.html import render_html, write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    config = parse_config(
        {
            "experiment": {"name": "report-test", "seeds": [0, 1]},
            "data": {"source": "synthetic", "citizens": 3000},
            "training": {"epochs": 2},
            "membership": {"pool": 400, "shadows": 4},
        }
    )
    write_report(run_experiment(config, out).as_dict(), out)
    return out


def test_results_csv_is_long_form_with_one_row_per_seed(run_dir: Path) -> None:
    with (run_dir / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))

    assert set(rows[0]) == {"scope", "metric", "seed", "value"}
    auc = [r for r in rows if r["scope"] == "unified" and r["metric"] == "utility.auc"]
    assert [r["seed"] for r in auc] == ["0", "1"]
    assert {r["scope"] for r in rows} >= {
        "unified",
        "local_only",
        "exposure",
        "inference",
    }
    assert "server_view" not in {r["scope"] for r in rows}  # no federated regime ran
    operator = [r for r in rows if r["metric"] == "central_operator.political_expression.auc"]
    assert [r["scope"] for r in operator] == ["inference", "inference"]


def test_the_report_shows_inference_by_party_knowledge_and_cross_context(run_dir: Path) -> None:
    # Execute
    page = (run_dir / "report.html").read_text()

    # Assert: the section, its three tables, and the summary sentence built from them
    assert "<h2>Inference by party</h2>" in page
    assert "Central operator (national database)" in page
    assert "Federated coordinating server" in page
    assert "Score consumer: Unified national score + QIs" in page
    assert "KYC (age, sex, region)" in page
    assert "Cross-context inference" in page
    assert "From the joined national table its operator infers political expression" in page


def test_report_renders_in_headless_chromium_without_console_errors(run_dir: Path) -> None:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing in CI: .ci/run must apt-get install chromium")
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto((run_dir / "report.html").as_uri())

            tables = page.locator("table").count()
            images = page.locator("img").count()
            all_drawn = page.evaluate(
                "Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"
            )
            headings = page.locator("h2").all_inner_texts()
            page.screenshot(path=str(run_dir / "report.png"), full_page=True)
        finally:
            browser.close()

    assert errors == []
    assert tables >= 5 and images >= 3 and all_drawn
    assert {"Side by side", "Utility", "Exposure", "Decisions"} <= set(headings)
    assert "Server view" not in headings  # no federated run: tests/experiments/test_server_view_run
    assert {"Membership inference", "Attribute inference", "Inference by party"} <= set(headings)
    assert (run_dir / "report.png").stat().st_size > 10_000


def test_a_policy_world_is_flagged_at_the_top_and_the_default_world_is_not(
    run_dir: Path,
) -> None:
    # Prepare: the run's results with a policy switched on in its config
    results = json.loads((run_dir / "results.json").read_text())
    policed = json.loads(json.dumps(results))
    policed["config"]["data"]["policy"] = {"target": "journalist", "strength": 2.5}

    # Execute
    plain, flagged = render_html(results), render_html(policed)

    # Assert
    assert "Positive control" not in plain
    assert "adds +2.5 to the default logit of the group journalist" in flagged


def test_the_report_opens_with_the_answer_each_figure_with_its_interval(run_dir: Path) -> None:
    # Prepare
    from experiments.report.lead import interval, lead_paragraphs

    results = json.loads((run_dir / "results.json").read_text())
    # Execute
    page = (run_dir / "report.html").read_text()
    paragraphs = lead_paragraphs(results)
    # Assert: the lead comes before the data and the tables, and quotes the figures as they are
    assert page.index("What a unified national score would reveal") < page.index("Side by side")
    operator = results["inference"]["central_operator"]["political_expression"]
    assert interval(operator["auc"]) in paragraphs[0]
    assert all("[" in p for p in paragraphs)  # every sentence carries an interval
    assert interval({"mean": 0.5, "ci95": [0.4, 0.6]}) == "0.500 [0.400, 0.600]"
    assert interval({"mean": 0.01, "ci95": [-0.02, 0.04]}, signed=True) == "+0.010 [-0.020, +0.040]"
