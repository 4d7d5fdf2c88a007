"""Developer sessions: ``nox -s tests`` (the default tier), ``lint``, ``tiny_suite``, ``regen_golden``.

Each session installs the project into its own virtual environment from this repository's pyproject.toml.
"""

from __future__ import annotations

import nox

nox.needs_version = ">=2025.2.9"
nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Offline CPU tests: the default tier plus the tiny end-to-end (slow) tier."""
    session.install("-e", ".[dev]")
    session.run("pytest", *(session.posargs or ["-q"]), env=OFFLINE_ENV)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and format check."""
    session.install("ruff>=0.8")
    session.run("ruff", "check", ".")
