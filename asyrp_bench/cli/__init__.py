"""The ``asyrp-bench`` command line. One module per subcommand; each registers itself on ``app``."""

from __future__ import annotations

from asyrp_bench.cli import (  # noqa: F401  (modules register their commands on import)
    cache,
    compare,
    doctor,
    edit,
    ls,
    report,
    run,
    score,
    train,
    validate,
    world,
)
from asyrp_bench.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
