"""The README's "Bring your own data" section, command by command, on the shipped example."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from experiments.cli.main import app
from experiments.config import load_config
from experiments.harness import check_data

ROOT = Path(__file__).resolve().parents[2]
SECTION = "## Bring your own data"
EXAMPLE_FILES = (
    "experiments/configs/example_file.toml",
    "experiments/configs/data/example_loans.csv",
)


def readme_commands() -> list[list[str]]:
    """The `fedscore` arguments of every command in the section's bash blocks."""
    section = (ROOT / "README.md").read_text().split(SECTION, 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", section, re.DOTALL):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words:
                assert words[0] == ".venv/bin/fedscore", line
                commands.append(words[1:])
    return commands


def test_the_section_has_the_commands_a_new_user_needs() -> None:
    verbs = [command[0] for command in readme_commands()]

    assert verbs == ["init-config", "run", "report"]


@pytest.mark.slow  # about a minute: two seeds, each with a federated run on the Ray engine
@pytest.mark.usefixtures("reap_started_processes")
def test_the_readme_file_source_section_runs_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: a checkout's example files, the commands run from its root.
    for relative in EXAMPLE_FILES:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / relative, tmp_path / relative)
    monkeypatch.chdir(tmp_path)

    # Execute
    for command in readme_commands():
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 0, f"fedscore {shlex.join(command)}:\n{result.output}"

    # Assert: the draft passes the checks; the run is one folder with everything in it.
    check_data(load_config(tmp_path / "my_loans.toml"))
    run = tmp_path / "runs" / "example_file"
    results = json.loads((run / "results.json").read_text())
    assert set(results["regimes"]) == {"unified", "local_only", "federated_secagg"}
    assert results["regimes"]["unified"]["utility"]["auc"]["mean"] > 0.6
    for seed in (0, 1):
        federated = run / "federation" / "federated_secagg" / f"seed-{seed}"
        assert (federated / "transcript.jsonl").stat().st_size > 0
        assert (federated / "checkpoints").is_dir()
    assert {p.name for p in tmp_path.iterdir()} == {"experiments", "runs", "my_loans.toml"}
    report = (run / "report.html").read_text()
    assert results["data"]["sha256"] in report and "example_loans.csv" in report
    assert "one firm per value of &#x27;branch_region&#x27;" in report
    assert "Fallbacks: none" in report
