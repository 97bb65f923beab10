"""`fedscore protocol`: simulate secure-aggregation rounds, export their schemas, read a transcript.

Registered in the main CLI as a sub-command group; usable alone as `experiments.cli.protocol.app`.
Machine-readable output goes to stdout (`--json`); progress bars and notes go to stderr.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from protocol import (
    STAGE_ORDER,
    ProtocolAbort,
    RoundOutcome,
    SecAggConfig,
    Stage,
    Transcript,
    error_bound,
    recommended_degree,
    run_round,
    run_rounds,
    stage_order,
)
from protocol.schema import export_schemas

app = typer.Typer(
    help="Secure aggregation (SecAgg+): simulate a round, export message schemas, inspect a "
    "transcript.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
_out = Console()
_err = Console(stderr=True)


def _dropout_schedule(
    clients: int, dropout: float, stage: Stage, rng: np.random.Generator
) -> dict[int, Stage]:
    count = round(dropout * clients)
    dropped = rng.choice(np.arange(1, clients + 1), size=count, replace=False)
    return {int(client): stage for client in dropped}


@app.command()
def simulate(
    clients: Annotated[int, typer.Option("--clients", min=2, help="Number of clients n.")] = 10,
    dim: Annotated[int, typer.Option("--dim", min=1, help="Vector length d.")] = 1000,
    dropout: Annotated[
        float,
        typer.Option("--dropout", min=0.0, max=1.0, help="Fraction of clients that drop out."),
    ] = 0.0,
    neighbours: Annotated[
        int | None,
        typer.Option(
            "--neighbours",
            min=1,
            help="Neighbour degree k (default: the recommended ~3·log2 n of SPEC §6; "
            "n - 1 for the complete graph).",
        ),
    ] = None,
    threshold: Annotated[
        int | None, typer.Option("--threshold", min=1, help="Threshold t (default: ~2/3 of k+1).")
    ] = None,
    drop_stage: Annotated[
        Stage, typer.Option("--drop-stage", help="Stage at which the dropped clients go silent.")
    ] = Stage.MASKED_INPUT,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed for inputs and dropout.")] = 0,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Processes hosting the clients (1: in process).")
    ] = 1,
    transcript: Annotated[
        Path | None, typer.Option("--transcript", help="Write the message transcript (JSONL).")
    ] = None,
    view: Annotated[
        Path | None,
        typer.Option(
            "--view",
            help="Write the server's view of the round (JSON; with --rounds/--pipelined, a list "
            "of one view per round).",
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    rounds: Annotated[
        int,
        typer.Option(
            "--rounds", min=1, help="Rounds to play, each with fresh inputs and dropouts."
        ),
    ] = 1,
    pipelined: Annotated[
        bool,
        typer.Option(
            "--pipelined",
            help="Carry round r+1's key stages in round r's messages (SPEC.md §9); a client "
            "silent in such a message misses both rounds.",
        ),
    ] = False,
    mode: Annotated[
        str,
        typer.Option(
            "--mode",
            help="semi-honest, or malicious: fresh identity keys per client, signed keys and a "
            "consistency check (SPEC.md §10).",
        ),
    ] = "semi-honest",
) -> None:
    """Play rounds in process with random inputs in [-1, 1] and report exactness and cost."""
    try:
        degree = recommended_degree(clients) if neighbours is None else neighbours
        config = SecAggConfig(
            num_clients=clients,
            neighbours=degree,
            threshold=threshold,
            mode=mode,
        )
    except ValueError as error:
        _err.print(f"[red]invalid parameters:[/] {error}", soft_wrap=True)
        raise typer.Exit(2) from error
    if rounds > 1 or pipelined:
        if workers > 1:
            _err.print("[red]--workers > 1 plays a single round; drop --rounds/--pipelined[/]")
            raise typer.Exit(2)
        plan = RoundsPlan(clients, dim, dropout, drop_stage, seed, rounds, pipelined)
        _simulate_rounds(config, plan, transcript, view, json_output)
        return
    rng = np.random.default_rng(seed)
    inputs = rng.uniform(-1.0, 1.0, size=(clients, dim))
    schedule = _dropout_schedule(clients, dropout, drop_stage, rng)
    with Progress(
        TextColumn("{task.description:<14}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} clients"),
        TimeElapsedColumn(),
        console=_err,
        transient=True,
        disable=not _err.is_terminal,
    ) as progress:
        tasks = {
            stage: progress.add_task(stage.value, total=clients)
            for stage in stage_order(config.mode)
        }

        def advance(stage: Stage, done: int, total: int) -> None:
            progress.update(tasks[stage], completed=done, total=total)

        try:
            result = run_round(
                config,
                list(inputs),
                dropout=schedule,
                rounding_seed=seed,
                progress=advance,
                workers=workers,
            )
        except ProtocolAbort as abort:
            report: dict[str, Any] = {
                "exact": False,
                "aborted": True,
                "stage": abort.stage.value,
                "reason": abort.reason,
                "clients": clients,
                "dropped": len(schedule),
                "threshold": config.reconstruction_threshold,
            }
            if json_output:
                print(json.dumps(report))
            else:
                _out.print_json(json.dumps(report))
            raise typer.Exit(1) from abort
    entries = result.transcript.entries
    upload = sum(e.bytes for e in entries if e.sender != 0) / clients
    download = sum(e.bytes for e in entries if e.sender == 0) / clients
    report = {
        "exact": result.exact,
        "max_abs_error": result.max_abs_error,
        "error_bound": error_bound(config, len(result.survivors)),
        "seconds": round(result.seconds, 4),
        "survivors": len(result.survivors),
        "survivor_ids": list(result.survivors),
        "clients": clients,
        "dim": dim,
        "dropout": dropout,
        "drop_stage": drop_stage.value,
        "neighbours": config.degree,
        "mode": config.mode,
        "workers": workers,
        "threshold": config.reconstruction_threshold,
        "upload_bytes_per_client": round(upload),
        "download_bytes_per_client": round(download),
        "expansion": upload / (4 * dim),
        "messages": len(entries),
        "masks_expanded": result.masks_expanded,
        "client_errors": {str(c): type(e).__name__ for c, e in result.client_errors.items()},
    }
    if transcript is not None:
        result.transcript.to_jsonl(transcript)
    if view is not None:
        view.write_text(result.aggregate.view.to_json())
    if json_output:
        print(json.dumps(report))
        return
    table = Table(title=f"secure aggregation: n={clients}, d={dim}, dropout={dropout}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in report.items():
        if key != "survivor_ids":
            table.add_row(key, f"{value:.3g}" if isinstance(value, float) else str(value))
    _out.print(table)
    if transcript is not None:
        _err.print(f"[green]wrote[/] {transcript}")


@dataclass(frozen=True)
class RoundsPlan:
    """What `simulate --rounds/--pipelined` plays."""

    clients: int
    dim: int
    dropout: float
    drop_stage: Stage
    seed: int
    rounds: int
    pipelined: bool


def _simulate_rounds(
    config: SecAggConfig,
    plan: RoundsPlan,
    transcript: Path | None,
    view: Path | None,
    json_output: bool,
) -> None:
    """Several rounds through the scheduler, each with its own inputs and dropouts; exits 1
    unless every round sums exactly."""
    rng = np.random.default_rng(plan.seed)
    inputs: list[list[np.ndarray]] = []
    schedules: dict[int, dict[int, Stage]] = {}
    for round_number in range(1, plan.rounds + 1):
        inputs.append(list(rng.uniform(-1.0, 1.0, size=(plan.clients, plan.dim))))
        schedules[round_number] = _dropout_schedule(
            plan.clients, plan.dropout, plan.drop_stage, rng
        )
    outcomes = run_rounds(
        config, inputs, pipelined=plan.pipelined, dropout=schedules, rounding_seed=plan.seed
    )
    per_round = [_round_report(outcome, config, plan.clients) for outcome in outcomes]
    report: dict[str, Any] = {
        "exact": all(outcome.exact for outcome in outcomes),
        "pipelined": plan.pipelined,
        "rounds": plan.rounds,
        "clients": plan.clients,
        "dim": plan.dim,
        "dropout": plan.dropout,
        "drop_stage": plan.drop_stage.value,
        "neighbours": config.degree,
        "threshold": config.reconstruction_threshold,
        "seconds": round(sum(r["seconds"] for r in per_round), 4),
        "per_round": per_round,
    }
    if transcript is not None:
        entries = [entry for outcome in outcomes for entry in outcome.transcript.entries]
        Transcript(entries).to_jsonl(transcript)
    if view is not None:  # one view per round: the completed round's, or the abort's
        views: list[dict[str, Any] | None] = []
        for outcome in outcomes:
            seen = outcome.result.aggregate.view if outcome.result else None
            if outcome.abort is not None:
                seen = outcome.abort.view
            views.append(None if seen is None else seen.model_dump(mode="json"))
        view.write_text(json.dumps(views, indent=2))
    if json_output:
        print(json.dumps(report))
    else:
        _print_rounds(report)
    if not report["exact"]:
        raise typer.Exit(1)


def _round_report(outcome: RoundOutcome, config: SecAggConfig, clients: int) -> dict[str, Any]:
    entries = outcome.transcript.entries
    report: dict[str, Any] = {
        "round": outcome.round_number,
        "exact": outcome.exact,
        "aborted": outcome.abort is not None,
        "messages": outcome.messages,
        "protocol_messages": len(entries),
        "upload_bytes_per_client": round(sum(e.bytes for e in entries if e.sender != 0) / clients),
        "download_bytes_per_client": round(
            sum(e.bytes for e in entries if e.sender == 0) / clients
        ),
    }
    if outcome.abort is not None:
        report |= {"stage": outcome.abort.stage.value, "reason": outcome.abort.reason}
        report["seconds"] = round(sum(outcome.stage_seconds.values()), 4)
        return report
    result = outcome.result
    assert result is not None
    return report | {
        "survivors": len(result.survivors),
        "survivor_ids": list(result.survivors),
        "max_abs_error": result.max_abs_error,
        "error_bound": error_bound(config, len(result.survivors)),
        "seconds": round(result.seconds, 4),
        "masks_expanded": result.masks_expanded,
    }


_SHORT = {
    "advertise_keys": "adv",
    "share_keys": "share",
    "masked_input": "mask",
    "unmask": "unmask",
}


def _short(label: str) -> str:
    """`masked_input+advertise_keys` -> `mask+adv`, to keep the table narrow."""
    return "+".join(_SHORT[stage] for stage in label.split("+"))


def _print_rounds(report: dict[str, Any]) -> None:
    mode = "pipelined" if report["pipelined"] else "each round alone"
    table = Table(
        title=f"secure aggregation: n={report['clients']}, d={report['dim']}, "
        f"dropout={report['dropout']}, {report['rounds']} rounds, {mode}"
    )
    for column in ("round", "outcome", "survivors", "max |error|", "bound", "seconds"):
        table.add_column(column, justify="left" if column == "outcome" else "right")
    table.add_column("messages")
    for r in report["per_round"]:
        outcome = "exact" if r["exact"] else "aborted" if r["aborted"] else "NOT EXACT"
        table.add_row(
            str(r["round"]),
            outcome,
            str(r.get("survivors", "-")),
            f"{r['max_abs_error']:.2g}" if "max_abs_error" in r else "-",
            f"{r['error_bound']:.2g}" if "error_bound" in r else "-",
            f"{r['seconds']:.3f}",
            ", ".join(_short(label) for label in r["messages"]),
        )
    _out.print(table)
    for r in report["per_round"]:
        if r["aborted"]:
            _err.print(f"round {r['round']} aborted at {r['stage']}: {r['reason']}", soft_wrap=True)


@app.command()
def schema(
    out: Annotated[Path, typer.Option("--out", help="Directory for the *.schema.json files.")],
) -> None:
    """Write the JSON Schema of the config, every message, transcript entries and the view."""
    written = export_schemas(out)
    for path in written:
        _out.print(str(path))


@app.command()
def inspect(
    transcript: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="Transcript JSONL from simulate.")
    ],
    json_output: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of tables.")
    ] = False,
) -> None:
    """Print what the server saw, stage by stage: who sent what, how big, which digest."""
    try:
        loaded = Transcript.from_jsonl(transcript.read_text())
    except ValueError as error:
        _err.print(f"[red]{transcript} is not a transcript:[/] {error}", soft_wrap=True)
        raise typer.Exit(2) from error
    received = loaded.received_by_server()
    sent_by_server = [e for e in loaded.entries if e.sender == 0]
    summary: dict[str, Any] = {}
    seen = {entry.stage for entry in loaded.entries}
    stages = [s for s in Stage if s in STAGE_ORDER or s in seen]  # + consistency_check if run
    for stage in stages:
        entries = received.get(stage, [])
        requests = [e for e in sent_by_server if e.stage is stage]
        summary[stage.value] = {
            "requests_sent": len(requests),
            "responses_received": len(entries),
            "bytes_received": sum(e.bytes for e in entries),
            "senders": [e.sender for e in entries],
            "silent": sorted({e.receiver for e in requests} - {e.sender for e in entries}),
            "messages": [e.model_dump(mode="json") for e in entries],
        }
    if json_output:
        print(json.dumps(summary))
        return
    for stage in stages:
        stage_summary = summary[stage.value]
        table = Table(
            title=f"{stage.value}: {stage_summary['responses_received']} of "
            f"{stage_summary['requests_sent']} clients answered, "
            f"{stage_summary['bytes_received']:,} bytes; silent: {stage_summary['silent']}"
        )
        for column in ("round", "sender", "message", "bytes", "sha256"):
            table.add_column(column, justify="right" if column in ("bytes", "round") else "left")
        for entry in received.get(stage, []):
            table.add_row(
                str(entry.round),
                str(entry.sender),
                entry.message_type,
                f"{entry.bytes:,}",
                entry.sha256[:16] + "…",
            )
        _out.print(table)
