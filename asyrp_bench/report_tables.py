"""The report's tables: per-(backend, editor, edit) means, the summary table, the settings of every cell.

One function, :func:`cell_means`, computes the numbers; the summary table *and* every plot
(:mod:`asyrp_bench.report_plots`) are drawn from it, so a plot can never show a number the table does not
(docs/results.md, "report"). Rows are always keyed by backend: averaging over backends would mix models.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from asyrp_bench.errors import AsyrpBenchError
from asyrp_bench.results import BASELINE_EDITOR, RunDir

KEYS = ["backend", "editor", "edit"]
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
UNITS = {
    "clip_directional.s_dir": "cosine, −1…1",
    "clip_directional.image_text_sim": "cosine, −1…1",
    "identity.cosine": "cosine, −1…1",
    "identity.no_face": "fraction of images",
    "seg_consistency.pixel_accuracy": "fraction of pixels, 0…1",
    "seg_consistency.miou": "mean IoU, 0…1",
    "fid.fid": "squared feature distance",
    "kid.kid": "MMD², unbiased (may be < 0)",
}
"""Units shown in the header tooltips and the units line (docs/metrics.md defines each metric)."""
SHORT_NAMES = {"clip_directional": "S_dir", "seg_consistency": "SC", "fid": "FID", "kid": "KID", "identity": "ID"}
FOLDED = {"kid.kid_std": "kid.kid"}
"""Values shown inside another column (KID ± its std over subsets) rather than as their own column."""
HIDDEN = ("kid.subset_size",)


def short_name(metric: str) -> str:
    """A metric column's display name ("clip_directional.s_dir" -> "S_dir")."""
    if metric in LABELS:
        return LABELS[metric]
    base, _, rest = metric.partition(".")
    name = SHORT_NAMES.get(base, base)
    return f"{name} {rest}" if rest else name


def is_true(value: Any) -> bool | None:
    """A CSV boolean ("True", "false", 1, NaN) as True / False / None (no direction)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        return {"true": True, "1": True, "false": False, "0": False}.get(value.strip().lower())
    return bool(value)


def directions(summary: pd.DataFrame) -> dict[str, bool | None]:
    rows = summary.drop_duplicates("metric").set_index("metric")["higher_is_better"]
    return {m: is_true(v) for m, v in rows.items()}


def header(metric: str, higher: bool | None) -> str:
    """Column header with the direction mark: "S_dir ↑", "FID ↓"; no mark for bookkeeping values."""
    arrow = {True: " ↑", False: " ↓"}.get(higher, "") if higher is not None else ""
    return f"{short_name(metric)}{arrow}"


def table_metrics(summary: pd.DataFrame) -> list[str]:
    """Metric columns of the summary table, in display order (folded and hidden ones left out)."""
    present = list(dict.fromkeys(summary["metric"]))
    shown = [m for m in present if m not in FOLDED and m not in HIDDEN]
    order = list(LABELS)
    return sorted(shown, key=lambda m: (order.index(m) if m in order else len(order), m))


def quality_metrics(summary: pd.DataFrame) -> list[str]:
    """Metrics with a direction (plots are drawn for these), in display order."""
    known = directions(summary)
    return [m for m in table_metrics(summary) if known.get(m) is not None]


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


def fmt(value: Any, digits: int = 4) -> str:
    """The one number format of tables and plot read-back (4 significant digits)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "–"
    return f"{number:.{digits}g}" if math.isfinite(number) else "–"


def cell_means(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per (backend, editor, edit, metric): mean over seeds of value and CI bounds, n, seeds."""
    if summary.empty:
        return pd.DataFrame(columns=[*KEYS, "metric", "value", "ci_low", "ci_high", "n", "seeds"])
    summary = summary.assign(edit=summary["edit"].fillna(""))
    return summary.groupby([*KEYS, "metric"], sort=False).agg(
        value=("value", "mean"), ci_low=("ci_low", "mean"), ci_high=("ci_high", "mean"), n=("n", "max"),
        seeds=("seed", "nunique")).reset_index()


def _cell_text(row: pd.Series, extra: float | None) -> str:
    text = fmt(row["value"])
    if math.isfinite(float(row.get("ci_low", math.nan))):
        text += f" [{fmt(row['ci_low'], 3)}, {fmt(row['ci_high'], 3)}]"
    if extra is not None and math.isfinite(float(extra)):
        text += f" ± {fmt(extra, 2)}"
    return text


def _references(run: RunDir, metrics: Sequence[str]) -> tuple[dict[str, dict[str, list[str]]], list[str]]:
    """metric column -> edit -> ["0.921†", ...] from the suite's published references, and their footnotes."""
    beside: dict[str, dict[str, list[str]]] = {}
    notes: list[str] = []
    for index, ref in enumerate(run.suite.get("reference") or []):
        mark = "†" * (index + 1)
        for metric, per_edit in ref["values"].items():
            column = reference_column(metric, metrics)
            if column is None:
                continue
            for edit, value in per_edit.items():
                beside.setdefault(column, {}).setdefault(edit, []).append(f"{fmt(value)}{mark}")
        notes.append(f"{mark} published: {ref['label']}: {ref['source']}. {ref.get('note', '')}".strip())
    return beside, notes


def summary_table(run: RunDir) -> tuple[pd.DataFrame, list[str], dict[str, str]]:
    """Rows (backend, editor, edit), a "mean [CI]" column per metric, published values in the column beside.

    Returns the table, its footnotes and ``kinds``: display column -> "metric:<name>" / "published:<name>" /
    "key", which the HTML page uses for tooltips and marking.
    """
    summary = run.summary()
    if summary.empty:
        return pd.DataFrame(), [], {}
    means = cell_means(summary)
    metrics = table_metrics(summary)
    folded = {into: means[means["metric"] == f].set_index(KEYS)["value"] for f, into in FOLDED.items()}
    rows: dict[tuple[str, str, str], dict[str, str]] = {}
    for _, row in means.iterrows():
        key = (row["backend"], row["editor"], row["edit"])
        extra = folded[row["metric"]].get(key) if row["metric"] in folded else None
        rows.setdefault(key, {})[row["metric"]] = _cell_text(row, extra)
    beside, notes = _references(run, metrics)
    many_backends = summary["backend"].nunique() > 1
    known = directions(summary)
    kinds: dict[str, str] = {k: "key" for k in (KEYS if many_backends else KEYS[1:])}
    records = []
    for (backend, editor, edit), values in rows.items():
        record: dict[str, str] = {"backend": backend} if many_backends else {}
        record |= {"editor": editor, "edit": edit or "—"}
        for metric in metrics:
            name = header(metric, known.get(metric))
            kinds[name] = f"metric:{metric}"
            record[name] = values.get(metric, "–")
            if metric in beside:
                pub = f"{short_name(metric)} published"
                kinds[pub] = f"published:{metric}"
                ours = editor != BASELINE_EDITOR
                record[pub] = "; ".join(beside[metric].get(edit, [])) if ours and edit else ""
        records.append(record)
    if (means["seeds"] > 1).any():
        notes.append("Values are means over seeds; the bracketed 95% bootstrap CIs (over images) are averaged too.")
    return pd.DataFrame(records, columns=list(kinds)).fillna("–"), notes, kinds


def units_line(summary: pd.DataFrame) -> str:
    """One line naming each column's direction and unit (the HTML page also shows them on hover)."""
    known = directions(summary)
    parts = [f"{header(m, known.get(m))}: {UNITS.get(m, 'see docs/metrics.md')}" for m in table_metrics(summary)]
    return "Units (↑ higher is better, ↓ lower is better): " + "; ".join(parts) + "."


def _editor_spec(suite: dict[str, Any], editor: str) -> dict[str, Any]:
    for spec in suite.get("editors") or []:
        if editor in (spec.get("label"), spec.get("variant")):
            return spec
    return {}


def _overrides(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items()) or "none"


def settings_table(run: RunDir) -> pd.DataFrame:
    """The settings of every cell of the run (its status too), from manifest.json and suite.resolved.yaml.

    t_edit / t_boost / strength come from the cell's edit, the recipe and its overrides from the editor's own
    ``train`` block or the suite's, plus the edit's ``train_overrides`` (docs/results.md, "report").
    Computation is float32 throughout (no precision setting exists yet), which the column says.
    """
    suite = run.suite
    edits = {e.get("name"): e for e in suite.get("edits") or []}
    sampler = suite.get("sampler") or {}
    steps = f"inv {sampler.get('n_inv_step', '?')} / test {sampler.get('n_test_step', '?')}"
    records = []
    for cell_id in run.cell_ids():
        cell = run.manifest["cells"][cell_id]
        editor = str(cell.get("editor"))
        edit = edits.get(cell.get("edit") or "", {})
        spec = _editor_spec(suite, editor)
        if editor == BASELINE_EDITOR:
            recipe, overrides = "—", "—"
        elif spec.get("checkpoint"):
            recipe, overrides = f"loaded {spec['checkpoint']}", "—"
        else:
            train = spec.get("train") or suite.get("train") or {}
            recipe = str(train.get("recipe", "?"))
            overrides = _overrides({**(train.get("overrides") or {}), **(edit.get("train_overrides") or {})})
        records.append({
            "cell": cell_id, "status": cell.get("status", "?"), "backend": cell.get("backend"), "editor": editor,
            "edit": cell.get("edit") or "—", "seed": cell.get("seed"),
            "t_edit": edit.get("t_edit", "—"), "t_boost": ("off" if edit.get("t_boost") is None else edit["t_boost"]) if edit else "—",
            "strength": edit.get("strength", "—"), "recipe": recipe, "overrides": overrides, "steps": steps,
            "precision": "float32",
        })
    return pd.DataFrame(records, dtype=object).astype(str)
