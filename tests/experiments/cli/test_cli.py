import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from experiments.cli.main import app
from experiments.results import SCHEMA_VERSION

runner = CliRunner()


def test_every_command_has_help() -> None:
    for args in (
        ["--help"],
        ["run", "--help"],
        ["world", "--help"],
        ["report", "--help"],
        ["results-schema", "--help"],
        ["protocol", "simulate", "--help"],
        ["protocol", "schema", "--help"],
        ["protocol", "inspect", "--help"],
        ["bench", "--help"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert "Usage" in result.output


def test_python_dash_m_experiments_is_the_same_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "experiments", "--help"], capture_output=True, text=True, check=True
    )

    assert "world" in result.stdout and "run" in result.stdout


def test_world_command_writes_the_world_files(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["world", "--citizens", "2000", "--seed", "3", "--out", str(tmp_path)]
    )

    assert result.exit_code == 0, result.output
    assert (tmp_path / "world.json").is_file()
    assert len(list((tmp_path / "firms").glob("*.parquet"))) == 8
    manifest = json.loads((tmp_path / "world.json").read_text())
    assert manifest["seed"] == 3


def test_run_rejects_a_bad_config_with_the_key_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[experiment]\nname = "x"\n[data]\nsource = "synthetic"\ncitizens = -5\n')

    result = runner.invoke(app, ["run", str(bad), "--out", str(tmp_path / "out")])

    assert result.exit_code == 2
    assert "data.citizens" in result.output
    assert not (tmp_path / "out").exists()


def test_report_refuses_a_results_json_that_does_not_fit_naming_the_key(tmp_path: Path) -> None:
    # Prepare
    (tmp_path / "results.json").write_text(
        json.dumps({"schema_version": SCHEMA_VERSION, "seeds": "all"})
    )

    # Execute
    result = runner.invoke(app, ["report", str(tmp_path)])

    # Assert
    assert result.exit_code == 2
    assert "seeds: Input should be a valid list" in result.output
    assert "regimes: missing" in result.output
    assert not (tmp_path / "report.html").exists()


def test_results_schema_prints_the_json_schema_of_every_top_level_key() -> None:
    from experiments.results import Results

    result = runner.invoke(app, ["results-schema"])

    assert result.exit_code == 0, result.output
    schema = json.loads(result.output)
    assert list(schema["properties"]) == list(Results.model_fields)
    assert schema["additionalProperties"] is False
