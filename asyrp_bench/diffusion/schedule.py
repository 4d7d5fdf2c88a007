"""The noise schedule, the timestep grids and one DDIM update (spec §1).

Everything here is a pure function of tensors so it can be checked against diffusers' schedulers and the
hand-written equations. Conventions follow the official Asyrp code (spec §1.1-§1.3):

* β is ``linspace(1e-4, 0.02, 1000)`` in float64, cast to float32; ᾱ_t = cumprod(1 - β) in float32.
* The grid for N steps is ``[int(s + 1e-6) for s in linspace(0, 1, N) * t0]`` with t0 = 999.
* ``t = -1`` means ᾱ = 1: the step into it returns the predicted x0 itself.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from asyrp_bench.errors import InputError

NUM_TRAIN_TIMESTEPS = 1000
BETA_START = 1e-4
BETA_END = 0.02


def linear_betas(
    num_timesteps: int = NUM_TRAIN_TIMESTEPS, beta_start: float = BETA_START, beta_end: float = BETA_END
) -> Tensor:
    """β_1..β_T of the linear schedule, computed in float64 as the official code does, returned as float32."""
    return torch.from_numpy(np.linspace(beta_start, beta_end, num_timesteps, dtype=np.float64)).float()


def alphas_cumprod(betas: Tensor | None = None) -> Tensor:
    """ᾱ_t = Π_{s≤t}(1 - β_s), in float32 (spec §1.1: ᾱ_0 = 0.9999, ᾱ_999 ≈ 4.04e-5)."""
    if betas is None:
        betas = linear_betas()
    return torch.cumprod(1.0 - betas.float(), dim=0)


def timestep_grid(n_steps: int, t0: int = 999) -> list[int]:
    """The ascending grid of ``n_steps`` integer timesteps from 0 to ``t0`` (spec §1.3).

    >>> timestep_grid(40)[:6], timestep_grid(40)[-2:]
    ([0, 25, 51, 76, 102, 128], [973, 999])
    """
    if not isinstance(n_steps, int) or isinstance(n_steps, bool) or n_steps < 2:
        raise InputError(f"n_steps must be an integer >= 2, got {n_steps!r}")
    if not isinstance(t0, int) or not 1 <= t0 < NUM_TRAIN_TIMESTEPS:
        raise InputError(f"t0 must be an integer in [1, {NUM_TRAIN_TIMESTEPS - 1}], got {t0!r}")
    grid = [int(s + 1e-6) for s in np.linspace(0, 1, n_steps) * t0]
    if len(set(grid)) != len(grid):
        raise InputError(f"{n_steps} steps over [0, {t0}] repeat timesteps; use at most {t0 + 1} steps")
    return grid


def generation_pairs(grid: Sequence[int]) -> list[tuple[int, int]]:
    """(t, t_next) pairs of the generative chain, descending, ending with (grid[0], -1) (spec §1.3)."""
    seq_next = [-1, *grid[:-1]]
    return list(reversed(list(zip(grid, seq_next, strict=True))))


def inversion_pairs(grid: Sequence[int]) -> list[tuple[int, int]]:
    """(t, t_next) pairs of DDIM inversion, ascending: the model is evaluated at the lower t (spec §1.3)."""
    return list(itertools.pairwise(grid))


def alpha_bar(alphas: Tensor, t: int) -> Tensor:
    """ᾱ_t as a 0-d tensor, with ᾱ_{-1} = 1."""
    if t == -1:
        return torch.ones((), dtype=alphas.dtype, device=alphas.device)
    if not 0 <= t < alphas.shape[0]:
        raise InputError(f"timestep {t} is outside [0, {alphas.shape[0] - 1}] (or -1 for the final step)")
    return alphas[t]


def predict_x0(x_t: Tensor, eps: Tensor, a_t: Tensor) -> Tensor:
    """P_t(ε) = (x_t - √(1-ᾱ_t)·ε) / √ᾱ_t (paper Eq. 12)."""
    return (x_t - (1.0 - a_t).sqrt() * eps) / a_t.sqrt()


def ddim_sigma(a_t: Tensor, a_next: Tensor, eta: float) -> Tensor:
    """σ_t(η) = η·√((1-ᾱ_t/ᾱ_next)(1-ᾱ_next)/(1-ᾱ_t)); zero when ᾱ_next = 1 (spec §1.2)."""
    return eta * ((1.0 - a_t / a_next) * (1.0 - a_next) / (1.0 - a_t)).clamp(min=0.0).sqrt()


def ddim_update(
    x_t: Tensor,
    eps_x0: Tensor,
    eps_direction: Tensor,
    a_t: Tensor,
    a_next: Tensor,
    eta: float = 0.0,
    noise: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """One DDIM update, returning ``(x_next, x0_pred)``.

    ``eps_x0`` builds the predicted x0 and ``eps_direction`` the "direction pointing to x_t" term. Plain DDIM
    passes the same ε twice; the asymmetric reverse process (paper Eq. 11) passes ε̃ and ε.
    """
    x0_pred = predict_x0(x_t, eps_x0, a_t)
    if eta == 0.0:
        return a_next.sqrt() * x0_pred + (1.0 - a_next).sqrt() * eps_direction, x0_pred
    if noise is None:
        raise InputError("eta > 0 needs a noise tensor (pass a generator for reproducible noise)")
    sigma = ddim_sigma(a_t, a_next, eta)
    direction = (1.0 - a_next - sigma**2).clamp(min=0.0).sqrt() * eps_direction
    return a_next.sqrt() * x0_pred + direction + sigma * noise, x0_pred


def snr_db(a_t: float) -> float:
    """Signal-to-noise ratio of x_t in dB, for reports and t_edit tables."""
    return 10.0 * math.log10(a_t / (1.0 - a_t))
