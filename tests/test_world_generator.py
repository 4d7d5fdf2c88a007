"""The world's face generator: determinism, exact masks, identity-preserving attribute edits, captions, split."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from asyrp_bench.errors import InputError
from asyrp_bench.world import captions, generator
from asyrp_bench.world.generator import (
    CLASSES,
    GLASSES_COLOR,
    HAIR,
    MOUTH,
    MOUTH_COLOR,
    SKIN,
    render,
    sample_params,
    with_attributes,
)


def test_same_seeds_same_faces_and_batch_independence():
    seeds = [3, 17, 99, 123456]
    a, b = render(sample_params(seeds)), render(sample_params(seeds))
    assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks)
    alone = render(sample_params([99]))
    assert torch.equal(alone.images[0], a.images[2]) and torch.equal(alone.masks[0], a.masks[2])
    # a face does not depend on its neighbours or on the render chunking
    big = render(sample_params([*list(range(200, 330)), 17]))
    assert torch.equal(big.images[-1], a.images[1])


def test_different_seeds_differ_and_cover_every_class():
    faces = render(sample_params(range(64)))
    flat = faces.images.flatten(1)
    assert torch.cdist(flat, flat).add(torch.eye(64) * 1e9).min() > 0.5
    present = set(faces.masks.unique().tolist())
    assert present == set(range(len(CLASSES)))
    assert faces.images.dtype == torch.float32 and faces.images.shape == (64, 3, 32, 32)
    assert faces.images.min() >= 0.0 and faces.images.max() <= 1.0


def test_masks_and_images_are_the_box_filter_of_the_fine_render():
    params = sample_params(range(8))
    coarse = render(params, size=32, supersample=4)
    fine = render(params, size=128, supersample=1)  # the same sub-pixel grid, one sample per pixel
    assert torch.allclose(coarse.images, F.avg_pool2d(fine.images, 4), atol=1e-6)
    counts = F.avg_pool2d(F.one_hot(fine.masks, len(CLASSES)).permute(0, 3, 1, 2).float(), 4)
    top = counts.max(1).values
    unique_majority = (counts == top[:, None]).sum(1) == 1
    assert torch.equal(coarse.masks[unique_majority], counts.argmax(1)[unique_majority])
    # ties (exactly half the sub-pixels each, e.g. the clothes line of the bottom row) follow the priority order
    priority = torch.tensor([0, 2, 3, 4, 5, 6, 1]).view(1, -1, 1, 1)
    assert torch.equal(coarse.masks, (torch.round(counts * 16) * 16 + priority).argmax(1))
    assert unique_majority.float().mean() > 0.95


def test_part_colours_are_exact_where_a_pixel_is_one_part():
    params = sample_params(range(8))
    fine = render(params, size=128, supersample=1)
    skin = torch.as_tensor(generator._skin_color(params.tan), dtype=torch.float32)
    hair = torch.as_tensor(params.hair_color, dtype=torch.float32)
    for i in range(8):
        img, mask = fine.images[i], fine.masks[i]
        assert torch.allclose(img[:, mask == SKIN].T, skin[i].expand(int((mask == SKIN).sum()), 3), atol=1e-6)
        if (mask == HAIR).any():
            assert torch.allclose(img[:, mask == HAIR].T, hair[i].expand(int((mask == HAIR).sum()), 3), atol=1e-6)
        mouth = torch.tensor(MOUTH_COLOR) / 255.0
        assert torch.allclose(img[:, mask == MOUTH].T, mouth.expand(int((mask == MOUTH).sum()), 3), atol=1e-6)
    # coarse pixels fully inside the frames have exactly the frame colour and the glasses label
    faces = render(with_attributes(params, glasses=1.0))
    frame = torch.tensor(GLASSES_COLOR) / 255.0
    exact = (faces.images - frame.view(1, 3, 1, 1)).abs().amax(1) < 1e-6
    assert bool((faces.masks[exact] == CLASSES.index("glasses")).all()) and exact.sum() >= 8


def test_attribute_changes_keep_identity_and_touch_only_their_parts():
    params = sample_params(range(16))
    for attrs in ({"smile": 1.0}, {"tan": 0.0}, {"glasses": 1.0}, {"smile": -0.7, "tan": 0.9}):
        edited = with_attributes(params, **attrs)
        np.testing.assert_array_equal(edited.identity_vector(), params.identity_vector())
        for name, value in attrs.items():
            np.testing.assert_allclose(getattr(edited, name), value)
    src = render(params)
    # smile moves only the mouth: every changed pixel is mouth (or its anti-aliased border) before or after
    smiled = render(with_attributes(params, smile=1.0))
    changed = (smiled.images - src.images).abs().amax(1) > 0
    near_mouth = F.max_pool2d(((src.masks == MOUTH) | (smiled.masks == MOUTH)).float()[:, None], 3, 1, 1)[:, 0] > 0
    assert bool(changed.any()) and not bool((changed & ~near_mouth).any())
    # tan changes only pixels that contain skin
    tanned = render(with_attributes(params, tan=1.0))
    changed = (tanned.images - src.images).abs().amax(1) > 0
    has_skin = F.max_pool2d((src.masks == SKIN).float()[:, None], 3, 1, 1)[:, 0] > 0
    assert not bool((changed & ~has_skin).any())


def test_smile_moves_the_mouth_corners_by_pixels():
    params = with_attributes(sample_params(range(32)), smile=0.0)

    def corner_minus_middle(p):
        masks = render(p, size=128, supersample=1).masks == MOUTH  # 4 sub-pixels per 32-px pixel
        rows = torch.arange(128, dtype=torch.float32).view(1, 128, 1)
        cols = masks.any(1)
        out = []
        for i in range(masks.shape[0]):
            xs = torch.nonzero(cols[i]).flatten()
            mean_row = (masks[i] * rows[0]).sum(0) / masks[i].sum(0).clamp_min(1)
            out.append(float(mean_row[xs[:3]].mean() - mean_row[xs[len(xs) // 2]]))
        return np.asarray(out) / 4.0  # in 32-px pixels; negative = corners above the middle

    happy = corner_minus_middle(with_attributes(params, smile=1.0))
    sad = corner_minus_middle(with_attributes(params, smile=-1.0))
    assert (sad - happy).min() > 4.0  # from a frown to a smile the corners travel more than 4 px


def test_attribute_input_is_checked():
    params = sample_params([1, 2])
    with pytest.raises(InputError, match="smile"):
        with_attributes(params, smile=1.5)
    with pytest.raises(InputError, match="unknown attribute"):
        with_attributes(params, age=0.3)
    with pytest.raises(InputError):
        sample_params([])
    with pytest.raises(InputError):
        sample_params([-4])
    with pytest.raises(InputError):
        render(params, size=4)


def test_params_round_trip_through_json():
    params = sample_params([5, 6, 7])
    again = generator.FaceParams.from_dict(json.loads(json.dumps(params.to_dict())))
    assert torch.equal(render(again).images, render(params).images)


def test_caption_words_follow_the_attribute_bands():
    params = with_attributes(sample_params(range(6)), smile=np.array([0.9, 0.5, 0.1, -0.1, -0.3, -0.8]),
                             tan=np.array([0.0, 0.3, 0.5, 0.7, 1.0, 0.2]), glasses=np.array([1, 0, 1, 0, 1, 0.0]))
    words = captions.attribute_words(params)
    assert list(words["smile"]) == ["smiling", "smiling", "neutral", "neutral", "", "sad"]
    assert list(words["tan"]) == ["pale", "pale", "", "tanned", "tanned", "pale"]
    assert list(words["glasses"]) == ["glasses", "no_glasses"] * 3
    assert captions.phrase(smile="smiling", tan="tanned", glasses="glasses") == "smiling tanned face with glasses"
    assert captions.phrase() == "face"
    used = [{"smile": "smiling"}, {}, {"tan": "pale", "glasses": "no_glasses"}]
    ok = captions.consistent(used, params)
    assert ok[:, 1].all() and list(ok[:, 0]) == [True, True, False, False, False, False]
    assert list(ok[:, 2]) == [False, True, False, False, False, True]
    assert len(captions.templates()) == 79 and captions.templates()[1]("x") == "a sculpture of a x."


def test_world_split_is_fixed_and_written_with_a_manifest(tmp_path):
    from asyrp_bench.world.split import render_split, write_split

    split = render_split()
    assert len(split.ids) == 64 and split.ids[0] == "world-000" and split.seeds == list(range(64))
    manifest_path = write_split(tmp_path / "a", n=4)
    write_split(tmp_path / "b", n=4)
    manifest = json.loads(manifest_path.read_text())
    assert manifest["name"] == "world" and [e["id"] for e in manifest["items"]] == split.ids[:4]
    assert manifest_path.read_bytes() == (tmp_path / "b" / "manifest.json").read_bytes()
    from PIL import Image

    first = np.asarray(Image.open(tmp_path / "a" / manifest["items"][0]["image"]))
    expected = (split.images[0].clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(first, expected)
    mask = np.asarray(Image.open(tmp_path / "a" / manifest["items"][0]["mask"]))
    np.testing.assert_array_equal(mask, split.masks[0].numpy())
    params = json.loads((tmp_path / "a" / "params.json").read_text())
    assert params["world-002"]["smile"] == pytest.approx(float(split.params.smile[2]))
