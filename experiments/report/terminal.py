"""The run's summary in the terminal: utility with intervals, paired differences, leakage."""

from __future__ import annotations

from rich.table import Table

from experiments.paired import PAIRED_METRICS
from experiments.results import Results, Summary


def _cell(summary: Summary) -> str:
    mean, (low, high) = summary.mean, summary.ci95
    if mean is None or low is None or high is None:
        return "–"
    return f"{mean:.3f} ± {(high - low) / 2:.3f}"


def results_tables(results: Results) -> list[Table]:
    """Two terminal tables: utility with intervals, then each leakage family's headline."""
    from experiments.report.tables import LEAKAGE_SHORT, leakage_rows

    name, seeds = results.config.experiment.name, len(results.seeds)
    utility = Table(title=f"{name}: utility on the same held-out citizens ({seeds} seeds)")
    utility.add_column("regime", style="bold", no_wrap=True)
    metrics = ["auc", "ks", "brier", "ece"]
    for metric in metrics:
        utility.add_column(metric.upper(), justify="right")
    leakage = Table(
        title=f"{name}: what each regime reveals (means; report.html explains each column)"
    )
    leakage.add_column("regime", style="bold", no_wrap=True)
    for header in LEAKAGE_SHORT[1:]:
        leakage.add_column(header, justify="right")
    for regime, cells in leakage_rows(results.as_dict()):
        figures = results.regimes[regime].utility
        utility.add_row(regime, *(_cell(getattr(figures, m)) for m in metrics))
        leakage.add_row(regime, *cells[1:])
    for reference_name, reference in (results.references or {}).items():
        figures = reference.utility
        utility.add_row(
            f"[dim]{reference_name} (reference)[/]", *(_cell(getattr(figures, m)) for m in metrics)
        )
    seeded = [n for n, r in results.regimes.items() if r.privacy and r.privacy.noise == "run-seed"]
    if seeded:
        utility.caption = (
            f"[bold red]reproducible = true: the DP noise of {', '.join(seeded)} came from the "
            "run seed; the server could regenerate it (no DP guarantee against the server)[/]"
        )
    if not results.paired:
        return [utility, leakage]
    paired = Table(title=f"{name}: paired differences over seeds (mean [95 % interval])")
    paired.add_column("a − b", style="bold", no_wrap=True)
    for metric in PAIRED_METRICS:
        paired.add_column(f"Δ{metric.upper()}", justify="right")
    for pair, difference in results.paired.items():
        paired.add_row(pair, *(_interval(getattr(difference, m)) for m in PAIRED_METRICS))
    return [utility, paired, leakage]


def _interval(summary: Summary) -> str:
    mean, (low, high) = summary.mean, summary.ci95
    if mean is None or low is None or high is None:
        return "–"
    return f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]"
