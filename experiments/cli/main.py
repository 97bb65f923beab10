"""The `fedscore` command line: build a world, run an experiment, inspect the protocol."""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from experiments.cli.bench import app as bench_app
from experiments.cli.protocol import app as protocol_app
from experiments.config import DEFAULT_CONFIG, ConfigError, load_config

app = typer.Typer(
    help="fedscore: a unified national credit score vs federated scores under secure aggregation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
app.add_typer(protocol_app, name="protocol")
app.add_typer(bench_app, name="bench")
_out = Console(width=max(Console().width, 120))  # regime names stay whole when piped
_err = Console(stderr=True)


@app.command()
def world(
    out: Annotated[Path, typer.Option(help="Directory to write the world into.")],
    citizens: Annotated[int, typer.Option(min=1, help="Population size.")] = 50_000,
    seed: Annotated[
        int, typer.Option(min=0, help="Seed: the same seed gives identical files.")
    ] = 0,
) -> None:
    """Generate the synthetic population and the eight pilot firms' tables."""
    from experiments.world.synthetic import generate_world, world_summary
    from experiments.world.tables import write_world

    with _err.status(f"generating {citizens:,} citizens (seed {seed})"):
        generated = generate_world(citizens, seed=seed)
        write_world(generated, out)
    _out.print_json(json.dumps(world_summary(generated), default=float))
    _err.print(
        f"[green]wrote[/] {out}/firms/*.parquet, government.parquet, truth.parquet, world.json"
    )


def _user_errors() -> tuple[type[Exception], ...]:
    """Mistakes in a config or a data file: the user's to fix, so no traceback."""
    from experiments.world.checks import DataError
    from experiments.world.datasets import DatasetNotFound

    return ConfigError, DataError, DatasetNotFound


@contextmanager
def _reported(debug: bool) -> Iterator[None]:
    """Config and data errors as a few plain lines and exit code 2; `--debug` keeps the
    traceback. Anything else is a bug and keeps its traceback."""
    errors = _user_errors()
    try:
        yield
    except errors as exc:
        if debug:
            raise
        # Escaped: "[data]" in a message is text, not console markup.
        _err.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True, highlight=False)
        raise typer.Exit(2) from None


RUN_LOG = "run.log"
"""Beside results.json: the warnings and log records of the run (Flower's included)."""


class _LogInRunFolder(logging.FileHandler):
    """A log file that appears with its first record, so a refused run leaves no folder."""

    def _open(self) -> Any:
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()


@contextmanager
def _run_log(path: Path) -> Iterator[logging.Logger]:
    """Warnings and log records (Flower's included) go to `path` while the run lasts."""
    handler = _LogInRunFolder(path, mode="a", encoding="utf-8", delay=True)
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root, log = logging.getLogger(), logging.getLogger("fedscore")
    log.setLevel(logging.INFO)
    root.addHandler(handler)
    shown = warnings.showwarning

    def show_and_log(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: Any = None,
        line: str | None = None,
    ) -> None:
        log.warning("%s: %s", category.__name__, message)
        shown(message, category, filename, lineno, file, line)  # still on the terminal

    warnings.showwarning = show_and_log
    try:
        yield log
    finally:
        warnings.showwarning = shown
        root.removeHandler(handler)
        handler.close()


_DEBUG = typer.Option("--debug", help="Show the full traceback of a config or data error.")


@app.command()
def run(
    config: Annotated[
        Path, typer.Argument(help="Experiment TOML.", show_default=True)
    ] = DEFAULT_CONFIG,
    out: Annotated[Path, typer.Option(help="Run directory for results.json.")] = Path(
        "runs/latest"
    ),
    debug: Annotated[bool, _DEBUG] = False,
) -> None:
    """Run every regime of an experiment config over its seeds; write results.json."""
    from experiments.harness import results_tables, run_experiment
    from experiments.report.html import write_report

    with _reported(debug), _run_log(out / RUN_LOG) as log:
        experiment = load_config(config)
        started = time.perf_counter()
        results = run_experiment(experiment, out, console=_err)
        log.info("ran %s in %.1f s", config, time.perf_counter() - started)
    for table in results_tables(results):
        _out.print(table)
    with _err.status("writing the report"):
        report = write_report(results.as_dict(), out)
    _err.print(f"[green]wrote[/] {out / 'results.json'}, {out / 'results.csv'}, {report}")


@app.command("init-config")
def init_config(
    table: Annotated[Path, typer.Argument(help="Your table: a .csv or .parquet file.")],
    out: Annotated[
        Path | None, typer.Option(help="Where to write the config; default: <table name>.toml.")
    ] = None,
    label: Annotated[
        str | None, typer.Option(help="The outcome column, if its name does not say so.")
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing config.")] = False,
    debug: Annotated[bool, _DEBUG] = False,
) -> None:
    """Draft an experiment config from a table's columns, each guess marked CHECK."""
    from experiments.cli.init_config import check_count, draft_roles, render_draft
    from experiments.world.datasets import read_table
    from experiments.world.partitions import slugify

    target = out or Path(f"{table.stem.split('.')[0]}.toml")
    if target.exists() and not force:
        _err.print(f"[red]error:[/] {escape(str(target))} exists; give --out or --force")
        raise typer.Exit(2)
    with _reported(debug):
        frame = read_table(table)
        if label is not None and label not in frame.columns:
            raise ConfigError(f"--label {label!r} is not a column of {table}")
        text = render_draft(frame, draft_roles(frame, label), table, target, slugify(target.stem))
    target.write_text(text)
    _err.print(
        f"[green]wrote[/] {escape(str(target))}: {check_count(text)} guesses marked CHECK to "
        f"confirm; then `fedscore run {escape(str(target))} --out runs/{slugify(target.stem)}`",
        soft_wrap=True,
        highlight=False,
    )
    from experiments.harness import check_data

    try:  # the draft as the run will see it: say now what it still needs
        check_data(load_config(target))
    except _user_errors() as exc:
        _err.print(
            f"[yellow]the draft does not run as it is:[/] {escape(str(exc))}",
            soft_wrap=True,
            highlight=False,
        )


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory holding results.json.")],
) -> None:
    """Rebuild report.html and results.csv from a run's results.json."""
    from experiments.report.html import write_report
    from experiments.results import ResultsError, load_results

    path = run_dir / "results.json"
    if not path.is_file():
        _err.print(
            f"[red]error:[/] no results.json in {run_dir}; run `fedscore run --out {run_dir}` first"
        )
        raise typer.Exit(2)
    try:
        results = load_results(path)
    except ResultsError as exc:
        _err.print(f"[red]error:[/] {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    # The report reads plain dicts in the file's (sorted) key order, as it always has.
    _err.print(f"[green]wrote[/] {write_report(json.loads(results.to_json()), run_dir)}")


@app.command("results-schema")
def results_schema(
    markdown: Annotated[
        bool, typer.Option(help="Print the reference docs/RESULTS.md is generated as.")
    ] = False,
) -> None:
    """Print the JSON Schema of results.json (or, with --markdown, its reference docs)."""
    from experiments.results import Results
    from experiments.results.docs import results_markdown

    if markdown:
        print(results_markdown(), end="")
    else:
        print(json.dumps(Results.model_json_schema(), indent=2, ensure_ascii=False))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
