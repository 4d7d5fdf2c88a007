"""asyrp-bench: an evaluation harness for h-space editing of frozen diffusion models (Asyrp, ICLR 2023).

Layers, contracts and import rules: docs/architecture.md (checked by tests/test_layers.py).

The public API is imported lazily, so ``import asyrp_bench`` (and the CLI's ``--help``) stays fast::

    import asyrp_bench as ab
    backend = ab.load_backend("tiny")
    x_T = ab.invert(backend, x0, n_steps=40)
    edited = ab.edit(backend, x_T, editor, t_edit=500, t_boost=167, n_steps=40)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "load_backend": "asyrp_bench.diffusion.backends.base",
    "Backend": "asyrp_bench.diffusion.backends.base",
    "Bottleneck": "asyrp_bench.diffusion.backends.base",
    "timestep_grid": "asyrp_bench.diffusion.schedule",
    "asyrp_step": "asyrp_bench.asyrp",
    "invert": "asyrp_bench.asyrp",
    "edit": "asyrp_bench.asyrp",
    "generate": "asyrp_bench.asyrp",
    "image_generators": "asyrp_bench.asyrp",
    "load_editor": "asyrp_bench.editors.io",
    "save_editor": "asyrp_bench.editors.io",
    "train_editor": "asyrp_bench.training",
    "Recipe": "asyrp_bench.recipes",
    "resolve_recipe": "asyrp_bench.recipes",
    "build_editor": "asyrp_bench.editors.base",
    "Editor": "asyrp_bench.editors.base",
    "load_suite": "asyrp_bench.suite",
    "expand": "asyrp_bench.suite",
    "run_suite": "asyrp_bench.runner",
    "resume_run": "asyrp_bench.runner",
    "RunDir": "asyrp_bench.results",
    "compare_runs": "asyrp_bench.compare",
    "write_report": "asyrp_bench.report",
    "resolve_split": "asyrp_bench.data",
    "load_runs": "asyrp_bench.results_json",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'asyrp_bench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
