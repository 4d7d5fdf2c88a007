"""``asyrp-bench export RUN_DIR --to mlflow|tensorboard|csv`` (docs/results.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from asyrp_bench.cli.app import app, handle_errors


@app.command("export")
@handle_errors
def export_command(
    run_dir: Annotated[Path, typer.Argument(help="A run folder.")],
    to: Annotated[str, typer.Option("--to", help="csv, tensorboard or mlflow.")] = "csv",
    out: Annotated[Path | None, typer.Option("--out", help="Where to write (default RUN_DIR/export/TO).")] = None,
) -> None:
    """Export the run's params (resolved suite) and summary values to CSV, TensorBoard or an MLflow file store."""
    from asyrp_bench.export import export_run

    typer.echo(str(export_run(run_dir, to, out)))
