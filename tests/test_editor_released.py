"""The paper's DeltaBlock and the released Asyrp checkpoints (spec §3.1, §8.3)."""

from __future__ import annotations

import shutil

import pytest
import torch
from torch.nn import functional as F

import asyrp_bench as ab
from asyrp_bench import weights
from asyrp_bench.editors.additive import AdditiveEditor
from asyrp_bench.errors import CheckpointError, InputError

SMILING = "checkpoints/smiling_LC_CelebA_HQ_t999_ninv40_ngen40_0.pth"


def spec_delta_h(sd: dict[str, torch.Tensor], h: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
    """Spec §3.1 written out with functional ops."""
    a = F.conv2d(h, sd["conv1.weight"], sd["conv1.bias"])
    a = a + F.linear(F.silu(temb), sd["temb_proj.weight"], sd["temb_proj.bias"])[:, :, None, None]
    a = F.group_norm(a, 32, sd["norm2.weight"], sd["norm2.bias"], eps=1e-6)
    a = a * torch.sigmoid(a)
    return F.conv2d(a, sd["conv2.weight"], sd["conv2.bias"])


def test_released_smiling_gives_spec_delta_h(release_dir):
    path = release_dir / SMILING
    editor = ab.load_editor(path)
    assert isinstance(editor, AdditiveEditor) and editor.n_params() == 788_992
    assert editor.h_shape == (512, 8, 8) and editor.temb_dim == 512
    sd = torch.load(path, map_location="cpu", weights_only=True)["0"]
    gen = torch.Generator().manual_seed(0)
    h, temb = torch.randn(2, 512, 8, 8, generator=gen), torch.randn(2, 512, generator=gen)
    with torch.no_grad():
        ours = editor(h, temb)
    assert (ours - spec_delta_h(sd, h, temb)).abs().max() < 1e-5
    assert ours.abs().mean() > 1e-3


def test_released_files_match_their_checksums(release_dir):
    for attr in ("smiling", "sad", "tanned", "pixar", "neanderthal"):
        path = release_dir / f"checkpoints/{attr}_LC_CelebA_HQ_t999_ninv40_ngen40_0.pth"
        weights.verify(f"asyrp_{attr}", path)


def test_paper_parameter_count_and_default_init():
    editor = AdditiveEditor((512, 8, 8), 512)
    assert editor.n_params() == 788_992
    # PyTorch default init (spec §3.3): weight std ≈ 1/√(3·512) ≈ 0.0255, not zero.
    assert editor.conv2.weight.std().item() == pytest.approx(0.0255, rel=0.05)
    zero = AdditiveEditor((512, 8, 8), 512, zero_init=True)
    assert torch.count_nonzero(zero(torch.randn(1, 512, 8, 8), torch.randn(1, 512))) == 0


def test_missing_and_extra_keys_are_errors(release_dir, tmp_path):
    checkpoint = torch.load(release_dir / SMILING, map_location="cpu", weights_only=True)
    missing = dict(checkpoint, **{"0": {k: v for k, v in checkpoint["0"].items() if k != "norm2.bias"}})
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match=r"missing keys \['norm2.bias'\]"):
        ab.load_editor(tmp_path / "missing.pth")
    extra = dict(checkpoint, **{"0": dict(checkpoint["0"], **{"conv3.weight": torch.zeros(1)})})
    torch.save(extra, tmp_path / "extra.pth")
    with pytest.raises(CheckpointError, match=r"unexpected keys \['conv3.weight'\]"):
        ab.load_editor(tmp_path / "extra.pth")
    torch.save({"state_dict": checkpoint["0"]}, tmp_path / "nokey.pth")
    with pytest.raises(CheckpointError, match="key '0'"):
        ab.load_editor(tmp_path / "nokey.pth")


def test_non_checkpoint_files_are_errors(release_dir, tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        ab.load_editor(text)
    jpeg = tmp_path / "face.pth"
    shutil.copy(release_dir / "images/celeba/000121.jpg", jpeg)
    with pytest.raises(CheckpointError, match=r"face\.pth"):
        ab.load_editor(jpeg)
    with pytest.raises(CheckpointError, match="does not exist"):
        ab.load_editor(tmp_path / "absent.pth")


def test_editor_rejects_wrong_shapes():
    editor = AdditiveEditor((64, 4, 4), 32)
    with pytest.raises(InputError, match="h of shape"):
        editor(torch.randn(1, 32, 4, 4), torch.randn(1, 32))
    with pytest.raises(InputError, match="temb of shape"):
        editor(torch.randn(1, 64, 4, 4), torch.randn(1, 16))
