"""The tiny backend: seeded, deterministic, the real ddpm code path, and invertible with DDIM."""

from __future__ import annotations

import itertools

import pytest
import torch

from asyrp_bench.diffusion import schedule
from asyrp_bench.diffusion.backends import load_backend
from asyrp_bench.diffusion.backends.ddpm import DDPMBackend
from asyrp_bench.diffusion.backends.tiny import TinyBackend
from asyrp_bench.errors import ConfigError


def test_tiny_is_the_ddpm_architecture_with_expected_shapes():
    tiny = load_backend("tiny")
    assert isinstance(tiny, DDPMBackend)
    assert (tiny.image_size, tiny.in_channels, tiny.h_shape, tiny.temb_dim) == (32, 3, (32, 8, 8), 64)
    assert "down.1.attn.0.q.weight" in tiny.state_dict()  # attention at 16 px exercises AttnBlock
    assert "down.0.downsample.conv.weight" in tiny.state_dict()
    small = load_backend("tiny", config="tiny16")
    assert (small.image_size, small.h_shape) == (16, (32, 8, 8))
    bottleneck = small.encode(torch.zeros(2, 3, 16, 16), 10)
    assert bottleneck.h.shape == (2, 32, 8, 8) and bottleneck.temb.shape == (2, 64)


def test_seeded_weights_are_deterministic_and_leave_the_global_rng_alone():
    state = torch.random.get_rng_state()
    a, b = load_backend("tiny", config="tiny16"), load_backend("tiny", config="tiny16")
    assert torch.equal(torch.random.get_rng_state(), state)
    assert a.weights_hash == b.weights_hash
    other = load_backend("tiny", config={**TinyBackend.presets["tiny16"], "seed": 1})
    assert other.weights_hash != a.weights_hash
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(a(x, 500), b(x, 500))
    assert not torch.allclose(a(x, 500), other(x, 500))


def test_dict_config_overrides_the_tiny_preset_and_rejects_unknown_keys():
    tiny = load_backend("tiny", config={"seed": 3, "ch": 32})
    assert tiny.h_shape == (64, 8, 8) and tiny.image_size == 32
    with pytest.raises(ConfigError, match=r"unknown key.*'chanels'"):
        load_backend("tiny", config={"chanels": 8})
    with pytest.raises(ConfigError, match="presets: tiny, tiny16"):
        load_backend("tiny", config="tiny64")
    with pytest.raises(ConfigError, match="divisible by num_groups"):
        load_backend("tiny", config={"ch": 12})


def test_saved_tiny_weights_reload_through_load_backend(tmp_path):
    tiny = load_backend("tiny", config={**TinyBackend.presets["tiny16"], "seed": 5})
    path = tmp_path / "tiny.pt"
    torch.save(tiny.state_dict(), path)
    again = load_backend("tiny", weights=str(path), config="tiny16")
    assert again.weights_hash == tiny.weights_hash
    x = torch.randn(3, 3, 16, 16)
    assert torch.equal(again(x, 250), tiny(x, 250))


def _round_trip_error(backend, x0: torch.Tensor, n_steps: int) -> float:
    """η=0 DDIM inversion 0 -> 999 (model at the lower t, spec §1.3), then regeneration 999 -> P_0."""
    alphas = schedule.alphas_cumprod()
    grid = schedule.timestep_grid(n_steps)
    x = x0
    with torch.no_grad():
        for t, t_next in schedule.inversion_pairs(grid):
            eps = backend(x, t)
            x, _ = schedule.ddim_update(x, eps, eps, schedule.alpha_bar(alphas, t), schedule.alpha_bar(alphas, t_next))
        for t, t_next in schedule.generation_pairs(grid):
            eps = backend(x, t)
            x, _ = schedule.ddim_update(x, eps, eps, schedule.alpha_bar(alphas, t), schedule.alpha_bar(alphas, t_next))
    return (x - x0).abs().mean().item()


def test_ddim_inversion_then_regeneration_reconstructs_better_with_more_steps():
    tiny = load_backend("tiny", config="tiny16")
    x0 = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    errors = [_round_trip_error(tiny, x0, n) for n in (5, 10, 20, 40)]
    assert all(later < 0.75 * earlier for earlier, later in itertools.pairwise(errors)), errors
    assert errors[-1] < 0.08, errors
    # Not trivially exact: the random ε is not constant, so the round trip does lose something.
    assert errors[0] > 0.1, errors
