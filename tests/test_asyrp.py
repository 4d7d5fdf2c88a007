"""The Asyrp process: equivalence with diffusers' DDIM schedulers and the paper's equations, invariances."""

from __future__ import annotations

import itertools

import pytest
import torch
from diffusers import DDIMInverseScheduler, DDIMScheduler

import asyrp_bench as ab
from asyrp_bench.asyrp import delta_h, editor_terms, schedule_alphas
from asyrp_bench.diffusion.schedule import alpha_bar
from asyrp_bench.editors.additive import AdditiveEditor
from asyrp_bench.errors import ConfigError, InputError
from tests.toys import ToyBackend


@pytest.fixture
def backend() -> ToyBackend:
    return ToyBackend()


def images(n: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def editor_for(backend: ToyBackend, seed: int = 0, zero: bool = False) -> AdditiveEditor:
    torch.manual_seed(seed)
    return AdditiveEditor(backend.h_shape, backend.temb_dim, zero_init=zero)


def ddim_pair(n_steps: int = 10) -> tuple[DDIMScheduler, DDIMInverseScheduler]:
    kwargs = dict(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                  clip_sample=False, set_alpha_to_one=True, steps_offset=0)
    fwd, inv = DDIMScheduler(**kwargs), DDIMInverseScheduler(**kwargs)
    for sched in (fwd, inv):
        sched.set_timesteps(n_steps)
        sched.alphas_cumprod = schedule_alphas("cpu").clone()
    return fwd, inv


def test_generation_equals_diffusers_ddim(backend):
    # 10 steps over t0 = 900 give the uniform grid 0, 100, ..., 900 that diffusers' "leading" spacing uses.
    x_T = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    fwd, _ = ddim_pair()
    x = x_T
    for t in fwd.timesteps.tolist():
        x = fwd.step(backend(x, t), t, x).prev_sample
    ours = ab.generate(backend, x_T, n_steps=10, t0=900)
    assert (ours - x.clamp(-1, 1)).abs().max() < 1e-5


def test_inversion_equals_diffusers_inverse_ddim(backend):
    x0 = images()
    _, inv = ddim_pair()
    x = x0
    for t in inv.timesteps.tolist()[1:]:
        # Asyrp evaluates the model at the lower timestep of each pair (spec §1.3); diffusers' inverse step
        # moves from t - 100 to t, so hand it that ε.
        x = inv.step(backend(x, t - 100), t, x).prev_sample
    ours = ab.invert(backend, x0, n_steps=10, t0=900)
    assert (ours - x).abs().max() < 1e-5


def test_asymmetric_step_is_paper_eq_11(backend):
    x = torch.randn(2, 3, 8, 8)
    editor = editor_for(backend)
    t, t_next = 600, 550
    alphas = schedule_alphas("cpu")
    a_t, a_next = alpha_bar(alphas, t), alpha_bar(alphas, t_next)
    with torch.no_grad():
        bottleneck = backend.encode(x, t)
        eps = backend.decode(bottleneck)
        eps_tilde = backend.decode(bottleneck, bottleneck.h + 0.7 * editor(bottleneck.h, bottleneck.temb))
        x_next, x0_pred = ab.asyrp_step(backend, x, t, t_next, editor, strength=0.7)
    p_tilde = (x - (1 - a_t).sqrt() * eps_tilde) / a_t.sqrt()
    expected = a_next.sqrt() * p_tilde + (1 - a_next).sqrt() * eps
    assert torch.allclose(x0_pred, p_tilde, atol=1e-6) and torch.allclose(x_next, expected, atol=1e-6)
    # Δh reaches only P_t: the direction term is the plain step's.
    plain_next, plain_x0 = ab.asyrp_step(backend, x, t, t_next)
    direction_edit = x_next - a_next.sqrt() * x0_pred
    direction_plain = plain_next - a_next.sqrt() * plain_x0
    assert torch.allclose(direction_edit, direction_plain, atol=1e-6)
    assert (x0_pred - plain_x0).abs().max() > 1e-3  # and the edit does change P_t


def test_zero_delta_h_reproduces_plain_ddim_exactly(backend):
    x_T = torch.randn(3, 3, 8, 8)
    plain = ab.edit(backend, x_T, None, None, 200, n_steps=12, generator=ab.image_generators(0, range(3)))
    zero = ab.edit(backend, x_T, editor_for(backend, zero=True), 500, 200, n_steps=12,
                   generator=ab.image_generators(0, range(3)))
    assert torch.equal(plain, zero)


def test_encoder_once_per_step_and_no_second_decode_below_t_edit(backend):
    x_T = torch.randn(1, 3, 8, 8)
    n_steps, t_edit = 10, 500
    grid = ab.timestep_grid(n_steps)
    n_edited = sum(1 for t in grid if t >= t_edit)
    backend.n_encode = backend.n_decode = 0
    ab.edit(backend, x_T, editor_for(backend), t_edit, 0, n_steps)
    assert backend.n_encode == n_steps
    assert backend.n_decode == n_steps + n_edited


def test_batch_invariance_with_boosting_noise(backend):
    x_T = torch.randn(3, 3, 8, 8)
    editor = editor_for(backend)
    ids = ["a", "b", "c"]
    batch = ab.edit(backend, x_T, editor, 400, 300, 10, generator=ab.image_generators(7, ids))
    singles = torch.cat([
        ab.edit(backend, x_T[i : i + 1], editor, 400, 300, 10, generator=ab.image_generators(7, [ids[i]]))
        for i in range(3)
    ])
    assert (batch - singles).abs().max() < 1e-5
    # Boosting noise really is used (a different seed changes the output) and is reproducible.
    other = ab.edit(backend, x_T, editor, 400, 300, 10, generator=ab.image_generators(8, ids))
    again = ab.edit(backend, x_T, editor, 400, 300, 10, generator=ab.image_generators(7, ids))
    assert (batch - other).abs().max() > 1e-4 and torch.equal(batch, again)


def test_step_count_rescaling_of_delta_h(backend):
    x_T = torch.randn(2, 3, 8, 8)
    editor = editor_for(backend)
    scaled = ab.edit(backend, x_T, editor, 500, 0, n_steps=20, n_train_step=40)
    manual = ab.edit(backend, x_T, editor, 500, 0, n_steps=20, strength=2.0)
    assert torch.equal(scaled, manual)
    editor.metadata = {"n_train_step": 40, "t_edit": 500}
    from_metadata = ab.edit(backend, x_T, editor, None, 0, n_steps=20)
    assert torch.equal(from_metadata, manual)


def test_linear_combination_rule(backend):
    f1, f2 = editor_for(backend, 1), editor_for(backend, 2)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        b = backend.encode(x, 700)
        combined = delta_h(editor_terms([(f1, 1.0), (f2, 0.5)], strength=2.0), b)
        expected = (2.0 * 1.0 * f1(b.h, b.temb) + 2.0 * 0.5 * f2(b.h, b.temb)) / 2**0.5
    assert torch.allclose(combined, expected, atol=1e-6)


def test_multi_editor_t_edit_is_the_latest(backend):
    f1, f2 = editor_for(backend, 1), editor_for(backend, 2)
    f1.metadata, f2.metadata = {"t_edit": 400}, {"t_edit": 600}
    backend.n_decode = 0
    ab.edit(backend, torch.randn(1, 3, 8, 8), [(f1, 1.0), (f2, 1.0)], None, 0, 10)
    assert backend.n_decode == 10 + sum(1 for t in ab.timestep_grid(10) if t >= 600)


def test_bad_inputs(backend):
    x = torch.randn(1, 3, 8, 8)
    with pytest.raises(InputError, match="shape"):
        ab.invert(backend, torch.randn(1, 3, 16, 16), 10)
    with pytest.raises(InputError, match="shape"):
        ab.edit(backend, torch.randn(1, 1, 8, 8), None, None, None, 10)
    with pytest.raises(InputError, match=r"\[0, 999\]|outside"):
        ab.asyrp_step(backend, x, 1000, 900)
    with pytest.raises(InputError, match="t_next < t"):
        ab.asyrp_step(backend, x, 100, 200)
    with pytest.raises(InputError, match="generators"):
        ab.asyrp_step(backend, torch.randn(2, 3, 8, 8), 100, 50, eta=1.0, generator=ab.image_generators(0, [1]))
    with pytest.raises(ConfigError, match="t_edit"):
        ab.edit(backend, x, editor_for(backend), None, None, 10)
    with pytest.raises(InputError):
        backend.encode(x, torch.tensor([1, 2, 3]))
    with pytest.raises(InputError):
        backend.encode(x, torch.tensor([1.5]))
    with pytest.raises(InputError):
        backend.encode(x, -1)


def test_invert_then_generate_on_the_tiny_backend_improves_with_more_steps():
    tiny = ab.load_backend("tiny")
    x0 = torch.rand(2, 3, tiny.image_size, tiny.image_size, generator=torch.Generator().manual_seed(5)) * 1.6 - 0.8
    errors = [(ab.generate(tiny, ab.invert(tiny, x0, n), n) - x0).abs().mean().item() for n in (5, 10, 20, 40)]
    assert all(later < earlier for earlier, later in itertools.pairwise(errors)), errors
    assert errors[-1] < 0.5 * errors[0], errors


def test_edit_on_the_tiny_backend_is_batch_invariant_and_moves_images():
    tiny = ab.load_backend("tiny")
    torch.manual_seed(3)
    editor = AdditiveEditor(tiny.h_shape, tiny.temb_dim)
    x0 = torch.rand(3, 3, tiny.image_size, tiny.image_size, generator=torch.Generator().manual_seed(6)) * 1.6 - 0.8
    x_T = ab.invert(tiny, x0, 10)  # a random-weight U-Net saturates from pure noise; start from real latents
    ids = [10, 11, 12]
    batch = ab.edit(tiny, x_T, editor, 500, 200, 10, generator=ab.image_generators(1, ids))
    single = ab.edit(tiny, x_T[1:2], editor, 500, 200, 10, generator=ab.image_generators(1, ids[1:2]))
    plain = ab.edit(tiny, x_T, None, None, 200, 10, generator=ab.image_generators(1, ids))
    assert (batch[1:2] - single).abs().max() < 1e-4  # float32 kernels differ by batch size, over 10 steps
    assert (batch - plain).abs().mean() > 1e-3
