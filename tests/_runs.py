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


def write_images(folder: Path, cell_id: str, n: int) -> None:
    """Small smooth PNGs whose colour depends on the cell, so grids show differences."""
    from PIL import Image

    rng = np.random.default_rng(sum(map(ord, cell_id)))
    targets = [folder / "images"] + ([folder / "sources"] if cell_id == "reconstruction" else [])
    for target in targets:
        target.mkdir()
        for i in range(n):
            base = rng.integers(0, 255, size=(4, 4, 3)).astype(np.uint8)
            Image.fromarray(base).resize((32, 32), Image.Resampling.BILINEAR).save(target / f"{i:03d}.png")


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
    images: int = 0,
    suite_yaml: str = "name: toy\n",
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
        writer = RunWriter.create(root, suite, "abcdef1234", suite_yaml, {"device": "cpu"}, cells)
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
        if images:
            write_images(tmp, cell["id"], images)
        writer.commit_cell(cell["id"], tmp)
    if stop_after is None:
        writer.finalize()
    return writer
