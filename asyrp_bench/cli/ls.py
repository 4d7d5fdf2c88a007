"""``asyrp-bench ls``: what is registered (backends and presets, editors, metrics, weights keys)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from asyrp_bench.cli.app import app, console, handle_errors
from asyrp_bench.errors import UnknownNameError

SECTIONS = ("backends", "editors", "recipes", "edits", "metrics", "splits", "weights")


def _backends_table() -> Table:
    from asyrp_bench.diffusion.backends import BACKENDS

    table = Table(title="backends", title_justify="left")
    table.add_column("backend", style="bold")
    table.add_column("preset")
    table.add_column("config")
    table.add_column("default weights")
    for name in BACKENDS.names():
        cls = BACKENDS.get(name)
        if not cls.presets:
            table.add_row(name, "(config dict or folder)", "", "")
        for preset, config in cls.presets.items():
            table.add_row(name, preset, cls.preset_summary(preset), str(config.get("weights") or "-"))
    return table


def _weights_table() -> Table:
    from asyrp_bench import weights

    table = Table(title="weights keys", title_justify="left")
    for column in ("key", "kind", "file", "what"):
        table.add_column(column)
    for key, artifact in sorted(weights.ARTIFACTS.items()):
        table.add_row(key, artifact.kind, artifact.filename, artifact.description)
    return table


def _editors_table() -> Table:
    from asyrp_bench.editors.base import CELEBA_HQ_H_SHAPE, CELEBA_HQ_TEMB_DIM, EDITORS, build_editor

    c, h, w = CELEBA_HQ_H_SHAPE
    table = Table(title=f"editors (parameters at the CelebA-HQ 256 bottleneck {c}×{h}×{w}, temb {CELEBA_HQ_TEMB_DIM})",
                  title_justify="left")
    for column in ("editor", "parameters", "defaults", "what"):
        table.add_column(column, overflow="fold")
    for name in EDITORS.names():
        cls = EDITORS.get(name)
        editor = build_editor(name, CELEBA_HQ_H_SHAPE, CELEBA_HQ_TEMB_DIM)
        defaults = ", ".join(f"{k}={v}" for k, v in editor.config.items())
        doc = (sys.modules[cls.__module__].__doc__ or "").strip().splitlines()
        what = doc[0].split(": ", 1)[-1].replace("``", "") if doc else ""
        table.add_row(name, f"{editor.n_params():,}", defaults, what)
    return table


def _recipes_table() -> Table:
    from asyrp_bench.recipes import RECIPES

    table = Table(title="training recipes (override fields with --set KEY=VALUE)", title_justify="left")
    for column in ("recipe", "settings", "what"):
        table.add_column(column, overflow="fold")
    for name in RECIPES.names():
        r = RECIPES.get(name)
        settings = (f"{r.optimizer} lr {r.lr:g}, λ_clip {r.lambda_clip:g}, λ_l1 {r.lambda_l1:g}, steps "
                    f"{r.n_inv_step}/{r.n_train_step}, batch {r.batch_size}, {r.n_iter} pass(es), "
                    f"{r.n_train_img} images, {r.variant}")
        table.add_row(name, settings, r.description)
    return table


def _edits_table() -> Table:
    from asyrp_bench.prompts import EDIT_PROMPTS

    table = Table(title="named edits (spec §4.5)", title_justify="left")
    for column in ("edit", "source", "target", "t_edit", "t_boost"):
        table.add_column(column)
    for name in EDIT_PROMPTS.names():
        e = EDIT_PROMPTS.get(name)
        table.add_row(name, e.source, e.target, "" if e.t_edit is None else str(e.t_edit),
                      "" if e.t_boost is None else str(e.t_boost))
    return table


def _metrics_table() -> Table:
    from asyrp_bench.metrics import METRICS

    table = Table(title="metrics", title_justify="left")
    for column in ("metric", "version", "better", "scope", "keys", "defaults", "what"):
        table.add_column(column, overflow="fold")
    for name in METRICS.names():
        cls = METRICS.get(name)
        better = "higher" if cls.higher_is_better() else "lower"
        keys = ", ".join(k.name for k in cls.keys)
        defaults = ", ".join(f"{k}={v!r}" for k, v in cls.defaults.items())
        table.add_row(name, str(cls.version), better, "per image" if cls.per_image else "per set", keys, defaults,
                      cls.description)
    return table


def _splits_table() -> Table:
    from asyrp_bench.data import SPLITS

    table = Table(title="splits (data: {split: NAME})", title_justify="left")
    for column in ("split", "images", "what", "rule"):
        table.add_column(column, overflow="fold")
    for name in SPLITS.names():
        split = SPLITS.get(name)
        table.add_row(name, str(split.n_images or "all"), split.description, split.rule)
    return table


def section_tables(section: str) -> list[Table]:
    """The rich tables of one ``ls`` section (other modules add their own sections here)."""
    if section == "backends":
        return [_backends_table()]
    if section == "metrics":
        return [_metrics_table()]
    if section == "splits":
        return [_splits_table()]
    if section == "weights":
        return [_weights_table()]
    if section == "editors":
        return [_editors_table()]
    if section == "recipes":
        return [_recipes_table()]
    if section == "edits":
        return [_edits_table()]
    raise UnknownNameError(f"Unknown section {section!r}. Choose one of: {', '.join(SECTIONS)}.")


@app.command("ls")
@handle_errors
def ls_command(
    what: Annotated[str | None, typer.Argument(help=f"One of: {', '.join(SECTIONS)} (default: all).")] = None,
) -> None:
    """List registered backends (with presets), editors, metrics and weights keys."""
    sections = [what] if what else list(SECTIONS)
    for section in sections:
        for table in section_tables(section):
            console.print(table)
