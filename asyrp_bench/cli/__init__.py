"""The ``asyrp-bench`` command line. One module per subcommand; each registers itself on ``app``.

The top layer: may import everything; nothing imports it (docs/architecture.md, tests/test_layers.py).
"""

from __future__ import annotations

from asyrp_bench.cli import (  # noqa: F401  (modules register their commands on import)
    cache,
    compare,
    doctor,
    edit,
    export,
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
