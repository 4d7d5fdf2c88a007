"""``asyrp-bench score SOURCE_DIR EDITED_DIR``: the metrics alone, on any two folders of images."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from asyrp_bench.cli.app import app, console, handle_errors
from asyrp_bench.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from asyrp_bench.metrics.base import MetricSpec

DEFAULT_METRICS = ("clip_directional", "seg_consistency", "fid", "kid", "identity")
_MAX_NOTES = 8


def default_specs(has_texts: bool, has_reconstruction: bool) -> tuple[list[MetricSpec], list[str]]:
    """Every metric with default parameters, minus those whose inputs are missing (with a note saying why)."""
    from asyrp_bench.metrics.base import MetricSpec

    specs, notes = [], []
    for name in DEFAULT_METRICS:
        if name == "clip_directional" and not has_texts:
            notes.append("clip_directional not run: give --src-text and --tgt-text")
            continue
        if name == "seg_consistency" and not has_reconstruction:
            notes.append("seg_consistency not run: its default reference is the DDIM reconstruction; give "
                         "--reconstruction DIR, or list it in --metrics with params {reference: source}")
            continue
        specs.append(MetricSpec(name=name))
    return specs, notes


def _fmt(value: float, digits: int = 4) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def summary_table(summary: pd.DataFrame, confidence: float = 0.95) -> Table:
    table = Table(title="scores", title_justify="left")
    for column, justify in (("metric", "left"), ("key", "left"), ("v", "right"), ("mean", "right"),
                            ("std", "right"), (f"{round(confidence * 100)}% CI", "right"), ("N", "right"),
                            ("better", "center")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in summary.itertuples(index=False):
        ci = "—" if math.isnan(row.ci_low) else f"[{row.ci_low:.4f}, {row.ci_high:.4f}]"
        better = {True: "↑", False: "↓"}.get(row.higher_is_better, "")
        kind = "" if row.per_image else " (set)"
        table.add_row(row.metric + kind, row.key, str(row.metric_version), _fmt(row.mean), _fmt(row.std), ci,
                      str(row.n), better)
    return table


def _notes_after(summary: pd.DataFrame, records_frame: pd.DataFrame) -> list[str]:
    notes = []
    fid = summary[summary.metric == "fid"]
    if not fid.empty:
        n = int(fid.n.iloc[0])
        notes.append(f"FID at N = {n} is biased upward and depends on N: compare FIDs only at equal N; KID is the "
                     "better small-set measure.")
    no_face = records_frame[(records_frame.metric == "identity") & (records_frame.key == "no_face")]
    if not no_face.empty and no_face.value.sum() > 0:
        missing = no_face[no_face.value > 0].image_id.tolist()
        shown = ", ".join(missing[:_MAX_NOTES]) + (" ..." if len(missing) > _MAX_NOTES else "")
        notes.append(f"identity: no face found in {len(missing)} of {len(no_face)} image pairs ({shown}); see "
                     "the no_face rows (param no_face: count leaves them out of the cosine, center_crop scores a "
                     "fixed crop).")
    if "clip_directional" in set(summary.metric):
        notes.append("clip_directional s_dir is a raw cosine (higher = more along the text direction); the "
                     "Asyrp paper's table may be in 1 − cos units.")
    return notes


class _RichProgress:
    """ScoringContext progress callback -> one rich progress bar per description."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def __call__(self, description: str, completed: int, total: int) -> None:
        if description not in self.tasks:
            self.tasks[description] = self.progress.add_task(description, total=total)
        self.progress.update(self.tasks[description], completed=completed, total=total)


def _check_out(out: Path) -> None:
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; give a CSV file path such as {out / 'scores.csv'}")
    parent = out.parent if str(out.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise ConfigError(f"--out {out}: {parent} is not a folder")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"--out {out}: cannot create its folder {parent} ({error.strerror or error})") from None
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"--out {out}: the folder {parent} is not writable")


@app.command("score")
@handle_errors
def score_command(
    source_dir: Annotated[Path, typer.Argument(help="Folder of source (unedited) images.")],
    edited_dir: Annotated[Path, typer.Argument(help="Folder of edited images, paired with the sources by file "
                                                    "name (without suffix).")],
    metrics: Annotated[Path | None, typer.Option("--metrics", help="YAML file with a `metrics:` list "
                                                 "({name, params}); default: every metric with default params.")
                       ] = None,
    reconstruction: Annotated[Path | None, typer.Option("--reconstruction", help="Folder of DDIM reconstructions "
                                                        "of the sources (SC reference, baseline).")] = None,
    src_text: Annotated[str | None, typer.Option("--src-text", help="Source prompt of the edit (S_dir).")] = None,
    tgt_text: Annotated[str | None, typer.Option("--tgt-text", help="Target prompt of the edit (S_dir).")] = None,
    out: Annotated[Path, typer.Option("--out", help="Tidy per-image CSV to write.")] = Path("scores.csv"),
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Images per forward pass.")] = 16,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda or cuda:N.")] = "cpu",
) -> None:
    """Score edited images against their sources: S_dir, SC, FID/KID and ID, with the definitions named per value.

    Writes a tidy CSV (image_id, metric, key, metric_version, value, params; per-set values have an empty
    image_id) and prints mean, std, 95% bootstrap CI and N per metric.
    """
    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from asyrp_bench.images import RESIZE_RULE, load_paired_folders
    from asyrp_bench.metrics import (
        ScoringContext,
        ScoringInputs,
        build_metrics,
        load_metrics_file,
        records_to_frame,
        score,
        summary_frame,
    )

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
    if (src_text is None) != (tgt_text is None):
        raise ConfigError("give both --src-text and --tgt-text, or neither")
    if src_text is not None and tgt_text is not None and src_text.strip().lower() == tgt_text.strip().lower():
        # The text direction of identical prompts is 0/0: S_dir would be NaN (suites refuse it the same way).
        raise ConfigError(f"--src-text and --tgt-text are the same prompt ({src_text!r}): S_dir needs two "
                          "different prompts")
    _check_out(out)  # before any metric runs: a bad --out must not waste the work
    if metrics is not None:
        specs, notes = load_metrics_file(metrics), []
    else:
        specs, notes = default_specs(src_text is not None, reconstruction is not None)
    built = build_metrics(specs)  # parameter errors before any image is read

    paired = load_paired_folders(source_dir, edited_dir, reconstruction)
    h, w = paired.sources.shape[-2:]
    console.print(f"{len(paired.image_ids)} image pairs, {h}x{w}"
                  + (" with reconstructions" if paired.reconstructions is not None else ""))
    if paired.resized:
        shown = "; ".join(paired.resized[:_MAX_NOTES]) + (" ..." if len(paired.resized) > _MAX_NOTES else "")
        console.print(f"[yellow]{len(paired.resized)} image(s) {RESIZE_RULE}:[/] {shown}")
    if paired.ignored:
        names = ", ".join(str(p) for p in paired.ignored[:_MAX_NOTES])
        console.print(f"[yellow]not images, not read ({len(paired.ignored)}):[/] {names}"
                      + (" ..." if len(paired.ignored) > _MAX_NOTES else ""))
    for note in notes:
        console.print(f"[yellow]{note}[/]")
    if not built:
        raise ConfigError("no metric can run on these inputs (see the notes above)")

    inputs = ScoringInputs(paired.image_ids, paired.sources, paired.edits, paired.reconstructions,
                           src_text=src_text, tgt_text=tgt_text)
    for metric in built:
        metric.check_inputs(inputs)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        ctx = ScoringContext(device=device, batch_size=batch_size, progress=_RichProgress(progress))
        records = score(inputs, built, ctx)

    frame = records_to_frame(records)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    summary = summary_frame(records)
    console.print(summary_table(summary))
    for note in _notes_after(summary, frame):
        console.print(f"note: {note}", highlight=False)
    console.print(f"wrote {len(frame)} rows to {out}")
