"""BiSeNet (SC), ArcFace IR-SE50 (ID) and LPIPS against independent references, on the five real release faces.

The references here are functional forwards over the saved state dict (no nn.Module), written from the layouts in
docs/metrics.md; the harness's modules are nn.Modules loaded strictly from files saved as the released ones are.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from asyrp_bench.errors import CheckpointError, ConfigError
from asyrp_bench.metrics import ScoringInputs, build_metric, score, summary_frame
from asyrp_bench.metrics.bisenet import load_bisenet
from asyrp_bench.metrics.irse50 import load_irse50
from tests._metric_models import (
    ensure_test_embedder,
    save_bisenet_format,
    save_irse50_format,
    save_torchvision_alexnet,
)

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def faces(release_dir_module: Path) -> tuple[list[str], torch.Tensor]:
    from asyrp_bench.images import load_folder, resize_uint8

    ids, images, _ = load_folder(release_dir_module / "images" / "celeba")
    return ids, torch.stack([resize_uint8(x, (256, 256)) for x in images])


@pytest.fixture(scope="module")
def release_dir_module() -> Path:
    from tests.conftest import RELEASE_DIR

    if not (RELEASE_DIR / "images" / "celeba").is_dir():
        pytest.skip(f"release images not found under {RELEASE_DIR}")
    return RELEASE_DIR


def edited(faces: torch.Tensor) -> torch.Tensor:
    """A deterministic 'edit': brighter, shifted, with a dark band (changes labels on part of each face)."""
    x = faces.float()
    x = torch.roll(x * 1.15 + 10, shifts=(6, -4), dims=(2, 3))
    x[:, :, 150:190] *= 0.4
    return x.clamp(0, 255).round().to(torch.uint8)


# -- independent references -----------------------------------------------------------------------------------


def _bn(sd: dict, p: str, x: torch.Tensor) -> torch.Tensor:
    return F.batch_norm(x, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"], sd[f"{p}.bias"],
                        training=False, eps=1e-5)


def _cbr(sd: dict, p: str, x: torch.Tensor) -> torch.Tensor:
    w = sd[f"{p}.conv.weight"]
    return F.relu(_bn(sd, f"{p}.bn", F.conv2d(x, w, padding=w.shape[-1] // 2)))


def ref_bisenet(sd: dict, x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2:]
    y = F.relu(_bn(sd, "cp.resnet.bn1", F.conv2d(x, sd["cp.resnet.conv1.weight"], stride=2, padding=3)))
    y = F.max_pool2d(y, 3, 2, 1)
    feats = []
    for layer in range(1, 5):
        for block in range(2):
            p = f"cp.resnet.layer{layer}.{block}"
            stride = 2 if block == 0 and layer > 1 else 1
            out = F.relu(_bn(sd, f"{p}.bn1", F.conv2d(y, sd[f"{p}.conv1.weight"], stride=stride, padding=1)))
            out = _bn(sd, f"{p}.bn2", F.conv2d(out, sd[f"{p}.conv2.weight"], padding=1))
            short = y
            if f"{p}.downsample.0.weight" in sd:
                short = _bn(sd, f"{p}.downsample.1", F.conv2d(y, sd[f"{p}.downsample.0.weight"], stride=stride))
            y = F.relu(out + short)
        feats.append(y)
    feat8, feat16, feat32 = feats[1:]

    def arm(p: str, z: torch.Tensor) -> torch.Tensor:
        f = _cbr(sd, f"{p}.conv", z)
        a = F.adaptive_avg_pool2d(f, 1)
        return f * torch.sigmoid(_bn(sd, f"{p}.bn_atten", F.conv2d(a, sd[f"{p}.conv_atten.weight"])))

    avg = _cbr(sd, "cp.conv_avg", F.adaptive_avg_pool2d(feat32, 1))
    avg_up = F.interpolate(avg, size=feat32.shape[-2:], mode="nearest")
    up32 = _cbr(sd, "cp.conv_head32", F.interpolate(arm("cp.arm32", feat32) + avg_up, size=feat16.shape[-2:]))
    up16 = _cbr(sd, "cp.conv_head16", F.interpolate(arm("cp.arm16", feat16) + up32, size=feat8.shape[-2:]))
    fused = _cbr(sd, "ffm.convblk", torch.cat([feat8, up16], 1))
    att = torch.sigmoid(F.conv2d(F.relu(F.conv2d(F.adaptive_avg_pool2d(fused, 1), sd["ffm.conv1.weight"])),
                                 sd["ffm.conv2.weight"]))
    fused = fused + fused * att
    logits = F.conv2d(_cbr(sd, "conv_out.conv", fused), sd["conv_out.conv_out.weight"])
    return F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=True)


def _prelu(sd: dict, p: str, x: torch.Tensor) -> torch.Tensor:
    return F.prelu(x, sd[f"{p}.weight"])


def ref_irse50(sd: dict, x: torch.Tensor) -> torch.Tensor:
    y = _prelu(sd, "input_layer.2", _bn(sd, "input_layer.1", F.conv2d(x, sd["input_layer.0.weight"], padding=1)))
    i = 0
    while f"body.{i}.res_layer.1.weight" in sd:
        p = f"body.{i}"
        cin = sd[f"{p}.res_layer.1.weight"].shape[1]
        depth = sd[f"{p}.res_layer.1.weight"].shape[0]
        first_of_stage = i in (0, 3, 7, 21)
        stride = 2 if first_of_stage else 1
        r = _bn(sd, f"{p}.res_layer.0", y)
        r = _prelu(sd, f"{p}.res_layer.2", F.conv2d(r, sd[f"{p}.res_layer.1.weight"], padding=1))
        r = _bn(sd, f"{p}.res_layer.4", F.conv2d(r, sd[f"{p}.res_layer.3.weight"], stride=stride, padding=1))
        s = F.relu(F.conv2d(F.adaptive_avg_pool2d(r, 1), sd[f"{p}.res_layer.5.fc1.weight"]))
        r = r * torch.sigmoid(F.conv2d(s, sd[f"{p}.res_layer.5.fc2.weight"]))
        if cin == depth:
            short = F.max_pool2d(y, 1, stride)
        else:
            short = _bn(sd, f"{p}.shortcut_layer.1", F.conv2d(y, sd[f"{p}.shortcut_layer.0.weight"], stride=stride))
        y = r + short
        i += 1
    assert i == 24
    y = _bn(sd, "output_layer.0", y).reshape(y.shape[0], -1)
    y = F.linear(y, sd["output_layer.3.weight"], sd["output_layer.3.bias"])
    y = _bn(sd, "output_layer.4", y)
    return y / y.norm(dim=1, keepdim=True)


def arcface_crop(images: torch.Tensor) -> torch.Tensor:
    """uint8 256 px -> the IDLoss input (by hand: [-1,1], rows 35:223, cols 32:220, pool to 112)."""
    x = images.float() / 127.5 - 1
    return F.adaptive_avg_pool2d(x[:, :, 35:223, 32:220], 112)


# -- model files ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bisenet_file(faces, tmp_path_factory) -> Path:
    _, x = faces
    calibration = torch.cat([x, edited(x)]).float() / 255  # the 'asyrp' preprocessing: ToTensor only
    return save_bisenet_format(tmp_path_factory.mktemp("bisenet") / "79999_iter.pth", calibration)


@pytest.fixture(scope="module")
def irse50_file(faces, tmp_path_factory) -> Path:
    _, x = faces
    return save_irse50_format(tmp_path_factory.mktemp("irse") / "model_ir_se50.pth",
                              arcface_crop(torch.cat([x, edited(x)])))


def test_bisenet_equals_reference_and_is_discriminative(faces, bisenet_file: Path):
    _, x = faces
    sd = torch.load(bisenet_file, weights_only=True)
    assert len(sd) == 191 and "cp.resnet.layer4.0.downsample.0.weight" in sd
    net = load_bisenet(bisenet_file)
    inputs = x.float() / 255
    with torch.no_grad():
        ours, ref = net(inputs), ref_bisenet(sd, inputs)
    assert ours.shape == (5, 19, 256, 256)
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-4)
    labels = ours.argmax(1)
    assert all(len(m.unique()) >= 3 for m in labels)  # several classes per face
    assert (labels[0] != labels[1]).float().mean() > 0.05  # different faces, different maps


def test_sc_bisenet_equals_hand_computation(faces, bisenet_file: Path):
    ids, x = faces
    edits = edited(x)
    sd = torch.load(bisenet_file, weights_only=True)
    inputs = ScoringInputs(ids, x, edits, x.clone())
    spec = {"name": "seg_consistency", "params": {"segmenter": str(bisenet_file)}}
    records = score(inputs, [spec])
    with torch.no_grad():
        ref_maps = ref_bisenet(sd, x.float() / 255).argmax(1)
        edit_maps = ref_bisenet(sd, edits.float() / 255).argmax(1)
    expected = (ref_maps == edit_maps).double().mean(dim=(1, 2))
    got = torch.tensor([r.value for r in records if r.key == "pixel_accuracy"], dtype=torch.float64)
    torch.testing.assert_close(got, expected, atol=2e-4, rtol=0)
    assert got.min() > 0.05 and got.max() < 0.999
    params = build_metric(spec).params
    assert params["architecture"] == "bisenet" and params["preprocess"] == "asyrp"
    assert params["classes"][:2] == ["background", "skin"] and len(params["classes"]) == 19


def test_sc_bisenet_face_parsing_preprocess(faces, bisenet_file: Path):
    ids, x = faces
    ids, x = ids[:2], x[:2]
    edits = edited(x)
    sd = torch.load(bisenet_file, weights_only=True)
    spec = {"name": "seg_consistency", "params": {"segmenter": str(bisenet_file), "preprocess": "face_parsing",
                                                  "reference": "source"}}
    records = score(ScoringInputs(ids, x, edits), [spec])

    def maps(images: torch.Tensor) -> torch.Tensor:
        big = F.interpolate(images.float() / 255, size=(512, 512), mode="bilinear", align_corners=False)
        labels = ref_bisenet(sd, (big - IMAGENET_MEAN) / IMAGENET_STD).argmax(1)
        return F.interpolate(labels[:, None].float(), size=(256, 256), mode="nearest")[:, 0]

    with torch.no_grad():
        expected = (maps(x) == maps(edits)).double().mean(dim=(1, 2))
    got = torch.tensor([r.value for r in records if r.key == "pixel_accuracy"], dtype=torch.float64)
    torch.testing.assert_close(got, expected, atol=2e-4, rtol=0)


def test_irse50_equals_reference_and_id_is_hand_computation(faces, irse50_file: Path):
    ids, x = faces
    edits = edited(x)
    sd = torch.load(irse50_file, weights_only=True)
    assert len(sd) == 397
    net = load_irse50(irse50_file)
    with torch.no_grad():
        ours, ref = net(arcface_crop(x)), ref_irse50(sd, arcface_crop(x))
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-4)
    cross = ours @ ours.T
    assert cross[~torch.eye(5, dtype=torch.bool)].max() < 0.99  # different faces, different embeddings
    spec = {"name": "identity", "params": {"embedder": "arcface_irse50", "weights": str(irse50_file)}}
    records = score(ScoringInputs(ids, x, edits), [spec])
    with torch.no_grad():
        expected = (ref_irse50(sd, arcface_crop(x)) * ref_irse50(sd, arcface_crop(edits))).sum(1).double()
    got = torch.tensor([r.value for r in records if r.key == "cosine"], dtype=torch.float64)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)
    assert got.max() < 0.999
    assert [r.value for r in records if r.key == "no_face"] == [0.0] * 5
    assert "aligned faces assumed" in build_metric(spec).params["face_detector"]


def test_arcface_512_px_is_pooled_to_256_first(faces, irse50_file: Path):
    from asyrp_bench.images import resize_uint8

    ids, x = faces
    big = torch.stack([resize_uint8(im, (512, 512)) for im in x[:3]])
    big_edit = torch.stack([resize_uint8(im, (512, 512)) for im in edited(x[:3])])
    sd = torch.load(irse50_file, weights_only=True)
    spec = {"name": "identity", "params": {"embedder": "arcface_irse50", "weights": str(irse50_file)}}
    got = torch.tensor([r.value for r in score(ScoringInputs(ids[:3], big, big_edit), [spec]) if r.key == "cosine"])

    def documented(images: torch.Tensor) -> torch.Tensor:
        x256 = F.adaptive_avg_pool2d(images.float() / 127.5 - 1, (256, 256))
        return ref_irse50(sd, F.adaptive_avg_pool2d(x256[:, :, 35:223, 32:220], 112))

    def naive(images: torch.Tensor) -> torch.Tensor:  # the 256 px crop applied to a 512 px image: wrong region
        return ref_irse50(sd, F.adaptive_avg_pool2d(images.float()[:, :, 35:223, 32:220] / 127.5 - 1, 112))

    with torch.no_grad():
        expected = (documented(big) * documented(big_edit)).sum(1)
        wrong = (naive(big) * naive(big_edit)).sum(1)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)
    assert (got - wrong).abs().max() > 1e-3


def test_bad_files_name_the_keys(faces, bisenet_file: Path, irse50_file: Path, tmp_path: Path):
    sd = torch.load(bisenet_file, weights_only=True)
    no_tracked = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    torch.save(no_tracked, tmp_path / "old.pth")
    load_bisenet(tmp_path / "old.pth")  # num_batches_tracked is optional
    missing = dict(sd)
    del missing["ffm.conv1.weight"]
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match=r"missing keys: ffm\.conv1\.weight"):
        load_bisenet(tmp_path / "missing.pth")
    torch.save({**sd, "head.extra": torch.zeros(1)}, tmp_path / "extra.pth")
    with pytest.raises(CheckpointError, match=r"unexpected keys: head\.extra"):
        load_bisenet(tmp_path / "extra.pth")
    torch.save({**sd, "conv_out.conv_out.weight": torch.zeros(18, 256, 1, 1)}, tmp_path / "shape.pth")
    with pytest.raises(CheckpointError, match=r"conv_out\.conv_out\.weight \(18, 256, 1, 1\)"):
        load_bisenet(tmp_path / "shape.pth")
    with pytest.raises(CheckpointError, match="looks like an ArcFace IR-SE50"):
        load_bisenet(irse50_file)
    with pytest.raises(CheckpointError, match="looks like a BiSeNet"):
        load_irse50(bisenet_file)
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match=r"junk\.pth"):
        load_irse50(tmp_path / "junk.pth")
    with pytest.raises(ConfigError, match="preprocess applies to architecture bisenet"):
        build_metric({"name": "seg_consistency", "params": {"segmenter": "some/folder", "preprocess": "asyrp"}})


# -- lpips --------------------------------------------------------------------------------------------------------


def test_lpips_equals_reference_package(faces, tmp_path: Path):
    import lpips

    ids, x = faces
    x = x[:3]
    edits = edited(x)
    backbone = save_torchvision_alexnet(Path(torch.hub.get_dir()) / "checkpoints" / "alexnet-owt-7be5be79.pth")
    records = score(ScoringInputs(ids[:3], x, edits), ["lpips"])  # weights: null -> lpips_alexnet in the hub cache
    reference = lpips.LPIPS(net="alex", verbose=False).eval()  # loads the same file from the hub cache
    with torch.no_grad():
        expected = reference(x.float() / 127.5 - 1, edits.float() / 127.5 - 1).flatten().double()
    got = torch.tensor([r.value for r in records if r.key == "distance"], dtype=torch.float64)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert got.min() > 1e-3
    same = score(ScoringInputs(ids[:3], x, x.clone()), [{"name": "lpips", "params": {"weights": str(backbone)}}])
    assert [r.value for r in same] == [0.0, 0.0, 0.0]
    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, bad)
    with pytest.raises(CheckpointError, match="torchvision backbone"):
        score(ScoringInputs(ids[:3], x, edits), [{"name": "lpips", "params": {"weights": str(bad)}}])


# -- labels ---------------------------------------------------------------------------------------------------


def test_labelled_entries_give_two_sets_and_duplicates_are_refused(faces, irse50_file: Path, tmp_path: Path):
    from asyrp_bench.metrics import load_metrics_file

    ids, x = faces
    embedder = ensure_test_embedder()
    specs = [{"name": "identity", "label": "id_test", "params": {"embedder": embedder}},
             {"name": "identity", "label": "id_arcface",
              "params": {"embedder": "arcface_irse50", "weights": str(irse50_file)}}]
    records = score(ScoringInputs(ids, x, edited(x)), specs)
    assert {r.metric for r in records} == {"id_test", "id_arcface"}
    assert all(r.metric_name == "identity" for r in records)
    summary = summary_frame(records)
    assert set(summary[summary.key == "cosine"].metric) == {"id_test", "id_arcface"}
    assert summary[summary.key == "cosine"].higher_is_better.all()
    path = tmp_path / "metrics.yaml"
    path.write_text("metrics:\n  - {name: identity}\n  - {name: identity, params: {embedder: arcface_irse50}}\n")
    with pytest.raises(ConfigError, match="label 'identity' is used 2 times"):
        load_metrics_file(path)
    path.write_text("metrics:\n  - {name: identity, label: a}\n  - {name: fid, label: a}\n")
    with pytest.raises(ConfigError, match="label 'a' is used 2 times"):
        load_metrics_file(path)
