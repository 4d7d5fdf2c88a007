"""report.md and report.html of a run: tables, image grids and plots (docs/results.md, "report").

Everything is derived from the run folder (summary.csv, the cells' images, suite.resolved.yaml), so
``asyrp-bench report RUN_DIR`` can regenerate it at any time. Figures are PNG files (for report.md) with an SVG
copy in ``<run>/report/``, drawn with matplotlib's Agg backend (no display needed). The tables live in
:mod:`asyrp_bench.report_tables`, the figures in :mod:`asyrp_bench.report_plots`, the interactive page in
:mod:`asyrp_bench.report_html`.

What a reader should not miss is written into the report itself: published numbers are shown beside ours and
never mixed into them (with their caveats), FID on ~100 images is biased upward (report KID and N beside it),
KID can be negative, and fidelity metrics favour weak edits, so they are read together with the edit-strength
metric (S_dir) and the reconstruction baseline.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from asyrp_bench import report_plots as plots
from asyrp_bench.report_plots import GRID_IMAGES, STRENGTH_METRICS
from asyrp_bench.report_tables import (
    LABELS,
    quality_metrics,
    reference_column,
    settings_table,
    short_name,
    summary_table,
    table_metrics,
    units_line,
)
from asyrp_bench.results import RunDir

__all__ = ["GRID_IMAGES", "LABELS", "REPORT_DIR", "STRENGTH_METRICS", "Section", "quality_metrics",
           "reference_column", "short_name", "summary_table", "table_metrics", "write_report"]

REPORT_DIR = "report"
Section = tuple[str, list[tuple[str, str]]]
"""(title, [(kind, payload)]); kinds: text, note, table, settings, image ("src|alt")."""

FID_NOTE = (
    "FID on a small set of images (N ≈ 100) is biased upward and depends on N (with N below the feature dimension, "
    "2048 for Inception, the covariance is rank-deficient; docs/metrics.md). Compare FID only between runs "
    "with the same N, feature extractor and tool; KID (unbiased) and the reconstruction baseline are shown for that "
    "reason."
)
KID_NOTE = (
    "KID is an unbiased estimate of a squared distance (MMD²): when two image sets are close, the estimate "
    "scatters around 0 and can be negative. A negative KID means 'no difference detected at this N' (read it "
    "with its ± std over subsets), not 'better than identical'."
)
STRENGTH_NOTE = (
    "Fidelity metrics (ID, SC, FID, KID) improve as edits get weaker: an editor that changes nothing scores like the "
    "reconstruction baseline. Read them together with the edit-strength metric S_dir (the trade-off plot) and "
    "against the reconstruction row (source vs plain DDIM reconstruction), never alone (docs/metrics.md)."
)
BASELINE_NOTE = (
    "The reconstruction row scores the plain DDIM reconstruction in place of an edit (no prompts, so no S_dir). "
    "Where a metric's reference is the reconstruction itself (SC by default, as in the Asyrp script), that row is 1 "
    "by construction; its FID, KID and ID are the floor an editor is measured against."
)


def _run_section(run: RunDir) -> Section:
    manifest, env = run.manifest, run.env
    info = [
        ("text", f"Suite **{manifest.get('suite')}** — run `{run.name}` — status **{manifest.get('status')}** "
                 f"({len(run.complete_cells())}/{len(run.cell_ids())} cells)."),
        ("text", f"Device {env.get('device', '?')}; asyrp-bench {manifest.get('asyrp_bench')}; git "
                 f"{(env.get('git') or {}).get('sha') or 'unknown'}"
                 f"{' (dirty)' if (env.get('git') or {}).get('dirty') else ''}; torch "
                 f"{(env.get('libraries') or {}).get('torch')}."),
    ]
    if run.suite.get("description"):
        info.append(("text", str(run.suite["description"])))
    for name, split in (manifest.get("splits") or {}).items():
        role, shown = ("Training images", name.split(":", 1)[1]) if name.startswith("train:") else ("Images", name)
        info.append(("text", f"{role}: {shown}, N = {split.get('n')}, split hash "
                             f"`{str(split.get('split_hash'))[:12]}` — {split.get('rule', '')}."))
    return "Run", info


def _summary_section(summary: pd.DataFrame, notes: list[str]) -> Section:
    body: list[tuple[str, str]] = [("table", ""), *[("note", n) for n in notes]]
    if not summary.empty:
        body.insert(1, ("text", units_line(summary)))
        bases = summary["metric"].str.split(".").str[0]
        n_values = sorted({int(v) for v in summary.loc[bases.isin(["fid", "kid"]), "n"]})
        if n_values:
            body.append(("note", f"{FID_NOTE} Here N = {', '.join(map(str, n_values))}."))
        if (bases == "kid").any():
            body.append(("note", KID_NOTE))
        body.append(("note", STRENGTH_NOTE))
        body.append(("note", BASELINE_NOTE))
    return "Summary (mean [95% CI])", body


def _figures(run: RunDir, figures: Path, summary: pd.DataFrame) -> tuple[Section, Section | None]:
    grids: list[tuple[str, str]] = []
    groups = plots.cells_by_edit(run)
    many_backends = len({backend for backend, _ in groups}) > 1
    for (backend, edit), columns in groups.items():
        out = figures / (f"grid_{edit}__{backend}.png" if many_backends else f"grid_{edit}.png")
        shown, total = plots.image_grid(run, backend, edit, columns, out)
        if shown:
            grids.append(("text", f"{backend} / {edit}: the first {shown} of {total} images."))
            grids.append(("image", f"{REPORT_DIR}/{out.name}|image grid, backend {backend}, edit {edit}"))
    if not grids:
        grids.append(("text", "No images were saved in this run (output.save_images), so there are no grids."))
    drawn: list[tuple[str, str]] = []
    figure = plots.tradeoff_figure(summary)
    if figure is not None:
        plots.save(figure, figures / "tradeoff.png")
        drawn.append(("image", f"{REPORT_DIR}/tradeoff.png|edit strength vs fidelity"))
    for metric in quality_metrics(summary) if not summary.empty else []:
        figure = plots.metric_figure(summary, metric)
        if figure is not None:
            plots.save(figure, figures / f"metric_{metric}.png")
            drawn.append(("image", f"{REPORT_DIR}/metric_{metric}.png|{short_name(metric)} per edit"))
    return ("Images: source, reconstruction, each editor", grids), ("Plots", drawn) if drawn else None


def write_report(run_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """(Re)write ``report.md``, ``report.html`` and ``report/*.png|svg`` of a run folder; returns the documents."""
    from asyrp_bench.report_html import render_html

    run = RunDir(run_dir)
    figures = run.path / REPORT_DIR
    figures.mkdir(exist_ok=True)
    for old in [*figures.glob("*.png"), *figures.glob("*.svg")]:
        old.unlink()
    table, notes, kinds = summary_table(run)
    summary = run.summary()
    grids, drawn = _figures(run, figures, summary)
    sections: list[Section] = [_run_section(run), _summary_section(summary, notes),
                               ("Settings of every cell", [("settings", "")]), grids]
    if drawn is not None:
        sections.append(drawn)
    settings = settings_table(run)
    md_path, html_path = run.path / "report.md", run.path / "report.html"
    md_path.write_text(_render_markdown(run, sections, table, settings), encoding="utf-8")
    html_path.write_text(render_html(run, sections, table, kinds, settings), encoding="utf-8")
    return md_path, html_path


def markdown_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_(no complete cells)_\n"
    head = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body]) + "\n"


def _render_markdown(run: RunDir, sections: list[Section], table: pd.DataFrame, settings: pd.DataFrame) -> str:
    lines = [f"# {run.manifest.get('suite')}: asyrp-bench report", ""]
    for title, items in sections:
        lines += [f"## {title}", ""]
        for kind, payload in items:
            if kind == "table":
                lines.append(markdown_table(table))
            elif kind == "settings":
                lines.append(markdown_table(settings))
            elif kind == "image":
                src, alt = payload.split("|", 1)
                lines += [f"![{alt}]({src})", ""]
            elif kind == "note":
                lines += [f"> {payload}", ""]
            else:
                lines += [payload, ""]
    return "\n".join(lines).rstrip() + "\n"
