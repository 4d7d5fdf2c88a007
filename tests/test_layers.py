"""The import rules of docs/architecture.md ("Layers"), checked on every module's imports (top level and inside
functions), so the layering cannot erode silently (issue 9)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "asyrp_bench"

# Layer of every top-level module or sub-package. A module that is not listed fails the test: a new file must
# be given its place (docs/architecture.md says where each kind of change goes).
LAYER_OF = {
    "__init__": "api", "__main__": "cli",
    "errors": "base", "registry": "base", "hashing": "base", "cache_entries": "base", "images": "base", "weights": "base",
    "clip": "base", "stats": "base",
    "diffusion": "diffusion",
    "editors": "editors",
    "asyrp": "engine", "training": "engine", "recipes": "engine", "prompts": "engine", "cache": "engine",
    "calibration": "engine", "distributed": "engine", "precision": "base",
    "metrics": "metrics",
    "world": "world",
    "suite": "harness", "suite_guard": "harness", "plan": "harness", "runner": "harness", "results": "harness",
    "compare": "harness", "report": "harness", "data": "harness", "export": "harness", "loading": "harness",
    "report_tables": "harness", "report_plots": "harness", "report_html": "harness", "results_json": "harness",
    "cli": "cli",
}

# What each layer may import (besides itself). The harness may use everything below the CLI; nothing below the
# harness may import the harness or the CLI.
MAY_IMPORT = {
    "base": {"base"},
    "diffusion": {"base"},
    "editors": {"base", "diffusion"},
    "engine": {"base", "diffusion", "editors"},
    "metrics": {"base"},
    "world": {"base", "diffusion", "editors", "engine", "metrics"},
    "harness": {"base", "diffusion", "editors", "engine", "metrics", "world"},
    "cli": {"base", "diffusion", "editors", "engine", "metrics", "world", "harness", "api"},
    "api": set(LAYER_OF.values()),
}


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "assets" not in p.parts)


def _top(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imported_tops(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "asyrp_bench" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_every_module_has_a_layer() -> None:
    unknown = sorted({_top(p) for p in _modules()} - set(LAYER_OF))
    assert not unknown, f"give these modules a layer in tests/test_layers.py and docs/architecture.md: {unknown}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_follow_the_layers(path: Path) -> None:
    layer = LAYER_OF.get(_top(path))
    if layer is None:
        pytest.skip("no layer (reported by test_every_module_has_a_layer)")
    allowed = MAY_IMPORT[layer] | {layer}
    bad = sorted(t for t in _imported_tops(path) if LAYER_OF.get(t, "?") not in allowed)
    assert not bad, f"{path.relative_to(PACKAGE)} ({layer}) imports {bad}, outside {sorted(allowed)}"


def test_the_rule_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "x.py"
    bad.write_text("def f():\n    from asyrp_bench.runner import run_suite\n")
    assert _imported_tops(bad) == {"runner"}
    assert LAYER_OF["runner"] not in MAY_IMPORT["metrics"]

