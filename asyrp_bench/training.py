"""Training f_t with the directional CLIP loss (spec §4.3; DESIGN §4 "train").

For each batch of training images, starting from their DDIM inversions x_T (cached on disk, shared by every
variant and edit), two chains run over the t ≥ t_edit part of the n_train_step grid (the last step goes to −1):

* the edited chain x̃: the asymmetric step of paper Eq. 11 from x̃_t *detached*, so the gradient path is
  P̃_t → ε̃ → frozen decoder → Δh → f_t only (no backprop through time);
* the reference chain x: plain DDIM without gradient, giving P_t.

One optimizer step per timestep on
  L = λ_clip·L_dir(P̃_t, y_tgt; x0, y_src) + λ_l1·cos_text·mean|P̃_t − P_t|,
with L_dir = −log((1 + cos)/2) (or 1 − cos) of the CLIP image direction (P̃_t − x0, per image: every image is
its own source, fixing B5) against the 79-template text direction. Deviations from the official code are listed
in docs/training.md.

Speed: both chains share one encoder pass and one no-grad decoder pass per step (batch 2B; B at the first step,
where they coincide), plus one decoder pass with grad for ε̃ on the edited half. The source images' CLIP
embeddings, the text direction and the text cosine are computed once per run.
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint as torch_checkpoint

from asyrp_bench.asyrp import schedule_alphas
from asyrp_bench.diffusion.backends.base import Backend, Bottleneck
from asyrp_bench.diffusion.schedule import alpha_bar, ddim_update, generation_pairs, timestep_grid
from asyrp_bench.editors.base import Editor, build_editor
from asyrp_bench.errors import ConfigError, InputError, TrainingDivergedError
from asyrp_bench.precision import autocast, check_precision, full_precision
from asyrp_bench.recipes import Recipe, resolve_recipe

if TYPE_CHECKING:
    from asyrp_bench.cache import InversionCache
    from asyrp_bench.clip import ClipModel


@dataclass(frozen=True)
class StepRecord:
    """One optimizer step, handed to ``on_step``.

    Attributes:
        iteration: outer iteration (pass over the images), from 0.
        batch: batch index within the pass, from 0.
        image_ids: the ids of the batch's images.
        t, t_next: the timestep pair of this step.
        loss: the batch loss that was back-propagated.
        loss_direction: mean L_dir over the batch (the form of the recipe); loss_l1: mean |P̃_t − P_t|.
        lr: the learning rate used.
    """

    iteration: int
    batch: int
    image_ids: tuple[str, ...]
    t: int
    t_next: int
    loss: float
    loss_direction: float
    loss_l1: float
    lr: float


@dataclass
class Objective:
    """The loss pieces fixed for a run (computed once by :func:`prepare_objective`).

    Attributes:
        clip: the frozen CLIP; text_direction: unit [D]; text_cosine: raw-prompt cosine (float);
        source_embeddings: [N, D] CLIP embeddings of the real x0 (no grad); lambda_clip; lambda_l1: already
        multiplied by text_cosine when the recipe says so; form: ``neg_log`` or ``one_minus``.
    """

    clip: ClipModel
    text_direction: Tensor
    text_cosine: float
    source_embeddings: Tensor  # [N, D], CLIP embeddings of the real x0 (no grad)
    lambda_clip: float
    lambda_l1: float
    form: str

    def per_image(self, p_edit: Tensor, p_ref: Tensor, index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(total, direction, l1) losses per image, each [B]."""
        from asyrp_bench.clip import directional_loss

        edit_emb = self.clip.encode_images(p_edit)
        source = self.source_embeddings[index.to(self.source_embeddings.device)]
        # CLIP may live on another device than the U-Net: the loss is assembled on the U-Net's.
        direction = directional_loss(source, edit_emb, self.text_direction, form=self.form).to(p_edit.device)
        l1 = (p_edit - p_ref).abs().flatten(1).mean(dim=1)
        total = self.lambda_clip * direction + self.lambda_l1 * l1
        return total, direction, l1


def _rows(bottleneck: Bottleneck, stop: int, total: int) -> Bottleneck:
    """The first ``stop`` rows of a bottleneck computed for ``total`` rows (batch-first tensors are cut)."""

    def cut(value: Any) -> Any:
        if isinstance(value, Tensor) and value.ndim > 0 and value.shape[0] == total:
            return value[:stop]
        if isinstance(value, (tuple, list)):
            return type(value)(cut(v) for v in value)
        return value

    return Bottleneck(h=cut(bottleneck.h), skips=cut(bottleneck.skips), temb=cut(bottleneck.temb),
                      t=cut(bottleneck.t), extra={k: cut(v) for k, v in bottleneck.extra.items()})


def paired_step(
    backend: Backend, editor: Editor, x_edit: Tensor, x_ref: Tensor, t: int, t_next: int,
    checkpoint: bool = False, precision: str = "fp32",
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One training step of both chains: ``(x̃_next, P̃_t, x_next, P_t)``.

    P̃_t carries the gradient to the editor (through ε̃ only: x̃_t is treated as a constant); x̃_next, x_next
    and P_t carry none. Equal to ``asyrp_step(backend, x_edit, t, t_next, editor)`` and
    ``asyrp_step(backend, x_ref, t, t_next)`` (tests/test_training.py), computed with one encoder pass for both.
    ``checkpoint`` recomputes the decoder's activations in the backward pass instead of storing them (the same
    gradient, tests/test_training_speed.py; docs/performance.md). ``precision`` autocasts the frozen U-Net;
    the editor's output and the DDIM arithmetic stay fp32.
    """
    batch = x_edit.shape[0]
    shared = x_edit is x_ref  # the first step: both chains start from x_T
    with torch.no_grad(), autocast(x_edit.device, precision):
        both = x_edit if shared else torch.cat([x_edit, x_ref])
        bottleneck = backend.encode(both, t)
        eps = backend.decode(bottleneck).to(x_edit.dtype)
    edited = bottleneck if shared else _rows(bottleneck, batch, 2 * batch)
    with full_precision(x_edit.device):
        h_edit = edited.h.float() + editor(edited.h.float(), edited.temb.float())

    def decode(h: Tensor) -> Tensor:
        with autocast(x_edit.device, precision):
            return backend.decode(edited, h.to(edited.h.dtype)).to(x_edit.dtype)

    eps_tilde = torch_checkpoint(decode, h_edit, use_reentrant=False) if checkpoint else decode(h_edit)
    alphas = schedule_alphas(x_edit.device)
    a_t, a_next = alpha_bar(alphas, t), alpha_bar(alphas, t_next)
    x_edit_next, p_edit = ddim_update(x_edit.detach(), eps_tilde, eps[:batch], a_t, a_next)
    with torch.no_grad():
        x_ref_next, p_ref = ddim_update(x_ref, eps[-batch:], eps[-batch:], a_t, a_next)
    return x_edit_next.detach(), p_edit, x_ref_next, p_ref


def default_checkpoint(backend: Backend) -> bool:
    """Gradient checkpointing by default for 256 px (and larger) backends on CUDA: batch > 1 fits 24 GB."""
    return backend.device.type == "cuda" and backend.image_size >= 256


def training_pairs(n_train_step: int, t_edit: int, t0: int = 999) -> list[tuple[int, int]]:
    """The (t, t_next) pairs trained: the t ≥ t_edit part of the n_train_step grid, descending (spec §4.3)."""
    pairs = [(t, t_next) for t, t_next in generation_pairs(timestep_grid(n_train_step, t0)) if t >= t_edit]
    if not pairs:
        raise ConfigError(f"no timestep of the {n_train_step}-step grid is ≥ t_edit={t_edit}; lower t_edit")
    return pairs


def _check_images(backend: Backend, images: Tensor, image_ids: Sequence[str] | None) -> list[str]:
    if not isinstance(images, Tensor):
        raise InputError(f"images must be a tensor [N, 3, H, W] in [-1, 1], got {type(images).__name__}")
    if images.ndim != 4 or images.shape[0] == 0:
        raise InputError(f"images must be a non-empty [N, C, H, W] tensor, got shape {list(images.shape)}")
    backend.check_inputs(images[:1], 0)
    if not torch.isfinite(images).all():
        raise InputError("images hold NaN or Inf values")
    low, high = float(images.min()), float(images.max())
    if low < -1.001 or high > 1.001:
        raise InputError(f"images must lie in [-1, 1] (got [{low:.3g}, {high:.3g}]); map [0, 1] images by x·2 − 1")
    ids = [str(i) for i in (image_ids if image_ids is not None else range(images.shape[0]))]
    if len(ids) != images.shape[0]:
        raise InputError(f"got {len(ids)} image ids for {images.shape[0]} images")
    return ids


def _optimizer(recipe: Recipe, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    betas = (float(recipe.betas[0]), float(recipe.betas[1]))
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=recipe.lr, betas=betas, weight_decay=recipe.weight_decay)
    return torch.optim.AdamW(params, lr=recipe.lr, betas=betas, weight_decay=recipe.weight_decay)


def _resolve_prompts(source: str | None, target: str | None, edit: str | None) -> tuple[str, str, Any]:
    named = None
    if edit is not None:
        from asyrp_bench.prompts import get_edit

        named = get_edit(edit)
        if (source is not None and source != named.source) or (target is not None and target != named.target):
            raise ConfigError(
                f"edit {edit!r} means {named.source!r} → {named.target!r}; do not also pass other prompts"
            )
        source, target = named.source, named.target
    if not source or not target or not isinstance(source, str) or not isinstance(target, str):
        raise ConfigError("training needs a source and a target prompt (or a named edit, `asyrp-bench ls edits`)")
    if source == target:
        raise ConfigError(f"source and target prompts are identical ({source!r}): the text direction is undefined")
    return source, target, named


def _images_hash(images: Tensor) -> str:
    from asyrp_bench.cache import tensor_sha256

    digest = hashlib.sha256()
    for x in images:
        digest.update(tensor_sha256(x).encode())
    return digest.hexdigest()


def _freeze_clip(clip: ClipModel) -> None:
    clip.model.eval()
    clip.model.requires_grad_(False)


def prepare_objective(
    clip: ClipModel, images: Tensor, source: str, target: str, recipe: Recipe, batch_size: int = 32
) -> Objective:
    """The run's fixed loss pieces: source-image embeddings, text direction and text cosine (computed once)."""
    _freeze_clip(clip)
    with torch.no_grad():
        source_embeddings = torch.cat(
            [clip.encode_images(images[i:i + batch_size]) for i in range(0, images.shape[0], batch_size)]
        )
    text_direction = clip.text_direction(source, target)
    text_cosine = clip.text_cosine(source, target)
    weight_l1 = recipe.lambda_l1 * (text_cosine if recipe.l1_text_cosine else 1.0)
    return Objective(clip, text_direction, text_cosine, source_embeddings, recipe.lambda_clip, weight_l1,
                      recipe.loss_form)


def _load_run_clip(clip: ClipModel | None, recipe: Recipe, device: torch.device) -> ClipModel:
    if clip is not None:
        return clip
    from asyrp_bench.clip import load_clip

    return load_clip(recipe.clip_model, recipe.clip_pretrained, device=device)


def train_editor(
    backend: Backend,
    images: Tensor,
    source: str | None = None,
    target: str | None = None,
    *,
    edit: str | None = None,
    recipe: str | Recipe = "asyrp_paper",
    overrides: Mapping[str, Any] | None = None,
    variant: str | None = None,
    editor_params: Mapping[str, Any] | None = None,
    editor: Editor | None = None,
    t_edit: int | None = None,
    t_boost: int | None = None,
    seed: int | None = None,
    clip: ClipModel | None = None,
    image_ids: Sequence[str] | None = None,
    cache: InversionCache | None = None,
    progress: bool = False,
    on_step: Callable[[StepRecord], None] | None = None,
    out: str | os.PathLike[str] | None = None,
    precision: str = "fp32",
    checkpoint: bool | None = None,
) -> Editor:
    """Train an editor f_t on a frozen backend with the directional CLIP loss (spec §4.3).

    Args:
        backend: the frozen U-Net (never modified; its parameters stay bit-identical).
        images: training images [N, 3, S, S] in [-1, 1] on any device (moved to the backend's); the first
            ``n_train_img`` of the recipe are used, in this order.
        source, target: the text pair; or ``edit``, a named edit (``asyrp_bench.prompts``).
        recipe: a recipe name (``asyrp_bench.recipes.RECIPES``) or a :class:`Recipe`; ``overrides`` change its
            fields (unknown keys: ConfigError with a "did you mean").
        variant, editor_params: the f_t to build (default: the recipe's); or ``editor``, an editor to start
            from (copied; the given object is not changed).
        t_edit, t_boost: the interval. Precedence: this argument, then ``overrides``, the recipe, the named
            edit. t_edit is required; t_boost may stay None (no boosting at edit time).
        seed: seeds editor init, dropout and shuffling (default: the recipe's). Same seed → identical weights.
        clip: a loaded :class:`~asyrp_bench.clip.ClipModel` (default: the recipe's CLIP, loaded offline).
        image_ids: names of the images, used in errors and metadata (default "0", "1", ...).
        cache: the inversion cache (default: ``InversionCache()`` under ``$ASYRP_BENCH_HOME/cache``).
        progress: show a rich progress bar with the loss per step.
        on_step: called after every optimizer step with a :class:`StepRecord`.
        out: also save the trained editor there (``.safetensors``, written only on success).
        precision: fp32 | bf16 | fp16 autocast of the frozen U-Net (docs/performance.md); recorded in metadata.
        checkpoint: gradient checkpointing of the decoder path (None: on for ≥ 256 px backends on CUDA).

    Returns:
        The trained editor in eval mode, with ``metadata`` filled (backend name and weights hash, prompts,
        n_train_step, t_edit, t_boost, recipe name and values, CLIP, seed, training summary), so that
        ``asyrp_bench.edit`` uses the stored interval and step scaling.

    Raises:
        TrainingDivergedError: a loss or a parameter became NaN/Inf (names the images and the timestep);
            nothing is saved.
    """
    from asyrp_bench import __version__
    from asyrp_bench.cache import InversionCache

    resolved = resolve_recipe(recipe, overrides)
    overrides = dict(overrides or {})
    source, target, named = _resolve_prompts(source, target, edit)
    if t_edit is None:
        t_edit = resolved.t_edit if resolved.t_edit is not None else (named.t_edit if named else None)
    if t_boost is None:
        t_boost = resolved.t_boost if resolved.t_boost is not None else (named.t_boost if named else None)
    if t_edit is None:
        raise ConfigError(
            "t_edit is required: pass t_edit (CLI --t-edit), set it in the recipe, or use a named edit that "
            "records one (spec §5 chooses it per edit and dataset)"
        )
    for name, value in (("t_edit", t_edit), ("t_boost", t_boost)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 999):
            raise ConfigError(f"{name} must be an integer in [0, 999], got {value!r}")
    seed = resolved.seed if seed is None else int(seed)
    check_precision(precision)
    checkpoint = default_checkpoint(backend) if checkpoint is None else bool(checkpoint)
    ids = _check_images(backend, images, image_ids)
    if resolved.n_train_img is not None:
        images, ids = images[: resolved.n_train_img], ids[: resolved.n_train_img]
    device = backend.device
    x0 = images.detach().to(device=device, dtype=torch.float32)
    pairs = training_pairs(resolved.n_train_step, t_edit)

    clip = _load_run_clip(clip, resolved, device)
    cache = cache if cache is not None else InversionCache()
    x_T = cache.invert(backend, x0, resolved.n_inv_step, batch_size=max(8, resolved.batch_size))
    objective = prepare_objective(clip, x0, source, target, resolved)

    cuda_devices = [device] if device.type == "cuda" else []
    started = time.perf_counter()
    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(seed)
        if editor is None:
            # The recipe's editor_params belong to the recipe's variant; another variant starts from its defaults.
            chosen = variant or resolved.variant
            params = dict(resolved.editor_params) if chosen == resolved.variant else {}
            params.update(editor_params or {})
            model = build_editor(chosen, backend.h_shape, backend.temb_dim, **params)
        else:
            model = copy.deepcopy(editor)
        from asyrp_bench.editors.io import check_editor_backend

        check_editor_backend(model, backend, check_hash=False, source=f"{model.variant} editor")
        model = model.to(device).train()
        speed: dict[str, Any] = {"precision": precision, "checkpoint": checkpoint}
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        summary = _train_loop(backend, model, x_T, ids, pairs, objective, resolved, seed, progress, on_step, speed)
        # Peak memory of the training loop, per cell (CUDA only; None on CPU where torch does not track it).
        speed["peak_memory_bytes"] = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    model.eval()
    model.metadata = {
        "backend": backend.describe(),
        "prompts": {"source": source, "target": target, "edit": edit},
        "n_train_step": resolved.n_train_step,
        "n_inv_step": resolved.n_inv_step,
        "t_edit": t_edit,
        "t_boost": t_boost,
        "recipe": {"name": resolved.name, "values": resolved.values(), "overrides": overrides},
        "clip": clip.model_id,
        "text_cosine": objective.text_cosine,
        "seed": seed,
        "training": {
            **summary,
            "n_images": len(ids),
            "image_ids": ids,
            "images_sha256": _images_hash(x0),
            "seconds": round(time.perf_counter() - started, 3),
            **speed,
        },
        "package_version": __version__,
    }
    if out is not None:
        from asyrp_bench.editors.io import save_editor

        save_editor(model, out)
    return model


def _batches(n: int, batch_size: int, iteration: int, recipe: Recipe, seed: int) -> list[list[int]]:
    if recipe.shuffle:
        generator = torch.Generator().manual_seed(seed * 1_000_003 + iteration)
        order = torch.randperm(n, generator=generator).tolist()
    else:
        order = list(range(n))
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def _train_loop(
    backend: Backend,
    editor: Editor,
    x_T: Tensor,
    ids: list[str],
    pairs: list[tuple[int, int]],
    objective: Objective,
    recipe: Recipe,
    seed: int,
    progress: bool,
    on_step: Callable[[StepRecord], None] | None,
    speed: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    speed = dict(speed or {})
    params = [p for p in editor.parameters() if p.requires_grad]
    if not params:
        raise ConfigError(f"the {editor.variant} editor has no trainable parameters")
    optimizer = _optimizer(recipe, params)
    scheduler = (torch.optim.lr_scheduler.StepLR(optimizer, recipe.scheduler_step_size, recipe.scheduler_gamma)
                 if recipe.scheduler_step_size else None)
    n_batches = math.ceil(len(ids) / recipe.batch_size)
    total = recipe.n_iter * n_batches * len(pairs)
    losses: list[float] = []
    bar = _ProgressBar(total, enabled=progress)
    with bar:
        for iteration in range(recipe.n_iter):
            for b, index in enumerate(_batches(len(ids), recipe.batch_size, iteration, recipe, seed)):
                batch_ids = tuple(ids[i] for i in index)
                rows = torch.tensor(index, device=x_T.device)
                x_edit = x_ref = x_T[rows]
                for t, t_next in pairs:
                    optimizer.zero_grad(set_to_none=True)
                    x_edit, p_edit, x_ref, p_ref = paired_step(
                        backend, editor, x_edit, x_ref, t, t_next,
                        checkpoint=bool(speed.get("checkpoint", False)), precision=speed.get("precision", "fp32"))
                    per_image, direction, l1 = objective.per_image(p_edit, p_ref, rows)
                    bad = ~torch.isfinite(per_image.detach())
                    if bool(bad.any()):
                        names = [batch_ids[i] for i in bad.nonzero().flatten().tolist()]
                        raise TrainingDivergedError(
                            f"training diverged: loss is NaN/Inf for image(s) {names} at timestep t={t} "
                            f"(pass {iteration + 1}/{recipe.n_iter}); lower the learning rate. Nothing was saved."
                        )
                    loss = per_image.mean()
                    loss.backward()
                    optimizer.step()
                    if not all(bool(torch.isfinite(p).all()) for p in params):
                        raise TrainingDivergedError(
                            f"training diverged: editor parameters became NaN/Inf after the update at timestep "
                            f"t={t} on image(s) {list(batch_ids)} (pass {iteration + 1}/{recipe.n_iter}); lower "
                            "the learning rate. Nothing was saved."
                        )
                    record = StepRecord(iteration, b, batch_ids, t, t_next, loss.item(), direction.mean().item(),
                                        l1.mean().item(), float(optimizer.param_groups[0]["lr"]))
                    losses.append(record.loss)
                    bar.advance(record)
                    if on_step is not None:
                        on_step(record)
            if scheduler is not None:
                scheduler.step()  # once per outer iteration, as the official code (spec §4.1)
    n_first = min(len(losses), len(pairs) * n_batches)
    return {
        "n_updates": len(losses),
        "loss_first_pass": sum(losses[:n_first]) / max(n_first, 1),
        "loss_last_pass": sum(losses[-n_first:]) / max(n_first, 1),
    }


class _ProgressBar:
    """A rich progress bar showing the loss of each step (no-op when disabled)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.enabled = enabled
        self.total = total
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> _ProgressBar:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("[bold]train[/]"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                TextColumn("{task.fields[status]}"), console=Console(stderr=True),
            )
            self._progress.__enter__()
            self._task = self._progress.add_task("train", total=self.total, status="")
        return self

    def advance(self, record: StepRecord) -> None:
        if self._progress is not None:
            status = (f"pass {record.iteration + 1} batch {record.batch + 1} t={record.t:>3} "
                      f"loss {record.loss:.4f} (dir {record.loss_direction:.4f}, l1 {record.loss_l1:.4f})")
            self._progress.update(self._task, advance=1, status=status)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)


@torch.no_grad()
def chain_directional_loss(
    backend: Backend,
    editor: Editor,
    x_T: Tensor,
    objective: Objective,
    pairs: Sequence[tuple[int, int]],
) -> float:
    """Mean L_dir over the training pairs of both chains, without updates (for monitoring and tests)."""
    was_training = editor.training
    editor.eval()
    rows = torch.arange(x_T.shape[0], device=x_T.device)
    x_edit = x_ref = x_T
    values = []
    for t, t_next in pairs:
        x_edit, p_edit, x_ref, p_ref = paired_step(backend, editor, x_edit, x_ref, t, t_next)
        values.append(objective.per_image(p_edit, p_ref, rows)[1].mean())
    editor.train(was_training)
    return float(torch.stack(values).mean())
