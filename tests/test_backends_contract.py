"""The encode/decode contract on every backend: split = forward, Δh reaches ε, gradients, batch invariance,
input validation and the weights hash (DESIGN §4)."""

from __future__ import annotations

import pytest
import torch

from asyrp_bench.diffusion.backends import load_backend
from asyrp_bench.diffusion.backends.base import state_dict_hash
from asyrp_bench.errors import InputError
from tests.backend_files import SMALL_DDPM, random_ddpm_state_dict, save_unet_folder


@pytest.fixture(scope="module", params=["tiny", "ddpm", "diffusers", "diffusers_learn_sigma"])
def backend(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    if request.param == "tiny":
        return load_backend("tiny", config="tiny16")
    if request.param == "ddpm":
        torch.save(random_ddpm_state_dict(SMALL_DDPM, seed=1), folder / "model.ckpt")
        return load_backend("ddpm", weights=str(folder / "model.ckpt"), config=SMALL_DDPM)
    extra = {"out_channels": 6} if request.param == "diffusers_learn_sigma" else {}
    save_unet_folder(folder / "unet", seed=2, **extra)
    return load_backend("diffusers", weights=str(folder / "unet"))


def _x(backend, batch: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, backend.in_channels, backend.image_size, backend.image_size, generator=generator)


def test_decode_of_encode_is_the_forward_pass_and_shapes_follow_the_contract(backend):
    x, t = _x(backend, 3), torch.tensor([0, 480, 999])
    bottleneck = backend.encode(x, t)
    assert bottleneck.h.shape == (3, *backend.h_shape)
    assert bottleneck.temb.shape == (3, backend.temb_dim)
    assert bottleneck.t.dtype == torch.long and bottleneck.t.tolist() == [0, 480, 999]
    eps = backend.decode(bottleneck)
    assert eps.shape == x.shape
    assert torch.equal(eps, backend(x, t))
    assert torch.equal(eps, backend.decode(bottleneck, bottleneck.h))  # decoding twice is deterministic
    assert eps.abs().max() > 0 and torch.isfinite(eps).all()


def test_delta_h_changes_eps_and_only_through_the_decoder(backend):
    x = _x(backend, 2)
    bottleneck = backend.encode(x, 600)
    delta = 0.5 * torch.randn(bottleneck.h.shape, generator=torch.Generator().manual_seed(3))
    eps, eps_tilde = backend.decode(bottleneck), backend.decode(bottleneck, bottleneck.h + delta)
    assert (eps_tilde - eps).abs().max() > 1e-3 * eps.abs().max()
    assert torch.equal(backend.decode(bottleneck), eps)  # the bottleneck itself was not modified


def test_gradients_reach_h_while_parameters_stay_frozen(backend):
    bottleneck = backend.encode(_x(backend, 2), 700)
    delta = torch.zeros_like(bottleneck.h, requires_grad=True)
    backend.decode(bottleneck, bottleneck.h + delta).square().mean().backward()
    assert delta.grad is not None and delta.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in backend.parameters())
    assert not backend.training
    backend.train()
    assert not backend.training  # a frozen backend never leaves eval mode


def test_batch_invariance_per_image(backend):
    x, t = _x(backend, 4, seed=5), torch.tensor([10, 250, 500, 990])
    batched = backend(x, t)
    singles = torch.cat([backend(x[i : i + 1], t[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(batched, singles, atol=1e-5, rtol=0)
    # A scalar t broadcasts like a tensor of B equal values.
    torch.testing.assert_close(backend(x, 300), backend(x, torch.full((4,), 300)), atol=0, rtol=0)


def test_timesteps_matter(backend):
    x = _x(backend, 2)
    assert not torch.allclose(backend(x, 100), backend(x, 900))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda b: (torch.zeros(1, b.in_channels, b.image_size + 2, b.image_size), 5), "expects x_t of shape"),
        (lambda b: (torch.zeros(1, b.in_channels + 1, b.image_size, b.image_size), 5), "expects x_t of shape"),
        (lambda b: (torch.zeros(b.in_channels, b.image_size, b.image_size), 5), "expects x_t of shape"),
        (lambda b: (torch.zeros(2, b.in_channels, b.image_size, b.image_size), -1), r"t must lie in \[0, 999\]"),
        (lambda b: (torch.zeros(2, b.in_channels, b.image_size, b.image_size), 1000), r"t must lie in \[0, 999\]"),
        (lambda b: (torch.zeros(2, b.in_channels, b.image_size, b.image_size), torch.tensor([1, 2, 3])),
         "length 1 or 2"),
        (lambda b: (torch.zeros(2, b.in_channels, b.image_size, b.image_size), torch.tensor([1.5, 2.0])),
         "integer timesteps"),
        (lambda b: (torch.zeros(2, b.in_channels, b.image_size, b.image_size), 3.0), "must be an int"),
        (lambda b: ([[0.0]], 3), "must be a torch.Tensor"),
        (lambda b: (torch.zeros(1, b.in_channels, b.image_size, b.image_size, dtype=torch.float64), 3),
         r"x_t is torch.float64 on cpu but the \w+ backend is torch.float32 on cpu"),
        (lambda b: (torch.zeros(1, b.in_channels, b.image_size, b.image_size, dtype=torch.uint8), 3),
         "floating-point"),
    ],
)
def test_bad_inputs_raise_input_error(backend, make, message):
    x, t = make(backend)
    with pytest.raises(InputError, match=message):
        backend.encode(x, t)


def test_h_of_the_wrong_shape_is_rejected(backend):
    bottleneck = backend.encode(_x(backend, 2), 10)
    with pytest.raises(InputError, match="h has shape"):
        backend.decode(bottleneck, bottleneck.h[:1])


def test_weights_hash_is_stable_and_tracks_the_weights(backend):
    first = backend.weights_hash
    assert len(first) == 64 and backend.weights_hash == first
    assert backend.describe()["weights_hash"] == first
    state = {k: v.clone() for k, v in backend.state_dict().items()}
    assert state_dict_hash(state) == first
    key = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)
    state[key].view(-1)[0] += 1e-3
    assert state_dict_hash(state) != first
