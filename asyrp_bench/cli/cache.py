"""``asyrp-bench cache verify|clear``: check or empty the on-disk cache (docs/cache.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from asyrp_bench.cli.app import app, console, handle_errors
from asyrp_bench.errors import ConfigError

cache_app = typer.Typer(help="Check or empty the on-disk cache (inversions, reconstructions, editors, features).",
                        no_args_is_help=True)
app.add_typer(cache_app, name="cache")

_DIR_HELP = "Cache folder (default: $ASYRP_BENCH_HOME/cache)."


def _root(cache_dir: Path | None) -> Path:
    from asyrp_bench.cache import default_cache_dir

    root = cache_dir.expanduser() if cache_dir is not None else default_cache_dir()
    if root.exists() and not root.is_dir():
        raise ConfigError(f"cache folder {root} is not a folder")
    return root


@cache_app.command("verify")
@handle_errors
def verify_command(
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir", help=_DIR_HELP)] = None,
    keep: Annotated[bool, typer.Option("--keep", help="Only report damaged entries; do not delete them.")] = False,
) -> None:
    """Verify every entry's key and checksum; damaged entries are deleted (recomputed when next needed).

    Exit status 1 when any entry was damaged.
    """
    from asyrp_bench.cache import verify_cache

    root = _root(cache_dir)
    checked, problems = verify_cache(root, remove=not keep)
    for path, problem in problems:
        console.print(f"damaged: {path}: {problem}" + ("" if keep else " (deleted)"), highlight=False)
    console.print(f"{checked} cache entries checked in {root}, {len(problems)} damaged", highlight=False)
    if problems:
        raise typer.Exit(1)


@cache_app.command("clear")
@handle_errors
def clear_command(
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir", help=_DIR_HELP)] = None,
    kind: Annotated[list[str] | None, typer.Option("--kind", help="Only this kind (repeatable).")] = None,
) -> None:
    """Delete cache entries (all kinds unless --kind is given)."""
    from asyrp_bench.cache import CACHE_KINDS, clear_cache

    kinds = tuple(kind or CACHE_KINDS)
    unknown = [k for k in kinds if k not in CACHE_KINDS]
    if unknown:
        raise ConfigError(f"unknown cache kind(s) {', '.join(unknown)}; kinds: {', '.join(CACHE_KINDS)}")
    root = _root(cache_dir)
    removed = clear_cache(root, kinds)
    console.print(f"removed {removed} files from {root} ({', '.join(kinds)})", highlight=False)
