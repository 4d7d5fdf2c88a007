"""report.md and report.html of a run: tables, image grids and plots (DESIGN §6).

Everything is derived from the run folder (summary.csv, the cells' images, suite.resolved.yaml), so
``asyrp-bench report RUN_DIR`` can regenerate it at any time. Figures are PNG files in ``<run>/report/``, linked
relatively from both documents, drawn with matplotlib's Agg backend (no display needed).

What a reader should not miss is written into the report itself: published numbers are shown beside ours and
never mixed into them (with their caveats), FID on ~100 images is biased upward (report KID and N beside it),
and fidelity metrics favour weak edits, so they are read together with the edit-strength metric (S_dir) and the
reconstruction baseline.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from asyrp_bench.errors import AsyrpBenchError
from asyrp_bench.results import BASELINE_EDITOR, RunDir

REPORT_DIR = "report"
GRID_IMAGES = 8
GRID_TILE = 128
SOURCES_DIR = "sources"

LABELS = {
    "clip_directional.s_dir": "S_dir",
    "clip_directional.image_text_sim": "CLIP sim(edit, target)",
    "identity.cosine": "ID",
    "identity.no_face": "no-face rate",
    "seg_consistency.pixel_accuracy": "SC (pixel acc.)",
    "seg_consistency.miou": "SC (mIoU)",
    "fid.fid": "FID",
    "kid.kid": "KID",
}
"""Display names; the order is the column order of the summary table (others follow alphabetically)."""
SHORT_NAMES = {"clip_directional": "S_dir", "seg_consistency": "SC", "fid": "FID", "kid": "KID", "identity": "ID"}
STRENGTH_METRICS = ("clip_directional.s_dir", "clip_directional")
FIDELITY_BASES = ("identity", "seg_consistency", "fid", "kid")
FOLDED = {"kid.kid_std": "kid.kid"}
"""Values shown inside another column (KID ± its std over subsets) rather than as their own column."""
HIDDEN = ("kid.subset_size",)

FID_NOTE = (
    "FID on a small set of images (N ≈ 100) is biased upward and depends on N (with N below the feature dimension, "
    "2048 for Inception, the covariance is rank-deficient; metrics_and_peers.md §5.4). Compare FID only between runs "
    "with the same N, feature extractor and tool; KID (unbiased) and the reconstruction baseline are shown for that "
    "reason."
)
STRENGTH_NOTE = (
    "Fidelity metrics (ID, SC, FID, KID) improve as edits get weaker: an editor that changes nothing scores like the "
    "reconstruction baseline. Read them together with the edit-strength metric S_dir (the trade-off plot) and "
    "against the reconstruction row (source vs plain DDIM reconstruction), never alone (DESIGN §4)."
)


BASELINE_NOTE = (
    "The reconstruction row scores the plain DDIM reconstruction in place of an edit (no prompts, so no S_dir). "
    "Where a metric's reference is the reconstruction itself (SC by default, as in the Asyrp script), that row is 1 "
    "by construction; its FID, KID and ID are the floor an editor is measured against."
)


def short_name(metric: str) -> str:
    """A metric column's display name ("clip_directional.s_dir" -> "S_dir")."""
    if metric in LABELS:
        return LABELS[metric]
    base, _, rest = metric.partition(".")
    name = SHORT_NAMES.get(base, base)
    return f"{name} {rest}" if rest else name


def _is_true(value: Any) -> bool | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        return {"true": True, "1": True, "false": False, "0": False}.get(value.strip().lower())
    return bool(value)


def table_metrics(summary: pd.DataFrame) -> list[str]:
    """Metric columns of the summary table, in display order (folded and hidden ones left out)."""
    present = list(dict.fromkeys(summary["metric"]))
    shown = [m for m in present if m not in FOLDED and m not in HIDDEN]
    order = list(LABELS)
    return sorted(shown, key=lambda m: (order.index(m) if m in order else len(order), m))


def quality_metrics(summary: pd.DataFrame) -> list[str]:
    """Metrics with a direction (plots are drawn for these), in display order."""
    directions = summary.drop_duplicates("metric").set_index("metric")["higher_is_better"]
    return [m for m in table_metrics(summary) if _is_true(directions.get(m)) is not None]


def reference_column(metric: str, columns: Sequence[str]) -> str | None:
    """The column a published number for ``metric`` belongs to: itself, or the metric's primary value."""
    if metric in columns:
        return metric
    candidates = [c for c in columns if c.split(".")[0] == metric]
    try:
        from asyrp_bench.metrics import METRICS

        primary = f"{metric}.{METRICS.get(metric).primary_key()}"
        if primary in candidates:
            return primary
    except (ImportError, AsyrpBenchError):  # without the metric package only the mapping is lost
        pass
    return candidates[0] if len(candidates) == 1 else None


def _fmt(value: float, digits: int = 4) -> str:
    if value is None or not math.isfinite(float(value)):
        return "–"
    return f"{float(value):.{digits}g}"


def _fmt_ci(row: pd.Series) -> str:
    text = _fmt(row["value"])
    if math.isfinite(float(row.get("ci_low", math.nan))):
        text += f" [{_fmt(row['ci_low'], 3)}, {_fmt(row['ci_high'], 3)}]"
    return text


# ---------------------------------------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------------------------------------
def summary_table(run: RunDir) -> tuple[pd.DataFrame, list[str]]:
    """Rows (backend, editor, edit) + published reference rows, columns metrics, cells "mean [CI]".

    Values are averaged over seeds (CI bounds too, as a rough guide); reference rows are labelled
    "published: <label>" and carry a footnote mark.
    """
    summary = run.summary()
    notes: list[str] = []
    if summary.empty:
        return pd.DataFrame(), notes
    summary = summary.assign(edit=summary["edit"].fillna(""))
    many_backends = summary["backend"].nunique() > 1
    keys = ["backend", "editor", "edit"] if many_backends else ["editor", "edit"]
    grouped = summary.groupby([*keys, "metric"], sort=False).agg(
        value=("value", "mean"), ci_low=("ci_low", "mean"), ci_high=("ci_high", "mean"), n=("n", "max"),
        seeds=("seed", "nunique")).reset_index()
    grouped["text"] = grouped.apply(_fmt_ci, axis=1)
    for folded, into in FOLDED.items():
        extra = grouped[grouped["metric"] == folded].set_index([*keys])["value"]
        target = grouped["metric"] == into
        for index in grouped.index[target]:
            key = tuple(grouped.loc[index, keys])
            value = extra.get(key if len(keys) > 1 else key[0])
            if value is not None and math.isfinite(float(value)):
                grouped.loc[index, "text"] += f" ± {_fmt(value, 2)}"
    metrics = table_metrics(summary)
    table = grouped.pivot_table(index=keys, columns="metric", values="text", aggfunc="first", sort=False)
    table = table.reindex(columns=metrics).reset_index()
    table["edit"] = table["edit"].replace("", "—")
    for index, ref in enumerate(run.suite.get("reference") or []):
        mark = "†" * (index + 1)
        order = list(dict.fromkeys(summary["edit"]))
        for edit in sorted({e for per_edit in ref["values"].values() for e in per_edit},
                           key=lambda e: order.index(e) if e in order else len(order)):
            row: dict[str, Any] = {k: "" for k in table.columns}
            row["editor"] = f"published: {ref['label']}{mark}"
            row["edit"] = edit
            for metric, per_edit in ref["values"].items():
                column = reference_column(metric, metrics)
                if edit in per_edit and column is not None:
                    row[column] = f"{_fmt(per_edit[edit])}{mark}"
            table = pd.concat([table, pd.DataFrame([row])], ignore_index=True)
        notes.append(f"{mark} {ref['label']}: {ref['source']}. {ref.get('note', '')}".strip())
    table = table.rename(columns={m: short_name(m) for m in metrics})
    if (grouped["seeds"] > 1).any():
        notes.append("Values are means over seeds; the bracketed 95% bootstrap CIs (over images) are averaged too.")
    return table.fillna("–"), notes


def _markdown_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_(no complete cells)_\n"
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"


# ---------------------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------------------
def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _cells_by_edit(run: RunDir) -> dict[str, list[tuple[str, str]]]:
    """edit -> [(editor label, cell id)] of complete cells (first seed of each editor)."""
    out: dict[str, list[tuple[str, str]]] = {}
    seen: set[tuple[str, str, str]] = set()
    for cell_id in run.complete_cells():
        cell = run.manifest["cells"][cell_id]
        edit, editor = cell.get("edit") or "", str(cell.get("editor"))
        key = (str(cell.get("backend")), editor, edit)
        if editor == BASELINE_EDITOR or key in seen:
            continue
        seen.add(key)
        label = editor if run.summary()["backend"].nunique() <= 1 else f"{cell.get('backend')}/{editor}"
        out.setdefault(edit, []).append((label, cell_id))
    return out


def _baseline_cell(run: RunDir) -> str | None:
    for cell_id in run.complete_cells():
        if run.manifest["cells"][cell_id].get("editor") == BASELINE_EDITOR:
            return cell_id
    return None


def image_grid(run: RunDir, edit: str, columns: Sequence[tuple[str, str]], out: Path, n: int = GRID_IMAGES) -> bool:
    """One PNG: rows = the first ``n`` images, columns = source, reconstruction, then each editor's edit.

    Tiles are the saved PNGs scaled up by an integer factor (nearest neighbour, so pixels stay honest) to at
    least ``GRID_TILE`` pixels; labels are drawn above the columns and left of the rows.
    """
    base = _baseline_cell(run)
    if base is None:
        return False
    sources = run.cell_dir(base) / SOURCES_DIR
    recon = run.cell_dir(base) / "images"
    if not sources.is_dir():
        return False
    ids = sorted((p.stem for p in sources.glob("*.png")),
                 key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s))
    panels = [("source", sources), ("reconstruction", recon)] + [
        (label, run.cell_dir(cell) / "images") for label, cell in columns]
    ids = [i for i in ids if all((folder / f"{i}.png").is_file() for _, folder in panels)][:n]
    if not ids:
        return False
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
    draw.text((left, height - 12), f"edit: {edit}", fill="black", font=font, anchor="lm")
    canvas.save(out)
    return True


def metric_plot(run: RunDir, metric: str, out: Path) -> bool:
    """Bars: the metric per edit, one bar per editor, 95% CI whiskers; the reconstruction baseline as a line."""
    summary = run.summary()
    summary = summary[summary["metric"] == metric].assign(edit=lambda f: f["edit"].fillna(""))
    edited = summary[summary["editor"] != BASELINE_EDITOR]
    if edited.empty:
        return False
    plt = _pyplot()
    stats = edited.groupby(["edit", "editor"], sort=False).agg(value=("value", "mean"), low=("ci_low", "mean"),
                                                               high=("ci_high", "mean")).reset_index()
    edits = list(dict.fromkeys(stats["edit"]))
    editors = list(dict.fromkeys(stats["editor"]))
    width = 0.8 / max(len(editors), 1)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(edits) + 1.5), 3.2))
    for i, editor in enumerate(editors):
        part = stats[stats["editor"] == editor].set_index("edit").reindex(edits)
        xs = [j + (i - (len(editors) - 1) / 2) * width for j in range(len(edits))]
        yerr = None
        if part["low"].notna().any():
            yerr = [(part["value"] - part["low"]).clip(lower=0).fillna(0), (part["high"] - part["value"]).clip(
                lower=0).fillna(0)]
        ax.bar(xs, part["value"], width=width, label=editor, yerr=yerr, capsize=2)
    base = summary[summary["editor"] == BASELINE_EDITOR]
    if not base.empty:
        ax.axhline(float(base["value"].mean()), color="k", linestyle="--", linewidth=1,
                   label="reconstruction baseline")
    ax.set_xticks(range(len(edits)))
    ax.set_xticklabels(edits, fontsize=8)
    direction = "higher" if _is_true(summary["higher_is_better"].iloc[0]) else "lower"
    ax.set_ylabel(f"{short_name(metric)} ({direction} is better)", fontsize=8)
    ax.set_title(f"{short_name(metric)} per edit", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return True


def tradeoff_plot(run: RunDir, out: Path) -> bool:
    """S_dir (x) against each fidelity metric (y): one point per editor and edit; the baseline as a line."""
    summary = run.summary()
    if summary.empty:
        return False
    summary = summary.assign(edit=summary["edit"].fillna(""))
    strength_name = next((m for m in STRENGTH_METRICS if m in set(summary["metric"])), None)
    if strength_name is None:
        return False
    present = [m for m in quality_metrics(summary) if m.split(".")[0] in FIDELITY_BASES]
    if not present:
        return False
    plt = _pyplot()
    means = summary.groupby(["editor", "edit", "metric"], sort=False)["value"].mean()
    n_cols = min(3, len(present))
    n_rows = math.ceil(len(present) / n_cols)
    fig, grid = plt.subplots(n_rows, n_cols, figsize=(3.6 * n_cols, 3.2 * n_rows), squeeze=False)
    axes = [[ax for row in grid for ax in row][: len(present)]]
    for ax in [ax for row in grid for ax in row][len(present):]:
        ax.set_visible(False)
    editors = [e for e in dict.fromkeys(summary["editor"]) if e != BASELINE_EDITOR]
    markers = "osD^vP*X"
    for ax, metric in zip(axes[0], present, strict=True):
        for i, editor in enumerate(editors):
            xs, ys, names = [], [], []
            for edit in dict.fromkeys(summary.loc[summary["editor"] == editor, "edit"]):
                x = means.get((editor, edit, strength_name), math.nan)
                y = means.get((editor, edit, metric), math.nan)
                if math.isfinite(x) and math.isfinite(y):
                    xs.append(x)
                    ys.append(y)
                    names.append(edit)
            ax.scatter(xs, ys, label=editor, marker=markers[i % len(markers)])
            for x, y, name in zip(xs, ys, names, strict=True):
                ax.annotate(name, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        base = summary[(summary["editor"] == BASELINE_EDITOR) & (summary["metric"] == metric)]
        if not base.empty:
            ax.axhline(float(base["value"].mean()), color="k", linestyle="--", linewidth=1, label="reconstruction")
        higher = _is_true(summary.loc[summary["metric"] == metric, "higher_is_better"].iloc[0])
        ax.set_xlabel(f"{short_name(strength_name)} (stronger edit →)", fontsize=8)
        ax.set_ylabel(f"{short_name(metric)} ({'higher' if higher else 'lower'} is better)", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("edit strength vs fidelity", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return True


# ---------------------------------------------------------------------------------------------------------
# documents
# ---------------------------------------------------------------------------------------------------------
def write_report(run_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """(Re)write ``report.md``, ``report.html`` and ``report/*.png`` of a run folder; returns the two documents."""
    run = RunDir(run_dir)
    figures = run.path / REPORT_DIR
    figures.mkdir(exist_ok=True)
    for old in figures.glob("*.png"):
        old.unlink()
    table, notes = summary_table(run)
    summary = run.summary()
    manifest, env = run.manifest, run.env
    sections: list[tuple[str, list[tuple[str, str]]]] = []  # (title, [(kind, payload)])

    info = [
        ("text", f"Suite **{manifest.get('suite')}** — run `{run.name}` — status **{manifest.get('status')}** "
                 f"({len(run.complete_cells())}/{len(run.cell_ids())} cells)."),
        ("text", f"Device {env.get('device', '?')}; asyrp-bench {manifest.get('asyrp_bench')}; git "
                 f"{(env.get('git') or {}).get('sha') or 'unknown'}"
                 f"{' (dirty)' if (env.get('git') or {}).get('dirty') else ''}; torch "
                 f"{(env.get('libraries') or {}).get('torch')}."),
    ]
    description = run.suite.get("description")
    if description:
        info.append(("text", str(description)))
    for name, split in (manifest.get("splits") or {}).items():
        role, shown = ("Training images", name.split(":", 1)[1]) if name.startswith("train:") else ("Images", name)
        info.append(("text", f"{role}: {shown}, N = {split.get('n')}, split hash "
                             f"`{str(split.get('split_hash'))[:12]}` — {split.get('rule', '')}."))
    sections.append(("Run", info))

    body: list[tuple[str, str]] = [("table", ""), *[("note", n) for n in notes]]
    if not summary.empty:
        n_values = sorted({int(v) for v in summary.loc[summary["metric"].str.split(".").str[0].isin(["fid", "kid"]),
                                                        "n"]})
        if n_values:
            body.append(("note", f"{FID_NOTE} Here N = {', '.join(map(str, n_values))}."))
        body.append(("note", STRENGTH_NOTE))
        body.append(("note", BASELINE_NOTE))
    sections.append(("Summary (mean [95% CI])", body))

    grids: list[tuple[str, str]] = []
    for edit, columns in _cells_by_edit(run).items():
        out = figures / f"grid_{edit}.png"
        if image_grid(run, edit, columns, out):
            grids.append(("image", f"{REPORT_DIR}/{out.name}|image grid, edit {edit}"))
    if not grids:
        grids.append(("text", "No images were saved in this run (output.save_images), so there are no grids."))
    sections.append(("Images: source, reconstruction, each editor", grids))

    plots: list[tuple[str, str]] = []
    if tradeoff_plot(run, figures / "tradeoff.png"):
        plots.append(("image", f"{REPORT_DIR}/tradeoff.png|edit strength vs fidelity"))
    for metric in quality_metrics(summary) if not summary.empty else []:
        out = figures / f"metric_{metric}.png"
        if metric_plot(run, metric, out):
            plots.append(("image", f"{REPORT_DIR}/{out.name}|{short_name(metric)} per edit"))
    if plots:
        sections.append(("Plots", plots))

    md = _render_markdown(run, sections, table)
    page = _render_html(run, sections, table)
    md_path, html_path = run.path / "report.md", run.path / "report.html"
    md_path.write_text(md, encoding="utf-8")
    html_path.write_text(page, encoding="utf-8")
    return md_path, html_path


def _render_markdown(run: RunDir, sections: list[tuple[str, list[tuple[str, str]]]], table: pd.DataFrame) -> str:
    lines = [f"# {run.manifest.get('suite')}: asyrp-bench report", ""]
    for title, items in sections:
        lines += [f"## {title}", ""]
        for kind, payload in items:
            if kind == "table":
                lines.append(_markdown_table(table))
            elif kind == "image":
                src, alt = payload.split("|", 1)
                lines += [f"![{alt}]({src})", ""]
            elif kind == "note":
                lines += [f"> {payload}", ""]
            else:
                lines += [payload, ""]
    return "\n".join(lines).rstrip() + "\n"


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:0.85em}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
td:first-child,td:nth-child(2),th{text-align:left}tr.published td{color:#666;font-style:italic}
blockquote{border-left:4px solid #e0b000;margin:0.8em 0;padding:0.2em 0.8em;background:#fffbea}
img{max-width:100%;border:1px solid #eee;margin:0.5em 0}code{background:#f4f4f4}"""


def _md_inline(text: str) -> str:
    """Escape for HTML and turn the few markdown marks used above (**bold**, `code`) into tags."""
    import re

    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)


def _render_html(run: RunDir, sections: list[tuple[str, list[tuple[str, str]]]], table: pd.DataFrame) -> str:
    title = f"{run.manifest.get('suite')}: asyrp-bench report"
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    for heading, items in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        for kind, payload in items:
            if kind == "table":
                if table.empty:
                    parts.append("<p><i>no complete cells</i></p>")
                    continue
                head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
                rows = []
                for row in table.itertuples(index=False):
                    cls = " class='published'" if str(row[list(table.columns).index("editor")]).startswith(
                        "published:") else ""
                    rows.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>")
                parts.append(f"<table><tr>{head}</tr>{''.join(rows)}</table>")
            elif kind == "image":
                src, alt = payload.split("|", 1)
                parts.append(f"<p><img src='{html.escape(src)}' alt='{html.escape(alt)}'></p>")
            elif kind == "note":
                parts.append(f"<blockquote>{_md_inline(payload)}</blockquote>")
            else:
                parts.append(f"<p>{_md_inline(payload)}</p>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
