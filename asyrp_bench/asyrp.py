"""The asymmetric reverse process (paper §3.1-3.3, spec §1-§2, §5.3, §7).

Pure functions over a frozen :class:`~asyrp_bench.diffusion.backends.Backend` and editors:

* :func:`invert` - deterministic DDIM inversion x0 -> x_T (η = 0, model at the lower t, spec §1.3).
* :func:`asyrp_step` - one step; with an editor it is the asymmetric step of paper Eq. 11:
  x_{t'} = √ᾱ_{t'}·P_t(ε̃) + √(1-ᾱ_{t'})·ε, where ε̃ decodes h + s·Δh and ε decodes h, from one encoder pass.
* :func:`edit` - the three phases of spec §5.3: asymmetric steps for t ≥ t_edit, plain DDIM down to t_boost,
  DDIM with η = 1 below t_boost (quality boosting), output P_0.
* :func:`generate` - plain DDIM from x_T (the reconstruction when x_T came from :func:`invert`).

Noise for η > 0 comes from one ``torch.Generator`` per image, so a batch gives the same per-image result as
batch size 1 (design rule from code_style_anchors §8.8).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from asyrp_bench.diffusion.backends.base import Backend, Bottleneck
from asyrp_bench.diffusion.schedule import (
    alpha_bar,
    alphas_cumprod,
    ddim_update,
    generation_pairs,
    inversion_pairs,
    timestep_grid,
)
from asyrp_bench.errors import ConfigError, InputError
from asyrp_bench.precision import autocast, check_precision, full_precision

Generators = torch.Generator | Sequence[torch.Generator] | None
EditorTerms = list[tuple[nn.Module, float]]
ProgressFn = Callable[[int, int], None]

_ALPHAS: dict[tuple[str, torch.dtype], Tensor] = {}


def schedule_alphas(device: torch.device | str, dtype: torch.dtype = torch.float32) -> Tensor:
    """ᾱ of the linear schedule on ``device`` (computed once per device)."""
    key = (str(device), dtype)
    if key not in _ALPHAS:
        _ALPHAS[key] = alphas_cumprod().to(device=device, dtype=dtype)
    return _ALPHAS[key]


def editor_terms(editor: nn.Module | Sequence[tuple[nn.Module, float]] | None, strength: float = 1.0) -> EditorTerms:
    """Normalise ``editor`` to [(f_i, coefficient_i)] with the multi-attribute rule of spec §7.3.

    One editor gets coefficient ``strength``. Several editors (f_i, c_i) get s·c_i/√N each, so that
    h' = h + Σ_i s·c_i·f_i(h, t)/√N.
    """
    if editor is None:
        return []
    if not math.isfinite(float(strength)):
        raise InputError(f"editing strength must be a finite number, got {strength!r}")
    if isinstance(editor, nn.Module):
        return [(editor, float(strength))]
    terms = list(editor)
    if not terms:
        return []
    scale = float(strength) / math.sqrt(len(terms))
    out: EditorTerms = []
    for item in terms:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], nn.Module)):
            raise InputError("a combination of editors must be a sequence of (editor, coefficient) pairs")
        if not math.isfinite(float(item[1])):
            raise InputError(f"editor coefficient {len(out)} must be a finite number, got {item[1]!r}")
        out.append((item[0], float(item[1]) * scale))
    return out


def check_finite(x: Tensor, component: str, t: int) -> None:
    """Raise when ``x`` holds NaN/Inf, naming the step, the first bad image of the batch and the component
    (a non-finite value would otherwise become a black image that gets scored)."""
    bad = ~torch.isfinite(x.reshape(x.shape[0], -1)).all(dim=1)
    if bool(bad.any()):
        images = bad.nonzero().flatten().tolist()
        raise InputError(f"non-finite values (NaN/Inf) in the {component} at step t={t}, image(s) {images[:8]} "
                         "of the batch; check the model/editor weights and the strength")


def delta_h(terms: EditorTerms, bottleneck: Bottleneck) -> Tensor:
    """Σ_i c_i·f_i(h, temb): every editor sees the original h (spec §2.2)."""
    total = torch.zeros_like(bottleneck.h)
    for editor, coefficient in terms:
        total = total + coefficient * editor(bottleneck.h, bottleneck.temb)
    return total


def _noise_like(x: Tensor, generator: Generators) -> Tensor:
    """N(0, I) noise, drawn per image when a generator per image is given (batch-size invariant)."""
    if generator is None:
        return torch.randn_like(x)
    if isinstance(generator, torch.Generator):
        return torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)
    generators = list(generator)
    if len(generators) != x.shape[0]:
        raise InputError(f"got {len(generators)} generators for a batch of {x.shape[0]} images")
    return torch.stack(
        [torch.randn(x.shape[1:], generator=g, device=g.device, dtype=x.dtype) for g in generators]
    ).to(x.device)


def image_generators(seed: int, image_ids: Sequence[str | int]) -> list[torch.Generator]:
    """One CPU generator per image, seeded from (seed, image id): results do not depend on batching or order."""
    import hashlib

    gens = []
    for image_id in image_ids:
        digest = hashlib.sha256(f"{int(seed)}:{image_id}".encode()).digest()
        gens.append(torch.Generator(device="cpu").manual_seed(int.from_bytes(digest[:8], "little") >> 1))
    return gens


def _check_image(backend: Backend, x: Tensor, what: str) -> None:
    if not isinstance(x, Tensor):
        raise InputError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
    backend.check_inputs(x, 0)


def asyrp_step(
    backend: Backend,
    x_t: Tensor,
    t: int,
    t_next: int,
    editor: nn.Module | Sequence[tuple[nn.Module, float]] | None = None,
    strength: float = 1.0,
    eta: float = 0.0,
    generator: Generators = None,
    batched: bool | None = None,
    precision: str = "fp32",
) -> tuple[Tensor, Tensor]:
    """One reverse step from t to t_next (``t_next = -1`` means ᾱ = 1), returning ``(x_next, x0_pred)``.

    With an editor (or a list of ``(editor, coefficient)``) this is the asymmetric step of paper Eq. 11: one
    encoder pass, ε from h, ε̃ from h + Δh (same skips); Δh reaches only P_t, the direction term uses ε. Without
    one it is a plain DDIM step with a single decode. ``strength`` is the scale s applied to Δh as given (the
    step-count rescaling lives in :func:`edit`). ``x0_pred`` is P_t(ε̃) (or P_t(ε) without an editor).
    ``batched`` decodes h and h + Δh as one batch of 2B (:meth:`Backend.decode_pair`); None means
    :func:`default_batched` (on for CUDA). ``precision`` autocasts the U-Net only; Δh and the DDIM
    arithmetic always run in fp32 (docs/performance.md).
    """
    if not isinstance(t, int) or not isinstance(t_next, int):
        raise InputError(f"t and t_next must be ints, got {t!r}, {t_next!r}")
    if t_next >= t:
        raise InputError(f"a reverse step needs t_next < t, got t={t}, t_next={t_next}")
    alphas = schedule_alphas(x_t.device)
    a_t, a_next = alpha_bar(alphas, t), alpha_bar(alphas, t_next)
    check_precision(precision)
    with autocast(x_t.device, precision):
        bottleneck = backend.encode(x_t, t)
        check_finite(bottleneck.h, "backend's h-space (encoder output)", t)
        terms = editor_terms(editor, strength)
        if terms:
            with full_precision(x_t.device):
                h32 = Bottleneck(h=bottleneck.h.float(), skips=(), temb=bottleneck.temb.float(), t=bottleneck.t)
                dh = delta_h(terms, h32)
                check_finite(dh, "editor output Δh", t)
                h_edit = (h32.h + dh).to(bottleneck.h.dtype)
            if default_batched(x_t.device) if batched is None else batched:
                eps, eps_x0 = backend.decode_pair(bottleneck, h_edit)
            else:
                eps, eps_x0 = backend.decode(bottleneck), backend.decode(bottleneck, h_edit)
            check_finite(eps_x0, "backend's noise prediction from the edited h", t)
        else:
            eps = eps_x0 = backend.decode(bottleneck)
        check_finite(eps, "backend's noise prediction", t)
    noise = _noise_like(x_t, generator) if eta > 0 else None
    # Under autocast the U-Net's ε may be bf16/fp16; the DDIM update stays in x_t's dtype (fp32).
    return ddim_update(x_t, eps_x0.to(x_t.dtype), eps.to(x_t.dtype), a_t, a_next, eta=eta, noise=noise)


def default_batched(device: torch.device | str) -> bool:
    """Batch ε and ε̃ into one decode by default only on CUDA (one launch sequence instead of two).

    On CPU the two-decode path is kept as the default so the fp32 CPU numbers (and the ci_tiny golden) are
    bit-for-bit those of earlier releases; both paths agree within 1e-6 (tests/test_speed.py).
    """
    return torch.device(device).type == "cuda"


@torch.no_grad()
def invert(
    backend: Backend,
    x0: Tensor,
    n_steps: int,
    t0: int = 999,
    progress: ProgressFn | None = None,
    precision: str = "fp32",
) -> Tensor:
    """DDIM inversion (η = 0) of images in [-1, 1] to x_{t0} over the ``n_steps`` grid (spec §1.3).

    The chain starts from x0 as the state at t = 0 (ᾱ_0 = 0.9999, not 1), evaluates the model at the lower t of
    each pair and uses n_steps - 1 network evaluations.
    """
    _check_image(backend, x0, "x0")
    alphas = schedule_alphas(x0.device)
    pairs = inversion_pairs(timestep_grid(n_steps, t0))
    x = x0
    for i, (t, t_next) in enumerate(pairs):
        with autocast(x.device, precision):
            eps = backend(x, t)
        check_finite(eps, "backend's noise prediction (inversion)", t)
        x, _ = ddim_update(x, eps.to(x.dtype), eps.to(x.dtype), alpha_bar(alphas, t), alpha_bar(alphas, t_next))
        if progress is not None:
            progress(i + 1, len(pairs))
    return x


def _resolve_from_editors(terms: EditorTerms, key: str, given: Any) -> Any:
    """A value the caller did not give, read from editor metadata (fixes spec §10 B8)."""
    if given is not None:
        return given
    values = {editor.metadata.get(key) for editor, _ in terms if getattr(editor, "metadata", None)}
    values.discard(None)
    if not values:
        return None
    if key == "t_edit":
        # Several attributes: the latest t_edit, i.e. the shortest interval (spec §7.3).
        return max(values)
    if len(values) > 1:
        raise ConfigError(f"editors disagree on {key} ({sorted(values)}); pass {key} explicitly")
    return values.pop()


def _check_interval(grid: Sequence[int], t_edit: Any, t_boost: Any, n_train_step: Any, t0: int) -> None:
    """t_edit / t_boost inside the grid, t_boost < t_edit, n_train_step ≥ 1, and at least one grid step in
    [t_edit, t0]: otherwise an edit would silently change nothing."""
    if isinstance(t_edit, bool) or not isinstance(t_edit, int) or not 0 <= t_edit <= t0:
        raise ConfigError(f"t_edit must be an integer timestep in 0..{t0}, got {t_edit!r}")
    if t_boost is not None and (isinstance(t_boost, bool) or not isinstance(t_boost, int) or t_boost > t0):
        raise ConfigError(f"t_boost must be an integer timestep ≤ {t0} (≤ 0: no boosting), got {t_boost!r}")
    if t_boost is not None and t_boost > 0 and t_boost >= t_edit:
        raise ConfigError(f"t_boost ({t_boost}) must be below t_edit ({t_edit}): boosting runs after editing")
    if n_train_step is not None and (isinstance(n_train_step, bool) or not isinstance(n_train_step, int)
                                     or n_train_step < 1):
        raise ConfigError(f"n_train_step must be an integer ≥ 1, got {n_train_step!r}")
    steps = sorted({int(t) for t in grid if int(t) >= 0}, reverse=True)
    if not any(t >= t_edit for t in steps):
        shown = ", ".join(map(str, steps[:12])) + (" ..." if len(steps) > 12 else "")
        raise ConfigError(f"no step of the test grid is at or above t_edit={t_edit}, so nothing would be edited; "
                          f"the grid has the steps {shown}")


@torch.no_grad()
def edit(
    backend: Backend,
    x_T: Tensor,
    editor: nn.Module | Sequence[tuple[nn.Module, float]] | None,
    t_edit: int | None,
    t_boost: int | None,
    n_steps: int,
    strength: float = 1.0,
    n_train_step: int | None = None,
    generator: Generators = None,
    t0: int = 999,
    progress: ProgressFn | None = None,
    precision: str = "fp32",
    batched: bool | None = None,
) -> Tensor:
    """Generate from x_T with the three phases of spec §5.3 and return P_0, clamped to [-1, 1].

    Args:
        backend: the frozen U-Net.
        x_T: latents at t0, usually from :func:`invert`.
        editor: an editor, a list of (editor, coefficient) for a linear combination (spec §7.3), or None.
        t_edit: asymmetric steps run for t ≥ t_edit. None reads it from the editors' metadata.
        t_boost: DDIM with η = 1 runs for t < t_boost ("quality boosting"). None reads it from the editors'
            metadata; when none is recorded, or when it is ≤ 0, boosting is off.
        n_steps: the test grid size (n_test_step).
        strength: the user's editing strength (hs_coeff_delta_h; negative reverses the attribute).
        n_train_step: grid size the editor was trained on. Δh is scaled by n_train_step / n_steps because it is
            applied once per step (spec §2.4). None reads it from the editors' metadata, else no rescaling.
        generator: one generator per image (see :func:`image_generators`) or one for the batch, for η = 1 noise.
        precision: fp32 | bf16 | fp16 autocast of the U-Net (docs/performance.md); DDIM arithmetic stays fp32.
        batched: decode h and h + Δh as one 2B batch above t_edit (None: on for CUDA only).
    """
    _check_image(backend, x_T, "x_T")
    terms = editor_terms(editor, strength)
    t_edit = _resolve_from_editors(terms, "t_edit", t_edit)
    t_boost = _resolve_from_editors(terms, "t_boost", t_boost)
    n_train_step = _resolve_from_editors(terms, "n_train_step", n_train_step)
    if terms and t_edit is None:
        raise ConfigError("t_edit is required: pass it, or use an editor file that records it")
    grid = timestep_grid(n_steps, t0)
    if terms:
        _check_interval(grid, t_edit, t_boost, n_train_step, t0)
    scale = (n_train_step / n_steps) if (terms and n_train_step) else 1.0
    terms = [(e, c * scale) for e, c in terms]
    boost_below = t_boost if (t_boost is not None and t_boost > 0) else -1
    pairs = generation_pairs(grid)
    x = x_T
    x0_pred = x_T
    for i, (t, t_next) in enumerate(pairs):
        if terms and t >= t_edit:
            x, x0_pred = asyrp_step(backend, x, t, t_next, terms, 1.0, batched=batched, precision=precision)
        elif t < boost_below:
            x, x0_pred = asyrp_step(backend, x, t, t_next, None, eta=1.0, generator=generator, precision=precision)
        else:
            x, x0_pred = asyrp_step(backend, x, t, t_next, None, precision=precision)
        if progress is not None:
            progress(i + 1, len(pairs))
    # The last step maps to ᾱ = 1, so x equals P_0 (spec §1.3).
    return x0_pred.clamp(-1.0, 1.0)


def generate(
    backend: Backend,
    x_T: Tensor,
    n_steps: int,
    t0: int = 999,
    progress: ProgressFn | None = None,
    precision: str = "fp32",
) -> Tensor:
    """Plain deterministic DDIM from x_T (the DDIM reconstruction when x_T = invert(x0)), clamped to [-1, 1]."""
    return edit(backend, x_T, None, None, None, n_steps, t0=t0, progress=progress, precision=precision)
