"""``asyrp-bench compare RUN_DIR...``: runs side by side; non-zero exit when a metric regresses."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from asyrp_bench.cli.app import app, console, err_console, handle_errors


def _fmt(value: float) -> str:
    if not math.isfinite(value):
        return "–"
    return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"


@app.command("compare")
@handle_errors
def compare_command(
    runs: Annotated[list[Path], typer.Argument(help="Run folders (what `asyrp-bench run` printed last).")],
    baseline: Annotated[Path | None, typer.Option("--baseline", help="The run others are compared with "
                                                  "(default: the first).")] = None,
    tolerance: Annotated[list[str] | None, typer.Option(
        "--tolerance", help="METRIC=VALUE: allowed worsening in the metric's units; '*=VALUE' sets the default "
                            "(0). Repeatable.")] = None,
    allow_drift: Annotated[bool, typer.Option("--allow-drift", help="Pair values even when metric version, "
                                              "metric config or split hash differ (flagged).")] = False,
    csv: Annotated[Path | None, typer.Option("--csv", help="Also write the tidy deltas table here.")] = None,
    n_resamples: Annotated[int, typer.Option(help="Bootstrap resamples for the paired CI.")] = 2000,
    allow_incomplete: Annotated[bool, typer.Option("--allow-incomplete", help="Compare runs that are unfinished "
                                                   "or miss cells (each is named in a note).")] = False,
) -> None:
    """Compare runs: values per backend/editor/edit and metric, one column group per run, with the change
    against the baseline and its paired 95% bootstrap CI over images.

    Exit status: 0 when no metric is worse than its tolerance, 1 when one is (each is named), 2 on errors
    (including values computed differently, unless --allow-drift).
    """
    from asyrp_bench.compare import compare_runs, parse_tolerances
    from asyrp_bench.errors import ConfigError

    if csv is not None and (csv.is_dir() or (csv.parent.exists() and not csv.parent.is_dir())):
        raise ConfigError(f"--csv {csv}: give a file path (such as {csv / 'deltas.csv'}), not a folder")
    result = compare_runs(runs, baseline=baseline, tolerances=parse_tolerances(tolerance or []),
                          allow_drift=allow_drift, n_resamples=n_resamples, allow_incomplete=allow_incomplete)
    deltas = result.deltas.set_index(["run", "backend", "editor", "edit", "metric"]) if len(result.deltas) else None
    metrics = sorted(result.table.columns.get_level_values("metric").unique())
    letters = [chr(ord("A") + i) if i < 26 else f"R{i}" for i in range(len(result.runs))]
    for letter, run in zip(letters, result.runs, strict=True):
        role = " (baseline)" if run == result.baseline else ""
        console.print(f"[bold]{letter}[/]{role} = {run}", highlight=False, soft_wrap=True)
    # One row per (backend, editor, edit, metric) and one column per run: stays readable at any terminal width
    # and in CI logs (a column per metric × run does not).
    table = Table(show_lines=False)
    for name in ("backend", "editor", "edit", "metric"):
        table.add_column(name, style="bold" if name != "metric" else None, no_wrap=True)
    for letter in letters:
        table.add_column(letter, justify="right", overflow="fold")
    for key in result.table.index:
        labels = [str(k) if k != "" else "-" for k in key]
        for metric in metrics:
            cells = [*labels, metric]
            for index, run in enumerate(result.runs):
                value = result.table.get((run, metric), {}).get(key, math.nan)
                text = _fmt(float(value)) if value == value else "–"
                if index and deltas is not None and (run, *key, metric) in deltas.index:
                    row = deltas.loc[(run, *key, metric)]
                    ci = f" [{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}]" if math.isfinite(row["ci_low"]) else ""
                    style = "red" if row["regressed"] else ("green" if row["better"] > 0 else "dim")
                    mark = " ✗" if row["regressed"] else ""
                    text += f" [{style}]Δ {row['delta']:+.3g}{ci}{mark}[/]"
                cells.append(text)
            table.add_row(*cells)
            labels = ["", "", ""]
        table.add_section()
    console.print(table)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    for line in result.drift:
        console.print(f"[yellow]drift (allowed):[/] {line}", highlight=False, soft_wrap=True)
    if csv is not None:
        result.deltas.to_csv(csv, index=False, lineterminator="\n")
    if result.regressions:
        for line in result.regressions:
            err_console.print(f"[bold red]regression:[/] {line}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    console.print(f"[green]no regressions[/] ({len(result.runs) - 1} run(s) against {result.baseline})")
