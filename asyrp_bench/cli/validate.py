"""``asyrp-bench validate SUITE...``: check suite files (schema, includes, names, paths) without running them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from asyrp_bench.cli.app import app, console, err_console, handle_errors


@app.command("validate")
@handle_errors
def validate_command(
    suites: Annotated[list[Path], typer.Argument(help="Suite YAML files (folders: every suite inside).")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a key, e.g. --set sampler.n_test_step=20 (value parsed as YAML)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only problems.")] = False,
) -> None:
    """Validate suites: unknown keys, wrong types, unknown names and missing files are reported with file:line.

    Exits 0 when every suite is valid, 1 otherwise. Weights named by registry key need not be present yet
    (``asyrp-bench doctor`` says where they go); paths written in a suite must exist.
    """
    from asyrp_bench.errors import AsyrpBenchError
    from asyrp_bench.suite import expand, find_suite_files, load_suite

    files: list[Path] = []
    for item in suites:
        files.extend(find_suite_files(item) if item.is_dir() else [item])
    if not files:
        err_console.print("[bold red]error:[/] no suite files given (or the folders hold none)")
        raise typer.Exit(1)
    n_bad = 0
    for file in files:
        try:
            suite = load_suite(file, set_ or ())
            cells = expand(suite)
        except AsyrpBenchError as error:
            n_bad += 1
            err_console.print(f"[bold red]invalid[/] {file}\n{error}", highlight=False, soft_wrap=True)
            continue
        except (ValueError, TypeError, RecursionError) as error:
            # Keep checking the other files: one unexpected failure must not hide the rest (issue 15).
            n_bad += 1
            err_console.print(f"[bold red]invalid[/] {file}\ncould not be read: {type(error).__name__}: "
                              f"{error}", highlight=False, soft_wrap=True)
            continue
        if not quiet:
            trained = sum(c.train is not None for c in cells)
            console.print(
                f"[green]ok[/] {file}: {suite.name!r}, {len(cells)} cells "
                f"({trained} trained, {len(cells) - trained} loaded), metrics: "
                f"{', '.join(m.name for m in suite.metrics) or '(none)'}",
                highlight=False, soft_wrap=True,
            )
    if n_bad:
        raise typer.Exit(1)
