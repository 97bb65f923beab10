"""The HTML report opens in a real headless Chromium with no console errors."""

import csv
import os
import shutil
from pathlib import Path

import pytest

from experiments.config import parse_config
from experiments.harness import run_experiment
from experiments.report.html import write_report

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
    assert {r["scope"] for r in rows} >= {"unified", "local_only", "exposure"}
    assert "server_view" not in {r["scope"] for r in rows}  # no federated regime ran


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
    assert {"Membership inference", "Attribute inference"} <= set(headings)
    assert (run_dir / "report.png").stat().st_size > 10_000
