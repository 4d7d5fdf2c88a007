"""The four metrics behind the contract, with small models saved in the real formats (issue 4 "Must show")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from asyrp_bench import clip as clipmod
from asyrp_bench.cache import CacheWarning
from asyrp_bench.errors import (
    CheckpointError,
    ConfigError,
    InputError,
    UnknownNameError,
    WeightsNotFoundError,
)
from asyrp_bench.images import save_png
from asyrp_bench.metrics import (
    METRICS,
    ScoringContext,
    ScoringInputs,
    build_metric,
    load_metrics_file,
    records_to_frame,
    score,
    summary_frame,
)
from asyrp_bench.metrics import fid as fidmod
from asyrp_bench.metrics.face_embedders import FACE_EMBEDDERS, FacenetVGGFace2
from asyrp_bench.metrics.seg_consistency import label_agreement, load_segmenter
from tests._metric_models import (
    SEG_CLASSES,
    ensure_test_embedder,
    ensure_tiny_extractor,
    save_inception_compat,
    save_smp_folder,
    save_tiny_clip_dir,
    save_vggface2_format,
    tiny_extractor_class,
    varied_images,
)

N = 6


@pytest.fixture(scope="session")
def tiny_extractor() -> str:
    return ensure_tiny_extractor()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("metric_models")
    return {"clip": save_tiny_clip_dir(root / "clip"), "seg": save_smp_folder(root / "seg")}


@pytest.fixture(scope="module")
def vggface2_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_vggface2_format(tmp_path_factory.mktemp("facenet") / "20180402-114759-vggface2.pt")


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_inception_compat(tmp_path_factory.mktemp("inception") / "weights-inception-2015-12-05-6726825d.pth")


def make_inputs(n: int = N, size: int = 32, seed: int = 0, texts: bool = True) -> ScoringInputs:
    sources = varied_images(n, size, seed)
    edits = varied_images(n, size, seed + 100)
    recon = varied_images(n, size, seed + 200)
    ids = [f"{i:03d}" for i in range(n)]
    kw = {"src_text": "face", "tgt_text": "smiling face"} if texts else {}
    return ScoringInputs(ids, sources, edits, recon, **kw)


def permuted(inputs: ScoringInputs, order: list[int]) -> ScoringInputs:
    index = torch.tensor(order)
    recon = inputs.reconstructions[index] if inputs.reconstructions is not None else None
    return ScoringInputs([inputs.image_ids[i] for i in order], inputs.sources[index], inputs.edits[index], recon,
                         src_text=inputs.src_text, tgt_text=inputs.tgt_text)


def values(records, key: str) -> torch.Tensor:
    return torch.tensor([r.value for r in records if r.key == key], dtype=torch.float64)


def write_folder(folder: Path, images: torch.Tensor, ids: list[str]) -> Path:
    for image, image_id in zip(images, ids, strict=True):
        save_png(image, folder / f"{image_id}.png")
    return folder


# -- contract, specs, inputs --------------------------------------------------------------------------------------


def test_registry_and_metadata():
    assert METRICS.names() == ["clip_directional", "fid", "identity", "kid", "lpips", "seg_consistency"]
    for name in METRICS.names():
        cls = METRICS.get(name)
        assert cls.name == name and cls.version >= 1 and cls.keys and cls.description
    assert METRICS.get("fid").higher_is_better() is False and METRICS.get("identity").per_image


def test_bad_metric_names_and_params():
    with pytest.raises(UnknownNameError, match="Did you mean 'identity'"):
        build_metric("identiti")
    with pytest.raises(ConfigError, match="did you mean 'subset_size'"):
        build_metric({"name": "kid", "params": {"subset_sise": 10}})
    with pytest.raises(ConfigError, match="no_face must be one of count, center_crop"):
        build_metric({"name": "identity", "params": {"no_face": "drop"}})
    with pytest.raises(ConfigError, match="reference must be one of"):
        build_metric({"name": "seg_consistency", "params": {"reference": "original"}})
    with pytest.raises(ConfigError, match="face embedder"):
        build_metric({"name": "identity", "params": {"embedder": "arcface"}})
    with pytest.raises(ConfigError, match="needs `pretrained`"):
        build_metric({"name": "clip_directional", "params": {"model": "ViT-B-16", "pretrained": None}})
    with pytest.raises(ConfigError, match="subsets must be an integer >= 1"):
        build_metric({"name": "kid", "params": {"subsets": 0}})


def test_metrics_file_issue_example(tmp_path: Path):
    text = """
metrics:
  - {name: clip_directional, params: {model: ViT-B-16-quickgelu, pretrained: openai}}
  - {name: seg_consistency, params: {segmenter: PATH_TO_SMP_FOLDER, reference: reconstruction}}
  - {name: fid, params: {feature_extractor: inception-v3-compat, weights: null}}
  - {name: kid, params: {feature_extractor: inception-v3-compat, weights: null, subset_size: 50}}
  - {name: identity, params: {weights: PATH_TO_VGGFACE2_FILE, no_face: count}}
"""
    path = tmp_path / "metrics.yaml"
    path.write_text(text)
    specs = load_metrics_file(path)
    assert [s.name for s in specs] == ["clip_directional", "seg_consistency", "fid", "kid", "identity"]
    assert specs[3].params["subset_size"] == 50
    built = [build_metric(s) for s in specs]  # parameters validate without loading anything
    assert built[4].params["no_face"] == "count"
    path.write_text("metric:\n  - fid\n")
    with pytest.raises(ConfigError, match="exactly one top-level key 'metrics'"):
        load_metrics_file(path)
    path.write_text("metrics:\n  - {name: fid, parmas: {}}\n")
    with pytest.raises(ConfigError, match=r"metrics\[0\]"):
        load_metrics_file(path)
    path.write_text("metrics: [fid, fid]\n")
    with pytest.raises(ConfigError, match=r"label .fid. is used 2 times"):
        load_metrics_file(path)


def test_scoring_inputs_validation_and_sorting():
    x = varied_images(3, 8)
    with pytest.raises(InputError, match="uint8"):
        ScoringInputs(["a", "b", "c"], x.float(), x)
    with pytest.raises(InputError, match="duplicate"):
        ScoringInputs(["a", "a", "c"], x, x)
    with pytest.raises(InputError, match="differ in shape"):
        ScoringInputs(["a", "b", "c"], x, varied_images(3, 16))
    with pytest.raises(InputError, match="3 image ids"):
        ScoringInputs(["a", "b", "c"], x, x[:2])
    inputs = ScoringInputs(["c", "a", "b"], x, x.flip(0))
    assert inputs.image_ids == ["a", "b", "c"]
    assert torch.equal(inputs.sources[0], x[1]) and torch.equal(inputs.edits[0], x.flip(0)[1])
    with pytest.raises(InputError, match="--reconstruction"):
        inputs.images("reconstruction")
    unit = x.float() / 127.5 - 1
    assert torch.equal(ScoringInputs.from_unit_range(["a", "b", "c"], unit, unit).sources, x)


# -- clip_directional -----------------------------------------------------------------------------------------


def test_sdir_equals_hand_computation(files: dict[str, Path]):
    import open_clip
    from PIL import Image

    inputs = make_inputs()
    params = {"model": f"local-dir:{files['clip']}", "pretrained": None}
    records = score(inputs, [{"name": "clip_directional", "params": params}])
    model, _, val = open_clip.create_model_and_transforms(f"local-dir:{files['clip']}")
    model.eval()
    tok = open_clip.get_tokenizer(f"local-dir:{files['clip']}")

    def embed(x):
        pil = [Image.fromarray(a.permute(1, 2, 0).numpy()) for a in x]
        return F.normalize(model.encode_image(torch.stack([val(p) for p in pil])), dim=-1)

    with torch.no_grad():
        templates = clipmod.imagenet_templates()
        t_src = F.normalize(model.encode_text(tok([t("face") for t in templates])), dim=-1)
        t_tgt = F.normalize(model.encode_text(tok([t("smiling face") for t in templates])), dim=-1)
        text_dir = F.normalize((t_tgt - t_src).mean(0), dim=0)
        src, edit = embed(inputs.sources), embed(inputs.edits)
        diff = edit - src
        expected = (diff / (diff.norm(dim=-1, keepdim=True) + 1e-7)) @ text_dir
        target = F.normalize(model.encode_text(tok(["smiling face"])), dim=-1)[0]
    torch.testing.assert_close(values(records, "s_dir"), expected.double(), atol=1e-5, rtol=0)
    torch.testing.assert_close(values(records, "image_text_sim"), (edit @ target).double(), atol=1e-5, rtol=0)
    assert [r.image_id for r in records if r.key == "s_dir"] == inputs.image_ids
    assert all(r.metric_version == 1 and json.loads(r.params)["model"] == params["model"] for r in records)


def test_sdir_prompt_swap_identity_and_invariance(files: dict[str, Path]):
    spec = {"name": "clip_directional", "params": {"model": f"local-dir:{files['clip']}", "pretrained": None}}
    inputs = make_inputs()
    forward = values(score(inputs, [spec]), "s_dir")
    swapped = make_inputs()
    swapped.src_text, swapped.tgt_text = inputs.tgt_text, inputs.src_text
    torch.testing.assert_close(values(score(swapped, [spec]), "s_dir"), -forward, atol=1e-6, rtol=0)
    assert forward.abs().max() > 1e-3
    same = ScoringInputs(inputs.image_ids, inputs.sources, inputs.sources.clone(), src_text="a", tgt_text="b")
    assert torch.equal(values(score(same, [spec]), "s_dir"), torch.zeros(N, dtype=torch.float64))
    order = [4, 1, 5, 0, 3, 2]
    shuffled = values(score(permuted(inputs, order), [spec], ScoringContext(batch_size=4)), "s_dir")
    single = values(score(inputs, [spec], ScoringContext(batch_size=1)), "s_dir")
    torch.testing.assert_close(shuffled, forward, atol=1e-6, rtol=0)
    torch.testing.assert_close(single, forward, atol=1e-6, rtol=0)
    with pytest.raises(InputError, match="--src-text"):
        score(make_inputs(texts=False), [spec])


# -- seg_consistency ------------------------------------------------------------------------------------------


def test_label_agreement_hand_computation():
    ref = torch.tensor([[0, 0, 1], [1, 2, 2]])
    edit = torch.tensor([[0, 1, 1], [1, 2, 3]])
    accuracy, miou = label_agreement(ref, edit, 4)
    assert accuracy == pytest.approx(4 / 6)
    assert miou == pytest.approx((1 / 2 + 2 / 3 + 1 / 2 + 0) / 4)
    accuracy, miou = label_agreement(ref, edit, 4, ignore=[0])  # pixel (0,0) is 0 in both maps
    assert accuracy == pytest.approx(3 / 5)
    assert miou == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
    assert label_agreement(ref, ref, 4) == (1.0, 1.0)
    assert label_agreement(torch.zeros(2, 2, dtype=torch.long), torch.zeros(2, 2, dtype=torch.long), 4, [0]) == (1.0,
                                                                                                                  1.0)


def test_sc_through_smp_folder_matches_hand_computation(files: dict[str, Path]):
    import segmentation_models_pytorch as smp

    inputs = make_inputs()
    spec = {"name": "seg_consistency", "params": {"segmenter": str(files["seg"]), "reference": "source"}}
    records = score(inputs, [spec])
    model = smp.from_pretrained(str(files["seg"])).eval()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        ref_maps = model((inputs.sources.float() / 255 - mean) / std).argmax(1)
        edit_maps = model((inputs.edits.float() / 255 - mean) / std).argmax(1)
    assert all(len(m.unique()) >= 2 for m in ref_maps)  # the test segmenter is discriminative
    expected_acc = (ref_maps == edit_maps).double().mean(dim=(1, 2))
    torch.testing.assert_close(values(records, "pixel_accuracy"), expected_acc)
    expected_miou = torch.tensor([label_agreement(r, e, 4)[1] for r, e in zip(ref_maps, edit_maps, strict=True)],
                                 dtype=torch.float64)
    torch.testing.assert_close(values(records, "miou"), expected_miou)
    assert values(records, "pixel_accuracy").max() < 1
    same = ScoringInputs(inputs.image_ids, inputs.sources, inputs.sources.clone())
    for key in ("pixel_accuracy", "miou"):
        assert torch.equal(values(score(same, [spec]), key), torch.ones(N, dtype=torch.float64))
    # batch size and order do not matter
    again = score(permuted(inputs, [5, 3, 1, 0, 2, 4]), [spec], ScoringContext(batch_size=4))
    torch.testing.assert_close(values(again, "miou"), values(records, "miou"))


def test_sc_reference_reconstruction_and_ignore(files: dict[str, Path]):
    inputs = make_inputs()
    default = {"name": "seg_consistency", "params": {"segmenter": str(files["seg"])}}
    recon_is_edit = ScoringInputs(inputs.image_ids, inputs.sources, inputs.edits, inputs.edits.clone())
    assert torch.equal(values(score(recon_is_edit, [default]), "pixel_accuracy"), torch.ones(N, dtype=torch.float64))
    no_recon = ScoringInputs(inputs.image_ids, inputs.sources, inputs.edits)
    with pytest.raises(InputError, match="reconstruction"):
        score(no_recon, [default])
    ignore = {"name": "seg_consistency", "params": {"segmenter": str(files["seg"]), "reference": "source",
                                                    "ignore_classes": ["background", 3]}}
    assert len(score(inputs, [ignore])) == 2 * N
    bad = {"name": "seg_consistency", "params": {"segmenter": str(files["seg"]), "reference": "source",
                                                 "ignore_classes": ["beard"]}}
    with pytest.raises(ConfigError, match="beard"):
        score(inputs, [bad])


def test_segmenter_sidecar_defaults_and_input_size(tmp_path: Path):
    plain = save_smp_folder(tmp_path / "plain", sidecar={})
    seg = load_segmenter(str(plain))
    assert seg.classes == [f"class_{i}" for i in range(4)] and seg.input_size is None
    assert seg.mean == (0.485, 0.456, 0.406)
    assert seg.predict(varied_images(2, 32)).shape == (2, 32, 32)
    sized = save_smp_folder(tmp_path / "sized", sidecar={"classes": SEG_CLASSES, "input_size": 64})
    assert load_segmenter(str(sized)).predict(varied_images(2, 32)).shape == (2, 64, 64)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "segmenter.json").write_text('{"classes": ["a"], "size": 3}')
    with pytest.raises((ConfigError, WeightsNotFoundError)):
        load_segmenter(str(tmp_path / "bad"))
    wrong = save_smp_folder(tmp_path / "wrong", sidecar={"classes": ["a", "b"]})
    with pytest.raises(ConfigError, match="names 2 classes"):
        load_segmenter(str(wrong))
    with pytest.raises(WeightsNotFoundError, match="no public smp face parser"):
        load_segmenter("face_parsing_smp")  # the default key, absent: an honest message
    with pytest.raises(WeightsNotFoundError, match="no such file"):
        load_segmenter(str(tmp_path / "missing" / "folder"))


# -- fid / kid --------------------------------------------------------------------------------------------------


def test_registering_an_extractor_twice_raises(tiny_extractor: str):
    import torch_fidelity

    with pytest.raises(ValueError):
        torch_fidelity.register_feature_extractor(tiny_extractor, tiny_extractor_class())


def test_fid_kid_equal_torch_fidelity_on_folders(tiny_extractor: str, tmp_path: Path):
    import torch_fidelity

    inputs = make_inputs(n=8)
    src_dir = write_folder(tmp_path / "src", inputs.sources, inputs.image_ids)
    edit_dir = write_folder(tmp_path / "edit", inputs.edits, inputs.image_ids)
    specs = [{"name": "fid", "params": {"feature_extractor": tiny_extractor}},
             {"name": "kid", "params": {"feature_extractor": tiny_extractor, "subset_size": 5, "subsets": 20}}]
    records = score(inputs, specs)
    reference = torch_fidelity.calculate_metrics(
        input1=str(src_dir), input2=str(edit_dir), fid=True, kid=True, kid_subset_size=5, kid_subsets=20,
        feature_extractor=tiny_extractor, cuda=False, save_cpu_ram=True, cache=False, verbose=False)
    by_key = {(r.metric, r.key): r.value for r in records}
    assert by_key[("fid", "fid")] == pytest.approx(reference["frechet_inception_distance"], rel=1e-6, abs=1e-9)
    assert by_key[("kid", "kid")] == pytest.approx(reference["kernel_inception_distance_mean"], rel=1e-6, abs=1e-9)
    assert by_key[("kid", "kid_std")] == pytest.approx(reference["kernel_inception_distance_std"], rel=1e-6,
                                                       abs=1e-9)
    assert by_key[("fid", "n")] == 8 and by_key[("kid", "n")] == 8 and by_key[("kid", "subset_size")] == 5
    assert by_key[("fid", "fid")] > 1e-3  # the tiny extractor tells the two sets apart
    assert all(r.image_id is None for r in records)
    # KID subset size is fitted to small sets (default 1000 -> 8)
    fitted = score(inputs, [{"name": "kid", "params": {"feature_extractor": tiny_extractor}}])
    assert {r.key: r.value for r in fitted}["subset_size"] == 8


def test_fid_same_set_zero_and_invariance(tiny_extractor: str):
    inputs = make_inputs(n=8)
    spec = {"name": "fid", "params": {"feature_extractor": tiny_extractor}}
    same = ScoringInputs(inputs.image_ids, inputs.sources, inputs.sources.clone())
    assert abs(values(score(same, [spec]), "fid").item()) < 1e-5
    base = values(score(inputs, [spec], ScoringContext(batch_size=8)), "fid").item()
    order = [7, 2, 5, 0, 1, 6, 3, 4]
    kid = {"name": "kid", "params": {"feature_extractor": tiny_extractor, "subset_size": 4, "subsets": 10}}
    for ctx, data in ((ScoringContext(batch_size=1), inputs), (ScoringContext(batch_size=3), permuted(inputs, order))):
        assert values(score(data, [spec], ctx), "fid").item() == pytest.approx(base, rel=1e-5)
        assert values(score(data, [kid], ctx), "kid").item() == pytest.approx(
            values(score(inputs, [kid]), "kid").item(), rel=1e-5, abs=1e-9)


def test_fid_and_kid_share_features(tiny_extractor: str, monkeypatch: pytest.MonkeyPatch):
    calls = []
    real = fidmod._Extractor.features
    monkeypatch.setattr(fidmod._Extractor, "features", lambda self, *a: calls.append(1) or real(self, *a))
    ctx = ScoringContext()
    score(make_inputs(), [{"name": "fid", "params": {"feature_extractor": tiny_extractor}},
                          {"name": "kid", "params": {"feature_extractor": tiny_extractor}}], ctx)
    assert len(calls) == 2  # source set + edit set, once for both metrics


def test_fid_features_disk_cache(tiny_extractor: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    spec = {"name": "fid", "params": {"feature_extractor": tiny_extractor}}
    inputs = make_inputs()
    first = score(inputs, [spec], ScoringContext(cache_dir=tmp_path))
    files = sorted((tmp_path / "fidelity_features").glob("*.safetensors"))
    assert len(files) == 2
    real = fidmod._Extractor.features
    monkeypatch.setattr(fidmod._Extractor, "features", lambda *a: pytest.fail("features recomputed"))
    again = score(inputs, [spec], ScoringContext(cache_dir=tmp_path))  # a new process would read the files
    assert [r.value for r in again] == [r.value for r in first]
    # Swapped entries (valid files, wrong contents) and a truncated one: warned, discarded, recomputed, and the
    # numbers are the clean run's (docs/cache.md).
    monkeypatch.setattr(fidmod._Extractor, "features", real)
    a, b = (f.read_bytes() for f in files)
    files[0].write_bytes(b)
    files[1].write_bytes(a)
    with pytest.warns(CacheWarning, match=files[0].name):
        swapped = score(inputs, [spec], ScoringContext(cache_dir=tmp_path))
    assert [r.value for r in swapped] == [r.value for r in first]
    files[0].write_bytes(files[0].read_bytes()[:40])
    with pytest.warns(CacheWarning, match="unreadable"):
        truncated = score(inputs, [spec], ScoringContext(cache_dir=tmp_path))
    assert [r.value for r in truncated] == [r.value for r in first]


def test_extractor_hook(tiny_extractor: str, monkeypatch: pytest.MonkeyPatch):
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    name = "asyrp-test-hooked"
    if name not in FEATURE_EXTRACTORS_REGISTRY:
        monkeypatch.setitem(fidmod.EXTRACTOR_HOOKS, name, "tests.test_metrics:_register_hooked")
    assert fidmod.ensure_extractor(name) is FEATURE_EXTRACTORS_REGISTRY[name]
    assert values(score(make_inputs(), [{"name": "fid", "params": {"feature_extractor": name}}]), "fid").item() > 0
    with pytest.raises(UnknownNameError, match="inception-v3-compat"):
        fidmod.ensure_extractor("no-such-extractor")
    with pytest.raises(ConfigError, match="downloads its weights"):
        score(make_inputs(), [{"name": "fid", "params": {"feature_extractor": "vgg16"}}])


def _register_hooked() -> None:
    import torch_fidelity

    torch_fidelity.register_feature_extractor("asyrp-test-hooked", tiny_extractor_class())


def test_inception_weights_missing_is_clear():
    with pytest.raises(WeightsNotFoundError, match=r"weights-inception-2015-12-05-6726825d\.pth"):
        score(make_inputs(), ["fid"])


def test_inception_v3_compat_file_equals_torch_fidelity(inception_file: Path, tmp_path: Path):
    """The real extractor with weights from a torch-fidelity-format file: user path, torch hub cache, equality.

    KID, not FID, keeps this test fast: FID's 2048x2048 eigendecomposition is the same code as the tiny-extractor
    test; what is checked here is that the file loads and the 2048-d features match torch-fidelity's own."""
    import torch_fidelity

    inputs = make_inputs(n=4, size=32)
    src_dir = write_folder(tmp_path / "src", inputs.sources, inputs.image_ids)
    edit_dir = write_folder(tmp_path / "edit", inputs.edits, inputs.image_ids)
    records = score(inputs, [{"name": "kid", "params": {"weights": str(inception_file), "subsets": 10}}])
    reference = torch_fidelity.calculate_metrics(
        input1=str(src_dir), input2=str(edit_dir), kid=True, kid_subset_size=4, kid_subsets=10,
        feature_extractor="inception-v3-compat", feature_extractor_weights_path=str(inception_file), cuda=False,
        save_cpu_ram=True, cache=False, verbose=False)
    assert values(records, "kid").item() == pytest.approx(reference["kernel_inception_distance_mean"], rel=1e-4)
    # BatchNorm statistics from data make the random Inception's 2048-d features differ between images
    ctx = ScoringContext()
    feats = fidmod.set_features(inputs.sources, "inception-v3-compat", str(inception_file), "2048", ctx, "test")
    assert feats.shape == (4, 2048)
    assert (feats - feats.mean(0)).norm(dim=1).min() > 0.1 * feats.norm(dim=1).mean()
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    hub.mkdir(parents=True, exist_ok=True)
    (hub / inception_file.name).symlink_to(inception_file)
    # weights: null -> the weights key inception_v3_compat, found in the torch hub cache
    assert fidmod.resolve_extractor_weights("inception-v3-compat", None) == str(hub / inception_file.name)


def test_bad_inception_file_is_checkpoint_error(tmp_path: Path):
    torch.save({"fc.weight": torch.zeros(3, 3)}, tmp_path / "wrong.pth")
    with pytest.raises(CheckpointError, match=r"wrong\.pth"):
        score(make_inputs(n=2), [{"name": "fid", "params": {"weights": str(tmp_path / "wrong.pth")}}])
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"junk\.pth"):
        score(make_inputs(n=2), [{"name": "fid", "params": {"weights": str(tmp_path / "junk.pth")}}])


def test_fid_needs_two_images(tiny_extractor: str):
    one = make_inputs(n=1)
    with pytest.raises(InputError, match="at least 2"):
        score(one, [{"name": "fid", "params": {"feature_extractor": tiny_extractor}}])


# -- identity -----------------------------------------------------------------------------------------------------


def test_vggface2_file_loads_and_identity_is_one(vggface2_file: Path):
    inputs = make_inputs(n=3, size=64)
    spec = {"name": "identity", "params": {"weights": str(vggface2_file), "no_face": "center_crop"}}
    ctx = ScoringContext()
    same = ScoringInputs(inputs.image_ids, inputs.sources, inputs.sources.clone())
    records = score(same, [spec], ctx)
    torch.testing.assert_close(values(records, "cosine"), torch.ones(3, dtype=torch.float64), atol=1e-5, rtol=0)
    assert values(records, "no_face").tolist() == [1.0, 1.0, 1.0]  # synthetic images hold no face: counted
    different = values(score(inputs, [spec], ctx), "cosine")
    assert different.max() < 0.99  # the test network is discriminative (BatchNorm stats from data)
    counted = score(inputs, [{"name": "identity", "params": {"weights": str(vggface2_file)}}], ctx)
    assert values(counted, "cosine").numel() == 0 and values(counted, "no_face").tolist() == [1.0, 1.0, 1.0]
    ctx.batch_size = 2
    batched = values(score(permuted(inputs, [2, 0, 1]), [spec], ctx), "cosine")
    torch.testing.assert_close(batched, different, atol=1e-5, rtol=0)


def test_vggface2_found_in_torch_home_checkpoints(vggface2_file: Path, monkeypatch: pytest.MonkeyPatch):
    with pytest.raises(WeightsNotFoundError, match=r"20180402-114759-vggface2\.pt"):
        FacenetVGGFace2.load(None, "cpu")
    home = Path(torch.hub._get_torch_home()) / "checkpoints"
    home.mkdir(parents=True, exist_ok=True)
    (home / vggface2_file.name).symlink_to(vggface2_file)
    embedder = FacenetVGGFace2.load(None, "cpu")
    assert not hasattr(embedder.net, "logits")
    emb, found = embedder.embed(varied_images(2, 64).float() / 255)
    assert emb.shape == (2, 512) and found.tolist() == [False, False]
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(2))


def test_bad_vggface2_file(tmp_path: Path):
    torch.save({"conv.weight": torch.zeros(1), "logits.weight": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="does not fit InceptionResnetV1"):
        FacenetVGGFace2.load(str(tmp_path / "bad.pt"), "cpu")


def test_identity_with_registered_embedder_counts_faceless():
    embedder = ensure_test_embedder()
    assert embedder in FACE_EMBEDDERS
    inputs = make_inputs(n=4, size=16)
    sources = inputs.sources.clone()
    sources[2] = 0  # a "faceless" image
    data = ScoringInputs(inputs.image_ids, sources, inputs.edits)
    records = score(data, [{"name": "identity", "params": {"embedder": embedder}}])
    assert [r.image_id for r in records if r.key == "cosine"] == ["000", "001", "003"]
    assert [r.value for r in records if r.key == "no_face"] == [0.0, 0.0, 1.0, 0.0]
    summary = summary_frame(records).set_index("key")
    assert summary.loc["cosine", "n"] == 3 and summary.loc["no_face", "n"] == 4
    assert summary.loc["no_face", "mean"] == pytest.approx(0.25)


def test_mtcnn_finds_release_faces(release_dir: Path, vggface2_file: Path):
    from asyrp_bench.images import load_folder, resize_uint8

    ids, images, _ = load_folder(release_dir / "images" / "celeba")
    faces = torch.stack([resize_uint8(x, (256, 256)) for x in images])
    embedder = FacenetVGGFace2.load(str(vggface2_file), "cpu")
    _, found = embedder.embed(faces.float() / 255)
    assert found.all(), f"MTCNN missed faces in {[i for i, f in zip(ids, found, strict=True) if not f]}"
    # a faceless image beside real faces is counted, not dropped
    blank = faces.clone()
    blank[0] = 128
    data = ScoringInputs(ids, blank, faces.clone())
    records = score(data, [{"name": "identity", "params": {"weights": str(vggface2_file)}}])
    assert [r.value for r in records if r.key == "no_face"] == [1.0] + [0.0] * (len(ids) - 1)
    torch.testing.assert_close(values(records, "cosine"), torch.ones(len(ids) - 1, dtype=torch.float64),
                               atol=1e-5, rtol=0)


# -- several metrics at once -------------------------------------------------------------------------------------


def test_score_checks_all_inputs_before_loading(files: dict[str, Path], tiny_extractor: str):
    clipmod.clear_cache()
    inputs = make_inputs()
    no_recon = ScoringInputs(inputs.image_ids, inputs.sources, inputs.edits, src_text="a", tgt_text="b")
    ctx = ScoringContext()
    specs = [{"name": "clip_directional", "params": {"model": f"local-dir:{files['clip']}", "pretrained": None}},
             {"name": "seg_consistency", "params": {"segmenter": str(files["seg"])}}]
    with pytest.raises(InputError, match="reconstruction"):
        score(no_recon, specs, ctx)
    assert ctx.cache == {} and clipmod._CACHE == {}


def test_tables_from_several_metrics(files: dict[str, Path], tiny_extractor: str):
    inputs = make_inputs()
    specs = [{"name": "clip_directional", "params": {"model": f"local-dir:{files['clip']}", "pretrained": None}},
             {"name": "seg_consistency", "params": {"segmenter": str(files["seg"])}},
             {"name": "fid", "params": {"feature_extractor": tiny_extractor}}]
    records = score(inputs, specs)
    frame = records_to_frame(records)
    assert list(frame.columns) == ["image_id", "metric", "key", "metric_version", "value", "params"]
    assert len(frame[frame.metric == "fid"]) == 2 and frame[frame.metric == "fid"].image_id.isna().all()
    assert len(frame) == 2 * N + 2 * N + 2
    summary = summary_frame(records)
    fid_row = summary[summary.metric == "fid"].iloc[0]
    assert fid_row.key == "fid" and fid_row.n == N and not fid_row.higher_is_better
    s_dir = summary[(summary.metric == "clip_directional") & (summary.key == "s_dir")].iloc[0]
    per_image = frame[(frame.metric == "clip_directional") & (frame.key == "s_dir")].value
    assert s_dir["mean"] == pytest.approx(per_image.mean()) and s_dir["n"] == N
    assert s_dir["ci_low"] <= s_dir["mean"] <= s_dir["ci_high"]
    assert s_dir["std"] == pytest.approx(per_image.std(ddof=1))

