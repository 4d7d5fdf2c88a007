"""The report's figures: image grids and plots, written as PNG (for report.md) and SVG.

Plots are drawn from :func:`asyrp_bench.report_tables.cell_means`, the numbers of the summary table, with one
panel per backend, so every bar, point and baseline line is a number of the table (docs/results.md, "report").
The ``*_figure`` functions return the matplotlib figure so tests can read the plotted values back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from asyrp_bench.report_tables import FOLDED, cell_means, is_true, quality_metrics, short_name
from asyrp_bench.results import BASELINE_EDITOR, RunDir

GRID_IMAGES = 8
GRID_TILE = 128
SOURCES_DIR = "sources"
STRENGTH_METRICS = ("clip_directional.s_dir", "clip_directional")
FIDELITY_BASES = ("identity", "seg_consistency", "fid", "kid")
MARKERS = "osD^vP*X"


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, out: Path) -> list[Path]:
    """Write ``out`` (PNG) and the same figure as SVG beside it; close the figure."""
    svg = out.with_suffix(".svg")
    fig.savefig(out, dpi=130, bbox_inches="tight")
    fig.savefig(svg, bbox_inches="tight")
    pyplot().close(fig)
    return [out, svg]


def _direction(summary: pd.DataFrame, metric: str) -> str:
    higher = is_true(summary.loc[summary["metric"] == metric, "higher_is_better"].iloc[0])
    return "↑ higher is better" if higher else "↓ lower is better"


def metric_figure(summary: pd.DataFrame, metric: str) -> Any | None:
    """Bars of ``metric`` per edit, one bar per editor, 95% CI whiskers, one panel per backend; that backend's
    reconstruction baseline as a dashed line. The legend sits outside the axes, so it hides no bar."""
    means = cell_means(summary[summary["metric"] == metric])
    backends = list(dict.fromkeys(means.loc[means["editor"] != BASELINE_EDITOR, "backend"]))
    if not backends:
        return None
    plt = pyplot()
    edits = list(dict.fromkeys(means.loc[means["editor"] != BASELINE_EDITOR, "edit"]))
    editors = list(dict.fromkeys(means.loc[means["editor"] != BASELINE_EDITOR, "editor"]))
    width = 0.8 / max(len(editors), 1)
    fig, axes = plt.subplots(1, len(backends), figsize=(max(4.5, 1.4 * len(edits) + 2) * len(backends), 3.4),
                             squeeze=False)
    for ax, backend in zip(axes[0], backends, strict=True):
        part = means[means["backend"] == backend]
        for i, editor in enumerate(editors):
            rows = part[part["editor"] == editor].set_index("edit").reindex(edits).dropna(subset=["value"])
            if rows.empty:
                continue
            xs = [edits.index(e) + (i - (len(editors) - 1) / 2) * width for e in rows.index]
            yerr = None
            if rows["ci_low"].notna().any():
                yerr = [(rows["value"] - rows["ci_low"]).clip(lower=0).fillna(0),
                        (rows["ci_high"] - rows["value"]).clip(lower=0).fillna(0)]
            ax.bar(xs, rows["value"], width=width, label=editor, yerr=yerr, capsize=2, color=f"C{i}")
        base = part[part["editor"] == BASELINE_EDITOR]
        for value in base["value"]:
            ax.axhline(float(value), color="k", linestyle="--", linewidth=1, label="reconstruction baseline")
        ax.set_xticks(range(len(edits)))
        ax.set_xticklabels(edits, fontsize=8)
        ax.set_title(f"backend: {backend}", fontsize=9)
        ax.set_ylabel(f"{short_name(metric)} ({_direction(summary, metric)})", fontsize=8)
    handles, labels = axes[0][-1].get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    fig.legend(unique.values(), unique.keys(), fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(f"{short_name(metric)} per edit (mean over seeds, 95% CI)", fontsize=9)
    fig.tight_layout()
    return fig


def tradeoff_figure(summary: pd.DataFrame) -> Any | None:
    """S_dir (x) against each fidelity metric (y), one row of panels per backend: a point per editor and edit,
    the backend's reconstruction value as a line."""
    if summary.empty:
        return None
    strength = next((m for m in STRENGTH_METRICS if m in set(summary["metric"])), None)
    present = [m for m in quality_metrics(summary) if m.split(".")[0] in FIDELITY_BASES and m not in FOLDED]
    if strength is None or not present:
        return None
    means = cell_means(summary)
    backends = list(dict.fromkeys(means.loc[means["editor"] != BASELINE_EDITOR, "backend"]))
    editors = list(dict.fromkeys(means.loc[means["editor"] != BASELINE_EDITOR, "editor"]))
    lookup = means.set_index(["backend", "editor", "edit", "metric"])["value"]
    plt = pyplot()
    fig, grid = plt.subplots(len(backends), len(present), figsize=(3.4 * len(present), 3.1 * len(backends)),
                             squeeze=False)
    for row, backend in zip(grid, backends, strict=True):
        for ax, metric in zip(row, present, strict=True):
            _tradeoff_panel(ax, means, lookup, backend, editors, strength, metric)
            ax.set_ylabel(f"{short_name(metric)} ({_direction(summary, metric)[0]})", fontsize=8)
    handles, labels = grid[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle("edit strength vs fidelity (one row per backend)", fontsize=9)
    fig.tight_layout()
    return fig


def _tradeoff_panel(ax: Any, means: pd.DataFrame, lookup: pd.Series, backend: str, editors: Sequence[str],
                    strength: str, metric: str) -> None:
    part = means[means["backend"] == backend]
    for i, editor in enumerate(editors):
        points = []
        for edit in dict.fromkeys(part.loc[part["editor"] == editor, "edit"]):
            x = lookup.get((backend, editor, edit, strength), math.nan)
            y = lookup.get((backend, editor, edit, metric), math.nan)
            if math.isfinite(x) and math.isfinite(y):
                points.append((x, y, edit))
        if points:
            ax.scatter([p[0] for p in points], [p[1] for p in points], label=editor,
                       marker=MARKERS[i % len(MARKERS)], color=f"C{i}")
        for x, y, edit in points:
            ax.annotate(edit, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    base = part[(part["editor"] == BASELINE_EDITOR) & (part["metric"] == metric)]
    for value in base["value"]:
        ax.axhline(float(value), color="k", linestyle="--", linewidth=1, label="reconstruction")
    ax.set_title(f"backend: {backend}", fontsize=8)
    ax.set_xlabel(f"{short_name(strength)} (stronger edit →)", fontsize=8)
    ax.tick_params(labelsize=7)


# ---------------------------------------------------------------------------------------------------------
# image grids
# ---------------------------------------------------------------------------------------------------------
def cells_by_edit(run: RunDir) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """(backend, edit) -> [(editor, cell id)] of complete cells (first seed of each editor)."""
    out: dict[tuple[str, str], list[tuple[str, str]]] = {}
    seen: set[tuple[str, str, str]] = set()
    for cell_id in run.complete_cells():
        cell = run.manifest["cells"][cell_id]
        edit, editor, backend = cell.get("edit") or "", str(cell.get("editor")), str(cell.get("backend"))
        if editor == BASELINE_EDITOR or (backend, editor, edit) in seen:
            continue
        seen.add((backend, editor, edit))
        out.setdefault((backend, edit), []).append((editor, cell_id))
    return out


def baseline_cell(run: RunDir, backend: str) -> str | None:
    for cell_id in run.complete_cells():
        cell = run.manifest["cells"][cell_id]
        if cell.get("editor") == BASELINE_EDITOR and str(cell.get("backend")) == backend:
            return cell_id
    return None


def image_ids(folder: Path) -> list[str]:
    return sorted((p.stem for p in folder.glob("*.png")),
                  key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s))


def grid_panels(run: RunDir, backend: str, columns: Sequence[tuple[str, str]]) -> list[tuple[str, Path]]:
    """(label, images folder) of a grid's columns: source, reconstruction, then each editor's edit."""
    base = baseline_cell(run, backend)
    if base is None or not (run.cell_dir(base) / SOURCES_DIR).is_dir():
        return []
    return [("source", run.cell_dir(base) / SOURCES_DIR), ("reconstruction", run.cell_dir(base) / "images")] + [
        (label, run.cell_dir(cell) / "images") for label, cell in columns]


def image_grid(run: RunDir, backend: str, edit: str, columns: Sequence[tuple[str, str]], out: Path,
               n: int = GRID_IMAGES) -> tuple[int, int]:
    """One PNG: rows = the first ``n`` images, columns = source, reconstruction, then each editor's edit.

    Returns (images shown, images with every column saved); (0, 0) when nothing could be drawn. Tiles are the
    saved PNGs scaled up by an integer factor (nearest neighbour, so pixels stay honest) to at least
    ``GRID_TILE`` pixels; labels are drawn above the columns and left of the rows.
    """
    panels = grid_panels(run, backend, columns)
    if not panels:
        return 0, 0
    every = [i for i in image_ids(panels[0][1]) if all((f / f"{i}.png").is_file() for _, f in panels)]
    ids = every[:n]
    if not ids:
        return 0, 0
    from PIL import Image, ImageDraw, ImageFont

    tiles = [[Image.open(folder / f"{image_id}.png").convert("RGB") for _, folder in panels] for image_id in ids]
    size = max(max(t.width, t.height) for row in tiles for t in row)
    scale = max(1, math.ceil(GRID_TILE / size))
    tile = size * scale
    font = ImageFont.load_default(size=13)
    pad, top = 6, 26
    left = int(max(font.getlength(i) for i in ids)) + 16
    width = left + len(panels) * (tile + pad)
    height = top + len(ids) * (tile + pad) + 22
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    for c, (label, _) in enumerate(panels):
        draw.text((left + c * (tile + pad) + tile // 2, top // 2), label, fill="black", font=font, anchor="mm")
    for r, image_id in enumerate(ids):
        y = top + r * (tile + pad)
        draw.text((left - 8, y + tile // 2), image_id, fill="black", font=font, anchor="rm")
        for c, image in enumerate(tiles[r]):
            scaled = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
            canvas.paste(scaled, (left + c * (tile + pad), y))
    caption = f"{backend} / {edit}: first {len(ids)} of {len(every)} images"
    draw.text((left, height - 12), caption, fill="black", font=font, anchor="lm")
    canvas.save(out)
    return len(ids), len(every)
