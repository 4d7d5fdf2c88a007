"""Run a suite: load, invert, train or load editors, edit, score, write the run folder (DESIGN §5–§7).

Order of work (one backend at a time):

1. load the backend; resolve the split (checking the images' sha256) and load it at the backend's size;
2. DDIM-invert every image and regenerate it (the reconstruction), through the content-addressed
   :class:`~asyrp_bench.cache.InversionCache`: once per run, shared by every cell and by later runs;
3. score the reconstruction baseline (source vs reconstruction) once per split;
4. per cell (editor × edit × seed): train the editor (cached across cells and runs by a hash of everything
   training depends on) or load its checkpoint, edit every image (boosting noise from one generator per
   (seed, image id), so results do not depend on batching), score, and commit the cell folder atomically.

Metric models and features are shared through one :class:`~asyrp_bench.metrics.ScoringContext` per run, and
the CLIP model once per process. ``run --resume`` skips committed cells; a killed run loses at most the cell in
progress. Seeds: the suite seed seeds training (editor initialisation, shuffling) and, with each image id, that
image's boosting noise.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from asyrp_bench.errors import ConfigError
from asyrp_bench.hashing import canonical_json, config_hash
from asyrp_bench.plan import BaselineCell, Plan, build_plan
from asyrp_bench.results import (
    MetricInfo,
    RunDir,
    RunWriter,
    cell_scores,
    cell_summary,
    environment,
    write_cell_tables,
)
from asyrp_bench.suite import (
    BackendSpec,
    Cell,
    Suite,
    suite_from_dict,
)

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console
    from torch import Tensor

    from asyrp_bench.data import ImageSet
    from asyrp_bench.diffusion.backends import Backend
    from asyrp_bench.editors import Editor

SOURCES_DIR = "sources"
IMAGES_DIR = "images"
EDITOR_FILE = "editor.safetensors"
TRAIN_SPLIT_PREFIX = "train:"
"""Manifest ``splits`` keys of training image sets start with this (evaluation sets use the split name)."""
GRID_IMAGES = 8
"""Images always saved per cell (for the report's grids), even with ``output.save_images: false``."""


# ---------------------------------------------------------------------------------------------------------
# the plan (what --dry-run prints)
# ---------------------------------------------------------------------------------------------------------
def describe_plan(plan: Plan, console: Console) -> None:
    """Print what a run of ``plan`` would do: cells, trainings, loaded files, data and caches (--dry-run)."""
    from rich.table import Table

    from asyrp_bench import weights

    suite, cells = plan.suite, plan.cells
    console.print(f"[bold]{suite.name}[/]: {len(cells)} cells + {len(suite.backend)} reconstruction baseline(s); "
                  f"suite hash {plan.suite_hash[:7]}; metrics: "
                  f"{', '.join(m.name for m in suite.metrics) or '(none)'}", highlight=False)
    table = Table(title="cells", title_justify="left")
    for column in ("cell", "backend", "editor", "edit", "seed", "t_edit / t_boost / strength", "editor from",
                   "config"):
        table.add_column(column, overflow="fold")
    for record in plan.manifest_cells():
        cell = next((c for c in cells if c.id == record["id"]), None)
        interval = "" if cell is None else f"{cell.edit.t_edit} / {cell.edit.t_boost} / {cell.edit.strength:g}"
        table.add_row(record["id"], record["backend"], record["editor"], record["edit"] or "-",
                      str(record["seed"]) if cell else "-", interval, record["source"], record["config_hash"][:7])
    console.print(table)

    trainings: dict[str, list[str]] = {}
    loads: dict[str, list[str]] = {}
    for cell in cells:
        if cell.train is not None:
            key = canonical_json([cell.backend.display, cell.editor.variant, cell.editor.params, cell.train.recipe,
                                  cell.train.overrides, cell.edit.source, cell.edit.target, cell.edit.t_edit,
                                  cell.edit.t_boost, cell.seed])
            trainings.setdefault(key, []).append(cell.id)
        else:
            loads.setdefault(str(cell.checkpoint), []).append(cell.id)
    if trainings:
        console.print(f"[bold]train[/] {len(trainings)} editor(s) (one per variant × params × recipe × prompts × "
                      "t_edit × t_boost × seed; cached and reused by cells that differ only in strength):")
        for ids in trainings.values():
            console.print(f"  {', '.join(ids)}", highlight=False)
        for spec in {canonical_json(t.model_dump(mode="json")): t for t in _train_specs(suite)}.values():
            console.print(f"  recipe {spec.recipe}, overrides {canonical_json(spec.overrides)}, training images "
                          f"{(spec.data.split or spec.data.folder) if spec.data else 'the suite data'}", highlight=False)
    for target, ids in loads.items():
        status = _weights_status(target, "editor")
        console.print(f"[bold]load[/] {target} ({status}) for {', '.join(ids)}", highlight=False)
    for backend in suite.backend:
        status = _weights_status(backend.weights, None) if backend.weights else "built-in"
        console.print(f"[bold]backend[/] {backend.display}: {backend.name}"
                      f"{' preset ' + backend.preset if backend.preset else ''}, weights {backend.weights} ({status})",
                      highlight=False)
    shown: set[str] = set()
    for what, spec in (("data", suite.data), *[("train data", t.data) for t in _train_specs(suite) if t.data]):
        key = canonical_json(spec.model_dump(mode="json"))
        if key not in shown:
            shown.add(key)
            console.print(f"[bold]{what}[/] {_data_status(spec)}", highlight=False)
    cache = weights.home() / "cache"
    counts = {kind: _count_files(cache / kind) for kind in ("inversions", "reconstructions", "editors")}
    console.print(f"[bold]cache[/] {cache}: inversions and reconstructions per image (content-addressed; "
                  f"{counts['inversions']} / {counts['reconstructions']} entries now), trained editors "
                  f"({counts['editors']} now); looked up once the backend's weights hash is known. Metric models "
                  "and features are shared by all cells of the run.", highlight=False)


def _train_specs(suite: Suite) -> list[Any]:
    specs = [suite.train] if suite.train is not None else []
    return specs + [e.train for e in suite.editors if e.train is not None]


def _count_files(folder: Path) -> int:
    return sum(1 for _ in folder.rglob("*.safetensors")) if folder.is_dir() else 0


def _weights_status(value: str | None, kind: str | None) -> str:
    from asyrp_bench import weights
    from asyrp_bench.errors import AsyrpBenchError

    if value is None:
        return "none"
    try:
        return f"found: {weights.resolve(value, kind=kind)}"
    except AsyrpBenchError:
        return "[red]missing[/] (asyrp-bench doctor says where it goes)"


def _data_status(spec: Any) -> str:
    from asyrp_bench.data import resolve_data
    from asyrp_bench.errors import AsyrpBenchError

    name = spec.split or spec.folder
    try:
        images = resolve_data(spec)
    except AsyrpBenchError as error:
        return f"{name}: [red]not ready[/]: {error}"
    return f"{images.name}: {len(images)} images, split hash {images.split_hash[:12]} ({images.files[0].parent})"


# ---------------------------------------------------------------------------------------------------------
# progress (the rich live view)
# ---------------------------------------------------------------------------------------------------------
class Progress:
    """Cells done / to do with an ETA, and the current phase with its own bar. Silent when disabled."""

    def __init__(self, total_cells: int, done_cells: int, console: Console | None, enabled: bool) -> None:
        self.enabled = enabled and console is not None
        self._progress: Any = None
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._progress = RichProgress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=False,
            )
            self._cells = self._progress.add_task("cells", total=total_cells, completed=done_cells)
            self._phase = self._progress.add_task("starting", total=None)

    def __enter__(self) -> Progress:
        if self._progress is not None:
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def phase(self, description: str, total: int | None = None) -> None:
        if self._progress is not None:
            self._progress.reset(self._phase, total=total, description=f"  {description}")

    def step(self, completed: int, total: int | None = None) -> None:
        if self._progress is not None:
            self._progress.update(self._phase, completed=completed, total=total)

    def cell_done(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._cells)

    def log(self, message: str) -> None:
        if self._progress is not None:
            self._progress.console.print(message, highlight=False)


# ---------------------------------------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class _Shared:
    """What every cell of one backend shares."""

    backend: Backend
    spec: BackendSpec
    images: ImageSet
    x0: Tensor
    x_T: Tensor
    recon: Tensor


class Runner:
    """Executes a suite into a run folder (use :func:`run_suite` / :func:`resume_run`)."""

    def __init__(self, plan: Plan, writer: RunWriter, device: str, console: Console | None,
                 show_progress: bool) -> None:
        from asyrp_bench.cache import InversionCache

        self.plan = plan
        self.suite = plan.suite
        self.writer = writer
        self.device = device
        self.console = console
        self.show_progress = show_progress
        self.cache = InversionCache()
        self.cells = plan.cells
        self._metrics: list[Any] | None = None
        self._ctx: Any = None
        self._train_images: dict[tuple[str, int], tuple[ImageSet, Tensor]] = {}
        self.progress: Progress = Progress(0, 0, None, False)

    # -- metrics ---------------------------------------------------------------------------------------------
    def metrics(self) -> list[Any]:
        if self._metrics is None:
            from asyrp_bench.metrics import ScoringContext, build_metrics

            # Built (and their parameters validated) before any work, so a bad parameter fails first.
            self._metrics = build_metrics([m.model_dump() for m in self.suite.metrics])
            self._ctx = ScoringContext(device=self.device, batch_size=self.suite.output.batch_size,
                                       progress=self._metric_progress)
        return self._metrics

    def _metric_progress(self, description: str, completed: int, total: int) -> None:
        self.progress.phase(description, total) if completed == 0 else self.progress.step(completed, total)

    def score(self, ids: Sequence[str], sources: Tensor, edits: Tensor, recon: Tensor, src_text: str | None,
              tgt_text: str | None, baseline: bool) -> tuple[pd.DataFrame, dict[str, tuple[float, float, float]],
                                                             dict[str, MetricInfo]]:
        """Score one image set with every metric: per-image frame, set values, and what each value means."""
        import pandas as pd

        from asyrp_bench.errors import InputError
        from asyrp_bench.metrics import ScoringInputs

        inputs = ScoringInputs.from_unit_range(list(ids), sources.cpu(), edits.cpu(), recon.cpu(),
                                               src_text=src_text, tgt_text=tgt_text)
        rows: list[dict[str, Any]] = []
        set_values: dict[str, tuple[float, float, float]] = {}
        infos: dict[str, MetricInfo] = {}
        for metric in self.metrics():
            try:
                metric.check_inputs(inputs)
            except InputError:
                if baseline:
                    continue  # e.g. S_dir needs an edit's prompts; the baseline has none
                raise
            self.progress.phase(f"scoring {metric.name}")
            records = metric.compute(inputs, self._ctx)
            directions = {k.name: k.higher_is_better for k in type(metric).keys}
            for record in records:
                name = f"{record.metric}.{record.key}"
                infos[name] = MetricInfo(
                    name=name, version=str(record.metric_version),
                    config=hashlib.sha256(record.params.encode()).hexdigest()[:12],
                    higher_is_better=directions.get(record.key), per_image=record.image_id is not None)
                if record.image_id is None:
                    if record.key != "n":
                        set_values[name] = (record.value, math.nan, math.nan)
                else:
                    rows.append({"image_id": record.image_id, "metric": name, "value": record.value})
        return pd.DataFrame(rows, columns=["image_id", "metric", "value"]), set_values, infos

    # -- the run ---------------------------------------------------------------------------------------------
    def run(self) -> Path:
        todo = [c for c in self.writer.manifest["cell_order"] if not self.writer.is_complete(c)]
        total = len(self.writer.manifest["cell_order"])
        if todo:
            self.metrics()  # validate metric parameters before loading anything heavy
        self.progress = Progress(total, total - len(todo), self.console, self.show_progress)
        with self.progress:
            for backend_spec, base in zip(self.suite.backend, self.plan.baselines, strict=True):
                mine = self.plan.cells_of(backend_spec)
                if all(self.writer.is_complete(c) for c in [base.id, *[c.id for c in mine]]):
                    continue
                shared = self._prepare(backend_spec)
                if not self.writer.is_complete(base.id):
                    with self._failing(base.id):
                        self._run_baseline(base, shared)
                    self.progress.cell_done()
                for cell in mine:
                    if self.writer.is_complete(cell.id):
                        continue
                    with self._failing(cell.id):
                        self._run_cell(cell, shared)
                    self.progress.cell_done()
            self.progress.phase("writing tables and report")
            self.writer.finalize()
            if self.suite.output.report:
                from asyrp_bench.report import write_report

                write_report(self.writer.path)
        return self.writer.path

    @contextlib.contextmanager
    def _failing(self, cell_id: str) -> Iterator[None]:
        """An error in a cell marks it (and the run) failed in the manifest, then stops the run: errors here are
        nearly always systematic (missing weights, bad parameters), and completed cells stay for --resume."""
        try:
            yield
        except Exception as error:
            self.writer.fail_cell(cell_id, f"{type(error).__name__}: {error}")
            self.writer.manifest["status"] = "failed"
            self.writer.save_manifest()
            raise

    def _prepare(self, spec: BackendSpec) -> _Shared:
        from asyrp_bench.data import resolve_data
        from asyrp_bench.diffusion.backends import load_backend

        self.progress.phase(f"loading backend {spec.display}")
        backend = load_backend(spec.name, weights=spec.weights, config=spec.preset or spec.config,
                               device=self.device)
        self.writer.record("backends", spec.display, {"spec": spec.model_dump(mode="json"), **backend.describe()})
        self.progress.phase("checking the split's images")
        images = resolve_data(self.suite.data)
        self.writer.record("splits", images.name, {k: v for k, v in images.describe().items()}
                           | {"sha256": dict(zip(images.ids, images.sha256, strict=True))})
        x0 = images.load(backend.image_size).to(self.device)
        batch = self.suite.output.batch_size
        self.progress.phase(f"inverting {len(images)} images ({self.suite.sampler.n_inv_step} steps)", len(images))
        x_T = self.cache.invert(backend, x0, self.suite.sampler.n_inv_step, batch_size=batch,
                                progress=self.progress.step)
        self.progress.phase(f"reconstructing ({self.suite.sampler.n_test_step} steps)", len(images))
        recon = self.cache.reconstruct(backend, x_T, self.suite.sampler.n_test_step, batch_size=batch,
                                       progress=self.progress.step)
        return _Shared(backend, spec, images, x0, x_T, recon)

    def _labels(self, cell_id: str) -> dict[str, Any]:
        record = self.writer.manifest["cells"][cell_id]
        return {"cell": cell_id, **{k: record[k] for k in ("backend", "editor", "variant", "edit", "seed")}}

    def _run_baseline(self, base: BaselineCell, shared: _Shared) -> None:
        started = time.perf_counter()
        tmp = self.writer.begin_cell(base.id)
        self.progress.phase(f"{base.id}: scoring source vs reconstruction")
        ids = list(shared.images.ids)
        per_image, set_values, infos = self.score(ids, shared.x0, shared.recon, shared.recon, None, None, True)
        self._save_images(tmp / IMAGES_DIR, ids, shared.recon)
        self._save_images(tmp / SOURCES_DIR, ids, shared.x0)
        labels = self._labels(base.id)
        write_cell_tables(
            tmp, cell_scores(labels, per_image),
            cell_summary(labels, per_image, set_values, infos, shared.images.split_hash, len(ids)),
            {"id": base.id, "config_hash": base.config_hash, "baseline": "source vs plain DDIM reconstruction",
             "backend": base.backend.model_dump(mode="json"), "sampler": self.suite.sampler.model_dump(),
             "metrics": [m.model_dump(mode="json") for m in self.suite.metrics]},
        )
        self.writer.commit_cell(base.id, tmp, {"seconds": {"score": round(time.perf_counter() - started, 3)}})

    def _run_cell(self, cell: Cell, shared: _Shared) -> None:
        from asyrp_bench.asyrp import edit, image_generators

        timings: dict[str, float] = {}
        tmp = self.writer.begin_cell(cell.id)
        clock = time.perf_counter()
        editor, provenance = self._editor(cell, shared, tmp / EDITOR_FILE)
        timings["editor"] = round(time.perf_counter() - clock, 3)

        clock = time.perf_counter()
        ids = list(shared.images.ids)
        n_train_step = editor.metadata.get("n_train_step") or cell.editor.n_train_step
        batch = self.suite.output.batch_size
        outputs = []
        self.progress.phase(f"{cell.id}: editing", len(ids))
        for start in range(0, len(ids), batch):
            chunk = slice(start, start + batch)
            outputs.append(edit(
                shared.backend, shared.x_T[chunk], editor, t_edit=cell.edit.t_edit,
                # 0 turns boosting off explicitly (None would read the editor file's value).
                t_boost=cell.edit.t_boost if cell.edit.t_boost is not None else 0,
                n_steps=self.suite.sampler.n_test_step, strength=cell.edit.strength, n_train_step=n_train_step,
                generator=image_generators(cell.seed, ids[chunk]),
            ))
            self.progress.step(min(start + batch, len(ids)))
        import torch

        edited = torch.cat(outputs)
        timings["edit"] = round(time.perf_counter() - clock, 3)

        clock = time.perf_counter()
        per_image, set_values, infos = self.score(ids, shared.x0, edited, shared.recon, cell.edit.source,
                                                  cell.edit.target, False)
        timings["score"] = round(time.perf_counter() - clock, 3)
        self._save_images(tmp / IMAGES_DIR, ids, edited)
        labels = self._labels(cell.id)
        write_cell_tables(
            tmp, cell_scores(labels, per_image),
            cell_summary(labels, per_image, set_values, infos, shared.images.split_hash, len(ids)),
            {**cell.to_dict(), "editor_provenance": provenance, "n_train_step": n_train_step},
        )
        self.writer.commit_cell(cell.id, tmp, {"seconds": timings, "editor_from": provenance.get("from")})

    # -- editors ---------------------------------------------------------------------------------------------
    def _editor(self, cell: Cell, shared: _Shared, out: Path) -> tuple[Editor, dict[str, Any]]:
        from asyrp_bench.editors.io import load_editor, save_editor

        if cell.checkpoint is not None:
            from asyrp_bench import weights

            path = weights.resolve(cell.checkpoint, kind="editor")
            self.progress.phase(f"{cell.id}: loading {path.name}")
            editor = load_editor(path, backend=shared.backend)
            _check_interval(editor, cell, path)
            metadata = {"prompts": {"source": cell.edit.source, "target": cell.edit.target, "edit": cell.edit.name},
                        "t_edit": cell.edit.t_edit, "t_boost": cell.edit.t_boost, "loaded_from": path.name}
            if cell.editor.n_train_step is not None:
                metadata["n_train_step"] = cell.editor.n_train_step
            save_editor(editor, out, metadata={**metadata, **editor.metadata} | {"loaded_from": path.name})
            return editor, {"from": "checkpoint", "file": str(path)}
        return self._trained_editor(cell, shared, out)

    def _trained_editor(self, cell: Cell, shared: _Shared, out: Path) -> tuple[Editor, dict[str, Any]]:
        from asyrp_bench import weights
        from asyrp_bench.cache import check_file, seal_file
        from asyrp_bench.editors.io import load_editor, save_editor
        from asyrp_bench.recipes import resolve_recipe
        from asyrp_bench.training import train_editor

        assert cell.train is not None
        recipe = resolve_recipe(cell.train.recipe, cell.train.overrides)
        train_set, train_x = self._training_images(cell, shared)
        key_data = {
            "backend": shared.backend.weights_hash, "variant": cell.editor.variant, "params": cell.editor.params,
            "recipe": recipe.name, "values": recipe.values(), "source": cell.edit.source,
            "target": cell.edit.target, "t_edit": cell.edit.t_edit, "t_boost": cell.edit.t_boost,
            "seed": cell.seed, "images": train_set.split_hash,
        }
        key = config_hash(key_data)
        cached = weights.home() / "cache" / "editors" / f"{key}.safetensors"
        if check_file(cached, key):  # verified against its sidecar checksum; a damaged one is retrained
            self.progress.phase(f"{cell.id}: trained editor from cache")
            editor = load_editor(cached, backend=shared.backend)
            shutil.copyfile(cached, out)
            return editor, {"from": "cache", "key": key}
        pairs = _n_training_steps(recipe, cell.edit.t_edit, len(train_set))
        self.progress.phase(f"{cell.id}: training {cell.editor.variant} ({recipe.name})", pairs)
        steps = iter(range(1, pairs + 1))
        editor = train_editor(
            shared.backend, train_x, cell.edit.source, cell.edit.target, recipe=cell.train.recipe,
            overrides=cell.train.overrides, variant=cell.editor.variant, editor_params=cell.editor.params,
            t_edit=cell.edit.t_edit, t_boost=cell.edit.t_boost, seed=cell.seed, image_ids=list(train_set.ids),
            cache=self.cache, progress=False, on_step=lambda record: self.progress.step(next(steps, pairs)),
        )
        save_editor(editor, cached)
        seal_file(cached, key)
        shutil.copyfile(cached, out)
        return editor, {"from": "trained", "key": key}

    def _training_images(self, cell: Cell, shared: _Shared) -> tuple[ImageSet, Tensor]:
        from asyrp_bench.data import resolve_data

        assert cell.train is not None
        spec = cell.train.data or self.suite.data
        memo_key = (canonical_json(spec.model_dump(mode="json")), shared.backend.image_size)
        if memo_key not in self._train_images:
            if spec == self.suite.data:
                self._train_images[memo_key] = (shared.images, shared.x0)
            else:
                images = resolve_data(spec)
                # its own key: the evaluation split's record (same split name, other part) must survive
                self.writer.record("splits", f"{TRAIN_SPLIT_PREFIX}{images.name}", images.describe()
                                   | {"sha256": dict(zip(images.ids, images.sha256, strict=True))})
                self._train_images[memo_key] = (images, images.load(shared.backend.image_size).to(self.device))
        return self._train_images[memo_key]

    def _save_images(self, folder: Path, ids: Sequence[str], images: Tensor) -> None:
        from asyrp_bench.images import save_png

        keep = len(ids) if self.suite.output.save_images else min(GRID_IMAGES, len(ids))
        folder.mkdir(parents=True, exist_ok=True)
        for image_id, image in zip(ids[:keep], images[:keep], strict=True):
            save_png(image, folder / f"{image_id}.png")


def _n_training_steps(recipe: Any, t_edit: int, n_images: int) -> int:
    from asyrp_bench.training import training_pairs

    n_img = min(n_images, recipe.n_train_img) if recipe.n_train_img is not None else n_images
    batches = math.ceil(n_img / recipe.batch_size)
    return recipe.n_iter * batches * len(training_pairs(recipe.n_train_step, t_edit))


def _check_interval(editor: Editor, cell: Cell, path: Path) -> None:
    """A file that records its interval must match the suite's edit (spec §10 B8: never a silent mismatch)."""
    for key in ("t_edit", "t_boost"):
        recorded = editor.metadata.get(key)
        wanted = getattr(cell.edit, key)
        if recorded is not None and wanted is not None and int(recorded) != int(wanted):
            raise ConfigError(f"{path} was trained with {key} = {recorded}, but the suite's edit {cell.edit.name!r} "
                              f"asks for {wanted}; set {key}: {recorded} in the edit (or retrain)")


# ---------------------------------------------------------------------------------------------------------
# entry points
# ---------------------------------------------------------------------------------------------------------
def seeds_record(suite: Suite) -> dict[str, Any]:
    return {
        "seeds": list(suite.seeds),
        "training": "the cell's seed (editor initialisation, dropout, shuffling)",
        "noise": "one torch.Generator per image, seeded from sha256('<seed>:<image id>') (asyrp.image_generators)",
        "bootstrap": "seed 0 (asyrp_bench.stats)",
    }


def preflight(plan: Plan) -> None:
    """Fail before a run folder exists: metric parameters, backend weights, editor checkpoints and images.

    Raises the first problem's AsyrpBenchError (missing files name where they go).
    """
    from asyrp_bench import weights
    from asyrp_bench.data import resolve_data
    from asyrp_bench.metrics import build_metrics

    suite = plan.suite
    build_metrics([m.model_dump() for m in suite.metrics])
    for backend in suite.backend:
        if backend.weights is not None:
            weights.resolve(backend.weights)
    for cell in plan.cells:
        if cell.checkpoint is not None:
            weights.resolve(cell.checkpoint, kind="editor")
    resolve_data(suite.data)
    for train in _train_specs(suite):
        if train.data is not None:
            resolve_data(train.data)


def run_suite(
    suite: Suite,
    out_root: str | os.PathLike[str] = "results",
    device: str = "cpu",
    console: Console | None = None,
    show_progress: bool = True,
) -> Path:
    """Run every cell of ``suite`` into a new folder under ``out_root``; returns the run folder.

    The suite is resolved once into a :class:`~asyrp_bench.plan.Plan` that the checks, the manifest and the
    runner share. Everything that can be checked without loading models is checked first (:func:`preflight`),
    so a missing file never leaves an empty run folder behind.
    """
    plan = build_plan(suite)
    preflight(plan)
    writer = RunWriter.create(out_root, suite.name, plan.suite_hash, suite.to_yaml(),
                              environment(device, seeds_record(suite)), plan.manifest_cells())
    return Runner(plan, writer, device, console, show_progress).run()


def resume_run(
    run_dir: str | os.PathLike[str],
    device: str | None = None,
    console: Console | None = None,
    show_progress: bool = True,
) -> Path:
    """Finish an interrupted run: its resolved suite is re-validated and only missing cells are run."""
    run = RunDir(run_dir)
    suite = suite_from_dict(yaml.safe_load((run.path / "suite.resolved.yaml").read_text()),
                            origin=str(run.path / "suite.resolved.yaml"))
    plan = build_plan(suite)
    expected = [c["id"] for c in plan.manifest_cells()]
    if expected != run.cell_ids():
        raise ConfigError(f"{run.path}: its manifest lists other cells than its suite.resolved.yaml expands to; "
                          "was either file edited? Start a new run instead.")
    device = device or (run.env.get("device") or "cpu")
    writer = RunWriter.resume(run.path, device=device)
    return Runner(plan, writer, device, console, show_progress).run()

