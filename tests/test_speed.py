"""The GPU fast path on CPU: one 2B decode equals two decodes; autocast precision; compile/options (issue 14)."""

from __future__ import annotations

import pytest
import torch

import asyrp_bench as ab
from asyrp_bench.asyrp import asyrp_step
from asyrp_bench.diffusion.backends.base import repeat_rows
from asyrp_bench.editors.additive import AdditiveEditor
from asyrp_bench.errors import ConfigError, InputError
from asyrp_bench.precision import autocast, default_precision, prepare_model, resolve_precision

# bf16 keeps 8 mantissa bits (relative step 2^-8 ≈ 0.4 %): documented in docs/performance.md.
BF16_REL_TOL = 0.05


@pytest.fixture(scope="module")
def backend():
    return ab.load_backend("tiny", config="tiny16")


def random_editor(backend, seed: int = 0) -> AdditiveEditor:
    # zero_init=False and a scaled-up output: Δh must be far from zero or ε = ε̃ holds vacuously.
    torch.manual_seed(seed)
    editor = AdditiveEditor(backend.h_shape, backend.temb_dim, zero_init=False)
    with torch.no_grad():
        for p in editor.parameters():
            p.normal_(0.0, 0.3)
    return editor


def latents(backend, n: int = 3, seed: int = 1) -> torch.Tensor:
    size = backend.image_size
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_decode_pair_equals_two_decodes(backend):
    x = latents(backend)
    editor = random_editor(backend)
    with torch.no_grad():
        bottleneck = backend.encode(x, 700)
        h_edit = bottleneck.h + editor(bottleneck.h, bottleneck.temb)
        eps_ref, tilde_ref = backend.decode(bottleneck), backend.decode(bottleneck, h_edit)
        eps, tilde = backend.decode_pair(bottleneck, h_edit)
    assert (tilde_ref - eps_ref).abs().max() > 1e-3  # the edit moves ε̃: the comparison is not vacuous
    assert (eps - eps_ref).abs().max() < 1e-6
    assert (tilde - tilde_ref).abs().max() < 1e-6


def test_batched_step_equals_unbatched(backend):
    x = latents(backend)
    editor = random_editor(backend, seed=3)
    with torch.no_grad():
        a = asyrp_step(backend, x, 800, 750, editor, batched=False)
        b = asyrp_step(backend, x, 800, 750, editor, batched=True)
        plain = asyrp_step(backend, x, 800, 750, None)
    assert (a[1] - plain[1]).abs().max() > 1e-3
    for left, right in zip(a, b, strict=True):
        # x0 = (x - √(1-ᾱ)ε)/√ᾱ amplifies ε's 1e-7 rounding by up to 1/√ᾱ: compare relative to the scale.
        assert (left - right).abs().max() < 1e-6 * left.abs().max()


def test_batched_edit_equals_unbatched(backend):
    x = latents(backend, n=2)
    editor = random_editor(backend, seed=5)
    with torch.no_grad():
        a = ab.edit(backend, x, editor, t_edit=500, t_boost=None, n_steps=8, batched=False)
        b = ab.edit(backend, x, editor, t_edit=500, t_boost=None, n_steps=8, batched=True)
    assert (a - b).abs().max() < 1e-5


def test_repeat_rows_keeps_non_batch_values(backend):
    x = latents(backend, n=2)
    with torch.no_grad():
        bottleneck = backend.encode(x, 10)
    bottleneck.extra["flag"] = 3
    doubled = repeat_rows(bottleneck, 2)
    assert doubled.h.shape[0] == 4 and doubled.extra["flag"] == 3
    assert all(s.shape[0] == 4 for s in doubled.skips)
    assert torch.equal(doubled.skips[0][:2], doubled.skips[0][2:])


def test_decode_pair_rejects_wrong_shape(backend):
    x = latents(backend, n=2)
    with torch.no_grad():
        bottleneck = backend.encode(x, 10)
    with pytest.raises(InputError, match="shape"):
        backend.decode_pair(bottleneck, bottleneck.h[:1])


def test_bf16_autocast_changes_edit_by_little(backend):
    x = latents(backend, n=2)
    editor = random_editor(backend, seed=7)
    with torch.no_grad():
        ref = ab.edit(backend, x, editor, t_edit=500, t_boost=None, n_steps=6, strength=100.0)
        low = ab.edit(backend, x, editor, t_edit=500, t_boost=None, n_steps=6, strength=100.0, precision="bf16")
        plain = ab.edit(backend, x, None, t_edit=None, t_boost=None, n_steps=6)
    assert low.dtype == torch.float32  # DDIM arithmetic and the output stay fp32
    edit_size = (ref - plain).abs().mean()
    diff = (low - ref).abs().mean()
    assert diff > 0  # bf16 really ran (else autocast was a no-op)
    assert diff < BF16_REL_TOL * edit_size


def test_unknown_precision_is_a_config_error(backend):
    with pytest.raises(ConfigError, match="precision"):
        ab.edit(backend, latents(backend, 1), None, None, None, 4, precision="fp8")
    with pytest.raises(ConfigError, match="precision"), autocast("cpu", "int8"):
        pass


def test_default_precision_is_fp32_on_cpu():
    assert default_precision("cpu") == "fp32"
    assert resolve_precision(None, "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"


def test_channels_last_keeps_numbers():
    model = ab.load_backend("tiny", config="tiny16")
    x = latents(model, n=2)
    with torch.no_grad():
        ref = model(x, 300)
        prepare_model(model, channels_last=True)
        out = model(x.contiguous(memory_format=torch.channels_last), 300)
    assert (out - ref).abs().max() < 1e-5


def test_cli_speed_options_resolve_and_reject():
    from asyrp_bench.cli._common import speed_options

    net = ab.load_backend("tiny", config="tiny16")
    assert speed_options(net, "auto", False, True, False) == "fp32"
    assert speed_options(net, "bf16", False, False, False) == "bf16"
    assert torch.backends.cudnn.benchmark is False
    with pytest.raises(ConfigError, match="precision"):
        speed_options(net, "double", False, False, False)
