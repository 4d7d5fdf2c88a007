"""Synthetic run folders written through the real results writer (for results, compare and report tests)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from asyrp_bench.results import (
    BASELINE_EDITOR,
    MetricInfo,
    RunWriter,
    cell_scores,
    cell_summary,
    write_cell_tables,
)

METRICS = {
    "clip_directional": MetricInfo("clip_directional", "1", "c0ffee0", True, True),
    "identity": MetricInfo("identity", "1", "face000", True, True),
    "fid": MetricInfo("fid", "1", "incep00", False, False),
}


def cell_frames(labels: dict, n_images: int, shift: Mapping[str, float], rng_seed: int,
                infos: Mapping[str, MetricInfo], split_hash: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(rng_seed)
    rows = []
    set_values = {}
    for name, info in infos.items():
        if info.per_image:
            values = rng.normal(0.5, 0.1, size=n_images) + shift.get(name, 0.0)
            rows += [{"image_id": f"{i:03d}", "metric": name, "value": float(v)} for i, v in enumerate(values)]
        else:
            set_values[name] = (float(20.0 + rng.normal() + shift.get(name, 0.0)), float("nan"), float("nan"))
    per_image = pd.DataFrame(rows, columns=["image_id", "metric", "value"])
    return (cell_scores(labels, per_image),
            cell_summary(labels, per_image, set_values, dict(infos), split_hash, n_images))


def make_run(
    root: Path,
    suite: str = "toy",
    editors: Sequence[str] = ("additive", "adagn"),
    edits: Sequence[str] = ("smiling", "tanned"),
    seeds: Sequence[int] = (0,),
    n_images: int = 12,
    shift: Mapping[tuple[str, str], float] | None = None,
    infos: Mapping[str, MetricInfo] | None = None,
    split_hash: str = "split0",
    stop_after: int | None = None,
    writer: RunWriter | None = None,
) -> RunWriter:
    """A run of ``editors × edits × seeds`` plus a reconstruction baseline. ``shift[(editor, metric)]`` moves an
    editor's values; ``stop_after`` commits only that many cells (an interrupted run)."""
    shift = shift or {}
    infos = infos or METRICS
    cells = [{"id": "reconstruction", "backend": "tiny", "editor": BASELINE_EDITOR, "variant": BASELINE_EDITOR,
              "edit": "", "seed": seeds[0], "config_hash": "base"}]
    for editor in editors:
        for edit in edits:
            for seed in seeds:
                cells.append({"id": f"{editor}__{edit}__s{seed}", "backend": "tiny", "editor": editor,
                              "variant": editor, "edit": edit, "seed": seed,
                              "config_hash": f"{editor}{edit}{seed}"})
    if writer is None:
        writer = RunWriter.create(root, suite, "abcdef1234", "name: toy\n", {"device": "cpu"}, cells)
    for index, cell in enumerate(cells):
        if stop_after is not None and index >= stop_after:
            break
        if writer.is_complete(cell["id"]):
            continue
        tmp = writer.begin_cell(cell["id"])
        labels = {k: cell[k] for k in ("backend", "editor", "variant", "edit", "seed")} | {"cell": cell["id"]}
        cell_shift = {m: v for (e, m), v in shift.items() if e == cell["editor"]}
        # Values depend on the cell's identity only, as real scores do.
        rng_seed = sum(map(ord, cell["id"]))
        scores, summary = cell_frames(labels, n_images, cell_shift, rng_seed, infos, split_hash)
        write_cell_tables(tmp, scores, summary, {"id": cell["id"]})
        writer.commit_cell(cell["id"], tmp)
    if stop_after is None:
        writer.finalize()
    return writer
