"""The Typer application object and the shared error handling of every subcommand.

Subcommand modules import ``app`` (or a sub-app) from here and decorate their functions with ``@app.command()``
and ``@handle_errors``. Heavy libraries are imported inside the command functions so ``--help`` stays fast.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from asyrp_bench.errors import AsyrpBenchError

# Output captured by CI logs or files is not a terminal; rich would wrap tables at 80 columns there.
_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160
console = Console(width=_WIDTH)
err_console = Console(stderr=True, width=_WIDTH)

app = typer.Typer(
    name="asyrp-bench",
    help="Benchmark and evaluation harness for h-space editing of frozen diffusion models (Asyrp, ICLR 2023).",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    add_completion=False,
)

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(fn: F) -> F:
    """Print an AsyrpBenchError as one clear line (no traceback) and exit with status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AsyrpBenchError as error:
            err_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]
