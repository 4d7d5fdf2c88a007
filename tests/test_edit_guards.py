"""asyrp.edit refuses non-finite values and meaningless intervals instead of editing nothing (docs/cache.md is
about caches; these rules are in asyrp_bench/asyrp.py's docstrings)."""

from __future__ import annotations

import math

import pytest
import torch

import asyrp_bench as ab
from asyrp_bench.errors import ConfigError, InputError
from tests.toys import ToyBackend


@pytest.fixture()
def setup():
    torch.manual_seed(0)
    backend = ToyBackend()
    editor = ab.build_editor("additive", backend.h_shape, backend.temb_dim)
    for p in editor.parameters():  # zero-initialised layers randomised so the edit is not a no-op
        torch.nn.init.normal_(p, std=0.1)
    x_T = torch.randn(2, 3, backend.image_size, backend.image_size)
    return backend, editor, x_T


def test_valid_edit_changes_the_image(setup):
    backend, editor, x_T = setup
    edited = ab.edit(backend, x_T, editor, 500, 200, 6)
    assert torch.isfinite(edited).all() and not torch.allclose(edited, ab.generate(backend, x_T, 6))


@pytest.mark.parametrize("strength", [math.nan, math.inf])
def test_non_finite_strength(setup, strength):
    backend, editor, x_T = setup
    with pytest.raises(InputError, match="strength must be a finite number"):
        ab.edit(backend, x_T, editor, 500, None, 6, strength=strength)
    with pytest.raises(InputError, match="coefficient 0 must be a finite"):
        ab.edit(backend, x_T, [(editor, strength)], 500, None, 6)


def test_nan_editor_weights_name_step_image_component(setup):
    backend, editor, x_T = setup
    with torch.no_grad():
        next(editor.parameters()).fill_(math.nan)
    with pytest.raises(InputError, match=r"editor output Δh at step t=999, image\(s\) \[0, 1\]"):
        ab.edit(backend, x_T, editor, 500, None, 6)


def test_nan_in_model_output(setup, monkeypatch):
    backend, _, x_T = setup
    real = type(backend).decode

    def poisoned(self, bottleneck, h=None):
        out = real(self, bottleneck, h)
        out[1, 0, 0, 0] = math.inf
        return out

    monkeypatch.setattr(type(backend), "decode", poisoned)
    with pytest.raises(InputError, match=r"backend's noise prediction at step t=999, image\(s\) \[1\]"):
        ab.generate(backend, x_T, 6)


@pytest.mark.parametrize(("t_edit", "t_boost", "n_train", "match"), [
    (5000, None, None, "t_edit must be an integer timestep in 0..999"),
    (-1, None, None, "t_edit must be"),
    (500, 500, None, r"t_boost \(500\) must be below t_edit \(500\)"),
    (500, 700, None, "must be below t_edit"),
    (500, 2000, None, "t_boost must be an integer timestep"),
    (500, None, 0, "n_train_step must be an integer ≥ 1, got 0"),
])
def test_bad_interval_is_an_error(setup, t_edit, t_boost, n_train, match):
    backend, editor, x_T = setup
    with pytest.raises(ConfigError, match=match):
        ab.edit(backend, x_T, editor, t_edit, t_boost, 6, n_train_step=n_train)


def test_bad_t_edit_in_editor_metadata(setup):
    backend, editor, x_T = setup
    editor.metadata = {"t_edit": 5000}
    with pytest.raises(ConfigError, match="t_edit must be an integer timestep"):
        ab.edit(backend, x_T, editor, None, None, 6)
