"""`fedscore protocol` commands, driven through typer's CliRunner against the sub-app."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from experiments.cli.protocol import app
from protocol import MESSAGE_TYPES, Transcript, recommended_degree, recommended_threshold

runner = CliRunner()


def test_simulate_json_reports_an_exact_round_with_its_costs(tmp_path: Path) -> None:
    # Prepare
    transcript = tmp_path / "round.jsonl"
    arguments = ["simulate", "--clients", "12", "--dim", "300", "--dropout", "0.25"]
    arguments += ["--seed", "4", "--json", "--transcript", str(transcript)]
    # Execute
    result = runner.invoke(app, arguments)
    # Assert
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["exact"] is True
    assert report["survivors"] == 9
    assert 0 <= report["max_abs_error"] < report["error_bound"]
    for key in ("seconds", "upload_bytes_per_client", "download_bytes_per_client", "expansion"):
        assert report[key] > 0
    assert len(Transcript.from_jsonl(transcript.read_text()).entries) == report["messages"]


def test_simulate_with_a_sparse_graph_and_worker_processes() -> None:
    # Prepare
    arguments = ["simulate", "--clients", "16", "--dim", "50", "--neighbours", "6"]
    # Execute
    result = runner.invoke(app, [*arguments, "--workers", "2", "--dropout", "0.1", "--json"])
    # Assert
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["neighbours"] == 6 and report["workers"] == 2
    assert report["exact"] is True and report["survivors"] == 14


def test_simulate_below_threshold_exits_non_zero_naming_the_stage() -> None:
    # Execute
    result = runner.invoke(
        app,
        ["simulate", "--clients", "5", "--dropout", "0.6", "--drop-stage", "share_keys", "--json"],
    )
    # Assert
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["aborted"] is True and report["stage"] == "share_keys"
    assert "fewer than t" in report["reason"]


def test_simulate_rejects_an_unsafe_configuration() -> None:
    # Execute
    result = runner.invoke(app, ["simulate", "--clients", "10", "--neighbours", "3", "--json"])
    # Assert
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "neighbours must be even" in result.stderr


def test_simulate_pipelined_rounds_reports_exactness_per_round(tmp_path: Path) -> None:
    # Prepare: one client in eight drops at masked_input in every round
    transcript = tmp_path / "rounds.jsonl"
    arguments = ["simulate", "--pipelined", "--rounds", "3", "--clients", "8", "--dim", "40"]
    arguments += ["--dropout", "0.125", "--seed", "3", "--json", "--transcript", str(transcript)]
    # Execute
    result = runner.invoke(app, arguments)
    # Assert: round r+1's key stages rode on round r's two messages
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["exact"] is True and report["pipelined"] is True
    per_round = report["per_round"]
    assert [r["round"] for r in per_round] == [1, 2, 3]
    assert all(r["exact"] and not r["aborted"] for r in per_round)
    assert all(0 <= r["max_abs_error"] < r["error_bound"] for r in per_round)
    assert per_round[0]["messages"] == [
        "advertise_keys",
        "share_keys",
        "masked_input+advertise_keys",
        "unmask+share_keys",
    ]
    assert per_round[1]["messages"] == ["masked_input+advertise_keys", "unmask+share_keys"]
    assert per_round[2]["messages"] == ["masked_input", "unmask"]
    entries = Transcript.from_jsonl(transcript.read_text()).entries
    assert len(entries) == sum(r["protocol_messages"] for r in per_round)
    assert {e.round for e in entries} == {1, 2, 3}


def test_simulate_rounds_alone_prints_a_table_and_fails_when_a_round_aborts() -> None:
    # Prepare: 2 of 8 clients drop in every round; pipelined, round 1's dropouts also miss
    # round 2's key stages, which leaves round 2 below t = 6
    arguments = ["simulate", "--rounds", "2", "--clients", "8", "--dim", "20", "--seed", "3"]
    # Execute
    alone = runner.invoke(app, [*arguments, "--dropout", "0.25"])
    pipelined = runner.invoke(app, [*arguments, "--dropout", "0.25", "--pipelined", "--json"])
    # Assert
    assert alone.exit_code == 0, alone.output
    assert "2 rounds, each round alone" in alone.stdout
    assert alone.stdout.count("exact") == 2
    assert pipelined.exit_code == 1
    report = json.loads(pipelined.stdout)
    first, second = report["per_round"]
    assert report["exact"] is False and first["exact"] is True
    assert second["aborted"] is True and "fewer than t" in second["reason"]


def test_simulate_refuses_worker_processes_for_several_rounds() -> None:
    # Execute
    result = runner.invoke(app, ["simulate", "--pipelined", "--workers", "2", "--json"])
    # Assert
    assert result.exit_code == 2
    assert "--workers" in result.stderr


def test_schema_writes_one_schema_per_model(tmp_path: Path) -> None:
    # Execute
    result = runner.invoke(app, ["schema", "--out", str(tmp_path)])
    # Assert
    assert result.exit_code == 0, result.output
    names = {path.name for path in tmp_path.glob("*.schema.json")}
    assert {f"{message.__name__}.schema.json" for message in MESSAGE_TYPES} <= names
    assert "SecAggConfig.schema.json" in names
    masked = json.loads((tmp_path / "MaskedInputResponse.schema.json").read_text())
    assert masked["properties"]["masked_vector"]["description"]


def test_inspect_shows_what_the_server_received_stage_by_stage(tmp_path: Path) -> None:
    # Prepare
    transcript = tmp_path / "round.jsonl"
    arguments = ["simulate", "--clients", "6", "--dim", "20", "--dropout", "0.34", "--json"]
    runner.invoke(app, [*arguments, "--transcript", str(transcript)])
    # Execute
    as_json = runner.invoke(app, ["inspect", str(transcript), "--json"])
    as_tables = runner.invoke(app, ["inspect", str(transcript)])
    # Assert
    assert as_json.exit_code == 0 and as_tables.exit_code == 0
    summary = json.loads(as_json.stdout)
    assert summary["advertise_keys"]["responses_received"] == 6
    assert summary["masked_input"]["responses_received"] == 4
    assert len(summary["masked_input"]["silent"]) == 2
    assert "masked_input: 4 of 6 clients answered" in as_tables.stdout


def test_inspect_refuses_a_file_that_is_not_a_transcript(tmp_path: Path) -> None:
    # Prepare
    bogus = tmp_path / "bogus.jsonl"
    bogus.write_text('{"hello": 1}\n')
    # Execute
    result = runner.invoke(app, ["inspect", str(bogus)])
    # Assert
    assert result.exit_code == 2
    assert "not a transcript" in result.stderr


def test_simulate_defaults_to_the_recommended_sparse_degree() -> None:
    # Execute: no --neighbours (issue 15, defect 11: it used to run the complete graph, about
    # 400 s a round at n = 1,000, d = 100,000 against 8 s with k = 30)
    result = runner.invoke(app, ["simulate", "--clients", "40", "--dim", "20", "--json"])
    # Assert
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["neighbours"] == recommended_degree(40) == 16
    assert report["threshold"] == recommended_threshold(16)
    assert report["exact"] is True


def test_simulate_runs_the_malicious_mode_alone_and_pipelined() -> None:
    # Prepare
    arguments = ["simulate", "--clients", "9", "--dim", "40", "--mode", "malicious", "--json"]
    # Execute
    alone = runner.invoke(app, [*arguments, "--workers", "2"])
    pipelined = runner.invoke(app, [*arguments, "--pipelined", "--rounds", "2"])
    refused = runner.invoke(app, [*arguments[:5], "--mode", "paranoid"])
    # Assert: one message more a round than semi-honest, every sum exact
    assert alone.exit_code == 0, alone.output
    assert json.loads(alone.stdout)["mode"] == "malicious"
    assert json.loads(alone.stdout)["exact"] is True
    assert pipelined.exit_code == 0, pipelined.output
    rounds = json.loads(pipelined.stdout)["per_round"]
    assert [r["exact"] for r in rounds] == [True, True]
    assert rounds[1]["messages"] == ["masked_input", "consistency_check", "unmask"]
    assert refused.exit_code == 2 and "malicious" in refused.output
