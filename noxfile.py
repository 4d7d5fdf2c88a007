"""Developer sessions: ``nox -s tests`` (the default tier), ``lint``, ``tiny_suite``, ``regen_golden``, ``quickstart``.

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


# -- the CI regression of metric numbers (DESIGN §8) -------------------------------------------------------------
TINY_SUITE = "suites/ci_tiny.yaml"
GOLDEN = "tests/golden/ci_tiny"
GOLDEN_FILES = ("manifest.json", "env.json", "suite.resolved.yaml", "scores.csv", "summary.csv")
# One intra-op thread: CPU float reductions (the last bits of every number) depend on the thread count.
TINY_ENV = {**OFFLINE_ENV, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# Tight: the golden is compared on other CPUs too, where the last float bits may differ. FID at N = 6 takes the
# square root of a rank-deficient covariance product, which amplifies those bits; 0.05 is 0.1 % of its value.
TINY_TOLERANCES = ("--tolerance", "*=1e-4", "--tolerance", "fid=0.05", "--tolerance", "kid=1e-3")


def _run_tiny_suite(session: nox.Session) -> str:
    out = session.create_tmp()
    output = session.run("asyrp-bench", "run", TINY_SUITE, "--out", f"{out}/results", "--device", "cpu",
                         "--no-progress", env=TINY_ENV, silent=True)
    run_dir = str(output).strip().splitlines()[-1]
    session.log(f"run folder: {run_dir}")
    return run_dir


@nox.session(python=PYTHON)
def tiny_suite(session: nox.Session) -> None:
    """Run suites/ci_tiny.yaml and compare it with tests/golden/ci_tiny/ at tight tolerances (fails on regression)."""
    session.install("-e", ".")
    run_dir = _run_tiny_suite(session)
    session.run("asyrp-bench", "compare", GOLDEN, run_dir, *TINY_TOLERANCES, env=TINY_ENV)


@nox.session(python=PYTHON, default=False)
def regen_golden(session: nox.Session) -> None:
    """Deliberately rewrite tests/golden/ci_tiny/ from the current code (review the diff before committing)."""
    import shutil
    from pathlib import Path

    session.install("-e", ".")
    run_dir = Path(_run_tiny_suite(session))
    golden = Path(GOLDEN)
    golden.mkdir(parents=True, exist_ok=True)
    for name in GOLDEN_FILES:
        shutil.copyfile(run_dir / name, golden / name)
    session.log(f"wrote {golden} from {run_dir}")


@nox.session(python=PYTHON)
def quickstart(session: nox.Session) -> None:
    """The README's main command exactly as written (offline, toy world); fails unless it writes a report with
    an image grid per edit."""
    session.install("-e", ".")
    out = session.create_tmp()
    output = session.run("asyrp-bench", "run", "suites/quickstart.yaml", "--out", f"{out}/results",
                         env=OFFLINE_ENV, silent=True)
    run_dir = str(output).strip().splitlines()[-1]
    session.log(f"run folder: {run_dir}")
    session.run("python", "-c", QUICKSTART_CHECK, run_dir)


QUICKSTART_CHECK = """
import re, sys
from pathlib import Path
run = Path(sys.argv[1])
report = (run / "report.md").read_text()
grids = re.findall(r"\\((report/grid_[^)]+[.]png)\\)", report)
assert len(grids) == 2 and all((run / g).stat().st_size > 1000 for g in grids), grids
assert (run / "report.html").is_file() and (run / "summary.csv").is_file()
print(report.split("## Images")[0])
"""
