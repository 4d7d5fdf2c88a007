"""A suite resolved once into the plan of a run (docs/architecture.md, "Suite -> plan").

:func:`build_plan` is the only caller of :func:`~asyrp_bench.suite.expand` on the way through a run: the dry
run prints the plan, the preflight checks it, the manifest is written from it and the runner executes it, so
the cells, their order, labels and hashes cannot differ between those steps.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from asyrp_bench import suite as suite_module
from asyrp_bench.hashing import config_hash
from asyrp_bench.results import BASELINE_EDITOR
from asyrp_bench.suite import BackendSpec, Cell, Suite


@dataclasses.dataclass(frozen=True)
class BaselineCell:
    """The reconstruction baseline of one backend and split: source vs plain DDIM reconstruction."""

    id: str
    backend: BackendSpec
    config_hash: str


@dataclasses.dataclass(frozen=True)
class Plan:
    """Everything a run will do, resolved from one suite: cells (with labels and hashes) and baselines."""

    suite: Suite
    cells: tuple[Cell, ...]
    baselines: tuple[BaselineCell, ...]
    """One per backend, in the suite's backend order."""
    suite_hash: str

    def cells_of(self, backend: BackendSpec) -> list[Cell]:
        return [cell for cell in self.cells if cell.backend is backend]

    def manifest_cells(self) -> list[dict[str, Any]]:
        """The manifest's cell records, in run order: per backend its baseline, then its cells."""
        out: list[dict[str, Any]] = []
        for backend, base in zip(self.suite.backend, self.baselines, strict=True):
            out.append({"id": base.id, "backend": backend.display, "editor": BASELINE_EDITOR,
                        "variant": BASELINE_EDITOR, "edit": "", "seed": 0, "config_hash": base.config_hash,
                        "source": "plain DDIM reconstruction"})
            for cell in self.cells_of(backend):
                out.append({"id": cell.id, "backend": backend.display, "editor": cell.editor.display,
                            "variant": cell.editor.variant, "edit": cell.edit.name, "seed": cell.seed,
                            "config_hash": cell.config_hash, "source": editor_source(cell)})
        return out


def build_plan(suite: Suite) -> Plan:
    """Resolve ``suite`` into its :class:`Plan` (expands the cells exactly once)."""
    cells = tuple(suite_module.expand(suite))
    baselines = tuple(baseline_cell(suite, backend) for backend in suite.backend)
    return Plan(suite, cells, baselines, suite_module.hash_of_cells(cells))


def baseline_cell(suite: Suite, backend: BackendSpec) -> BaselineCell:
    cell_id = "reconstruction" if len(suite.backend) == 1 else f"{backend.display}__reconstruction"
    semantic = {"baseline": "reconstruction", "backend": backend.model_dump(mode="json", exclude={"label"}),
                "data": {"split": suite.data.split, "limit": suite.data.limit, "offset": suite.data.offset,
                         "folder": Path(suite.data.folder).name if suite.data.folder else None},
                "sampler": suite.sampler.model_dump(mode="json"),
                "metrics": [m.model_dump(mode="json") for m in suite.metrics]}
    return BaselineCell(cell_id, backend, config_hash(semantic))


def editor_source(cell: Cell) -> str:
    """What the run does to obtain the cell's editor: ``load FILE`` or ``train RECIPE (+N overrides)``."""
    if cell.checkpoint is not None:
        return f"load {Path(cell.checkpoint).name}"
    assert cell.train is not None
    overrides = f" (+{len(cell.train.overrides)} overrides)" if cell.train.overrides else ""
    return f"train {cell.train.recipe}{overrides}"
