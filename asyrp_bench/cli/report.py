"""``asyrp-bench report RUN_DIR``: (re)write report.md and report.html of a run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from asyrp_bench.cli.app import app, handle_errors


@app.command("report")
@handle_errors
def report_command(
    run_dir: Annotated[Path, typer.Argument(help="A run folder (what `asyrp-bench run` printed last).")],
) -> None:
    """Regenerate the run's report (summary table beside published numbers, image grids, plots)."""
    from asyrp_bench.report import write_report

    md, html = write_report(run_dir)
    typer.echo(str(md))
    typer.echo(str(html))
