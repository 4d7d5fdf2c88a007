"""``asyrp-bench run SUITE`` and ``asyrp-bench run --resume RUN_DIR``: the benchmark itself."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from asyrp_bench.cli.app import app, console, handle_errors


@app.command("run")
@handle_errors
def run_command(
    suite: Annotated[Path | None, typer.Argument(help="The suite YAML (e.g. suites/quickstart.yaml).")] = None,
    out: Annotated[Path, typer.Option("--out", help="Results root; the run folder is "
                                      "<out>/<suite>/<UTC time>-<hash>.")] = Path("results"),
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a suite key, e.g. --set sampler.n_test_step=20 (value parsed as YAML).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the resolved cells and what would be "
                                          "trained, loaded and cached; run nothing.")] = False,
    device: Annotated[str | None, typer.Option("--device", help="torch device (default: cuda when available, "
                                               "else cpu).")] = None,
    resume: Annotated[Path | None, typer.Option("--resume", help="Finish an interrupted run folder: committed "
                                                "cells are kept, the rest is run.")] = None,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No live view.")] = False,
) -> None:
    """Run a suite: train or load editors, edit the split, score, write tables and a report.

    The last line printed is the run folder (give it to `asyrp-bench compare` or `asyrp-bench report`).
    """
    from asyrp_bench.errors import ConfigError
    from asyrp_bench.plan import build_plan
    from asyrp_bench.runner import describe_plan, resume_run, run_suite
    from asyrp_bench.suite import load_suite

    if (suite is None) == (resume is None):
        raise ConfigError("give a suite file, or --resume RUN_DIR (not both)")
    if resume is not None:
        if set_ or dry_run:
            raise ConfigError("--resume finishes a run as it was defined; --set and --dry-run do not apply")
        path = resume_run(resume, device=device, console=console, show_progress=not no_progress)
    else:
        assert suite is not None
        loaded = load_suite(suite, set_ or ())
        if dry_run:
            describe_plan(build_plan(loaded), console)
            return
        path = run_suite(loaded, out, device=device or _default_device(), console=console,
                         show_progress=not no_progress)
    typer.echo(str(path))


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
