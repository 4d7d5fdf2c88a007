"""``asyrp-bench doctor``: which weight files and data folders are present, where each goes, what to run next."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from asyrp_bench.cli.app import app, console, handle_errors


@app.command("doctor")
@handle_errors
def doctor_command(
    verify: Annotated[bool, typer.Option("--verify", help="Also check sha256 of files whose checksum is known.")] = False,
) -> None:
    """Report every pretrained file and data folder the harness can use: found where, or missing and where it goes.

    Always exits 0: missing files are normal on a fresh machine (the shipped toy world needs none of them).
    """
    from asyrp_bench import __version__, weights

    console.print(f"asyrp-bench {__version__}; looking in [bold]{weights.weights_dir()}[/] "
                  "(set ASYRP_BENCH_HOME to move it) and the library caches.")
    table = Table(title="pretrained files and data", title_justify="left", show_lines=False)
    for column in ("key", "kind", "status", "location / where it goes", "get it from"):
        table.add_column(column, overflow="fold")
    n_missing = 0
    for key, artifact in sorted(weights.ARTIFACTS.items(), key=lambda kv: (kv[1].kind, kv[0])):
        path = weights.find(key)
        if path is None:
            n_missing += 1
            table.add_row(key, artifact.kind, "[red]missing[/]", str(weights.weights_dir() / artifact.filename),
                          artifact.source)
            continue
        status = "[green]found[/]"
        if verify and artifact.sha256 and not artifact.is_dir:
            ok = weights.sha256_file(path) == artifact.sha256
            status = "[green]found, sha256 ok[/]" if ok else "[bold red]found, sha256 MISMATCH[/]"
        table.add_row(key, artifact.kind, status, str(path), artifact.source)
    console.print(table)
    if n_missing:
        console.print(
            f"{n_missing} missing. Put files where the table says (or pass explicit paths in suites). "
            "Everything runs without them on the shipped toy world: [bold]asyrp-bench run suites/quickstart.yaml[/]."
        )
    else:
        console.print("Everything is in place.")
