"""The schedule, the grids and one DDIM update against diffusers' schedulers and the spec's numbers."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler

from asyrp_bench.diffusion import schedule as S
from asyrp_bench.errors import InputError


def diffusers_ddim() -> DDIMScheduler:
    return DDIMScheduler(
        num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
        clip_sample=False, set_alpha_to_one=True, steps_offset=0,
    )


def test_alphas_match_spec_and_diffusers():
    alphas = S.alphas_cumprod()
    assert alphas.dtype == torch.float32 and alphas.shape == (1000,)
    # Spec §1.1 examples.
    assert alphas[0].item() == pytest.approx(0.9999, abs=1e-7)
    assert alphas[167].item() == pytest.approx(0.743, abs=1e-3)
    assert alphas[500].item() == pytest.approx(0.0778, abs=1e-4)
    assert alphas[999].item() == pytest.approx(4.04e-5, rel=1e-2)
    assert torch.allclose(alphas, diffusers_ddim().alphas_cumprod, atol=1e-6, rtol=0)


def test_grids_match_spec():
    grid40 = S.timestep_grid(40)
    assert grid40[:6] == [0, 25, 51, 76, 102, 128] and grid40[-3:] == [947, 973, 999] and len(grid40) == 40
    assert S.timestep_grid(50)[:4] == [0, 20, 40, 61] and S.timestep_grid(50)[-2:] == [978, 999]
    assert S.timestep_grid(1000) == list(range(1000))
    gen = S.generation_pairs(S.timestep_grid(40))
    assert gen[0] == (999, 973) and gen[-2:] == [(25, 0), (0, -1)] and len(gen) == 40
    inv = S.inversion_pairs(S.timestep_grid(40))
    assert inv[0] == (0, 25) and inv[-1] == (973, 999) and len(inv) == 39


@pytest.mark.parametrize("bad", [1, 0, -3, 2.5, True, 1001])
def test_bad_grid_sizes(bad):
    with pytest.raises(InputError):
        S.timestep_grid(bad)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_update_equals_diffusers_step(eta):
    sched = diffusers_ddim()
    sched.set_timesteps(10)
    alphas = S.alphas_cumprod()
    # ᾱ itself is compared in test_alphas_match_spec_and_diffusers (diffusers builds β in float32, we in float64
    # like the official code); here the update equations are compared on identical ᾱ.
    sched.alphas_cumprod = alphas.clone()
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 4, 4, generator=gen)
    for t in sched.timesteps.tolist():
        eps = torch.randn(x.shape, generator=gen)
        noise = torch.randn(x.shape, generator=gen)
        ref = sched.step(eps, t, x, eta=eta, variance_noise=noise if eta > 0 else None)
        t_next = t - 100 if t - 100 >= 0 else -1
        ours, x0 = S.ddim_update(x, eps, eps, S.alpha_bar(alphas, t), S.alpha_bar(alphas, t_next), eta, noise)
        assert (ours - ref.prev_sample).abs().max() < 1e-5
        # P_t is ~1/√ᾱ_t larger than x_t at t≈900 (values ~100): compare relative to its magnitude.
        assert torch.allclose(x0, ref.pred_original_sample, rtol=1e-6, atol=1e-5)
        x = ours


def test_sigma_is_zero_into_t_minus_one_and_eta_needs_noise():
    alphas = S.alphas_cumprod()
    assert S.ddim_sigma(S.alpha_bar(alphas, 0), S.alpha_bar(alphas, -1), 1.0).item() == 0.0
    x = torch.zeros(1, 3, 2, 2)
    with pytest.raises(InputError, match="noise"):
        S.ddim_update(x, x, x, alphas[10], alphas[5], eta=1.0)
    with pytest.raises(InputError, match="outside"):
        S.alpha_bar(alphas, 1000)
