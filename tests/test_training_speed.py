"""Training on the fast path: gradient checkpointing gives the same gradients; precision reaches the step."""

from __future__ import annotations

import pytest
import torch

import asyrp_bench as ab
from asyrp_bench.editors.additive import AdditiveEditor
from asyrp_bench.errors import ConfigError
from asyrp_bench.training import default_checkpoint, paired_step


@pytest.fixture(scope="module")
def backend():
    return ab.load_backend("tiny", config="tiny16")


def editor_for(backend, seed: int = 0) -> AdditiveEditor:
    torch.manual_seed(seed)
    editor = AdditiveEditor(backend.h_shape, backend.temb_dim, zero_init=False)
    with torch.no_grad():
        for p in editor.parameters():
            p.normal_(0.0, 0.3)
    return editor


def grads(backend, editor, x_edit, x_ref, **options) -> list[torch.Tensor]:
    editor.zero_grad(set_to_none=True)
    _, p_edit, _, p_ref = paired_step(backend, editor, x_edit, x_ref, 700, 650, **options)
    ((p_edit - p_ref) ** 2).mean().backward()
    return [p.grad.clone() for p in editor.parameters()]


def test_checkpointing_gives_the_same_gradients(backend):
    size = backend.image_size
    gen = torch.Generator().manual_seed(2)
    x_edit, x_ref = torch.randn(2, 3, size, size, generator=gen), torch.randn(2, 3, size, size, generator=gen)
    editor = editor_for(backend)
    plain = grads(backend, editor, x_edit, x_ref)
    ckpt = grads(backend, editor, x_edit, x_ref, checkpoint=True)
    assert sum(float(g.abs().sum()) for g in plain) > 0  # gradients exist: equality is not vacuous
    for a, b in zip(plain, ckpt, strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7)


def test_checkpointing_on_the_shared_first_step(backend):
    size = backend.image_size
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(4))
    editor = editor_for(backend, seed=1)
    plain = grads(backend, editor, x, x)
    ckpt = grads(backend, editor, x, x, checkpoint=True)
    for a, b in zip(plain, ckpt, strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7)


def test_bf16_training_step_is_close(backend):
    size = backend.image_size
    gen = torch.Generator().manual_seed(6)
    x_edit, x_ref = torch.randn(2, 3, size, size, generator=gen), torch.randn(2, 3, size, size, generator=gen)
    editor = editor_for(backend, seed=2)
    ref = grads(backend, editor, x_edit, x_ref)
    low = grads(backend, editor, x_edit, x_ref, precision="bf16")
    num = sum(float((a - b).norm()) for a, b in zip(ref, low, strict=True))
    den = sum(float(a.norm()) for a in ref)
    assert 0 < num < 0.05 * den  # bf16 ran (not identical) and stays within 5 % of the gradient norm


def test_checkpoint_default_off_on_cpu(backend):
    assert default_checkpoint(backend) is False


def test_bad_precision_in_training(backend):
    size = backend.image_size
    x = torch.zeros(1, 3, size, size)
    with pytest.raises(ConfigError, match="precision"):
        paired_step(backend, editor_for(backend), x, x, 700, 650, precision="half")
