"""Training f_t (spec §4.3): the step equals the engine's, the loss composition, batches, determinism, frozen
models, recipes and failures. Offline: a toy U-Net and a tiny open_clip model saved to tmp_path."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import asyrp_bench as ab
from asyrp_bench import clip as clipmod
from asyrp_bench.cache import InversionCache
from asyrp_bench.editors.additive import AdditiveEditor
from asyrp_bench.errors import ConfigError, InputError, TrainingDivergedError, UnknownNameError
from asyrp_bench.recipes import RECIPES, Recipe, register_recipe, resolve_recipe
from asyrp_bench.training import (
    Objective,
    chain_directional_loss,
    paired_step,
    prepare_objective,
    train_editor,
    training_pairs,
)
from tests._metric_models import save_tiny_clip_dir
from tests.toys import ToyBackend

SOURCE, TARGET = "face", "smiling face"
FAST = {"n_inv_step": 8, "n_train_step": 10, "n_train_img": None}


@pytest.fixture(autouse=True)
def _one_thread():
    # The test machine is shared: small convs with 2 threads stall on contention (speed is not asserted).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_clip_dir(tmp_path_factory.mktemp("clip") / "tiny_clip", seed=0)


@pytest.fixture
def clip(clip_dir: Path) -> clipmod.ClipModel:
    return clipmod.load_clip(f"local-dir:{clip_dir}")


@pytest.fixture
def backend() -> ToyBackend:
    return ToyBackend(size=16)


@pytest.fixture
def images() -> torch.Tensor:
    """Four smooth, distinct 16 px images in [-1, 1] (a colour gradient per image)."""
    gen = torch.Generator().manual_seed(0)
    ramp = torch.linspace(-1, 1, 16)
    a, b = torch.rand(2, 4, 3, 1, 1, generator=gen) - 0.5
    image = a * ramp[:, None] + b * ramp[None, :] + 0.1 * torch.randn(4, 3, 16, 16, generator=gen)
    return image.clamp(-1, 1)


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- the step -------------------------------------------------------------------------------------------------


def test_paired_step_equals_the_engine_and_grads_only_reach_the_editor(backend, images):
    torch.manual_seed(0)
    editor = AdditiveEditor(backend.h_shape, backend.temb_dim)
    x_T = ab.invert(backend, images[:2], 8)
    pairs = training_pairs(10, 300)
    x_edit = x_ref = x_T
    for i, (t, t_next) in enumerate(pairs[:3]):
        x_edit_next, p_edit, x_ref_next, p_ref = paired_step(backend, editor, x_edit, x_ref, t, t_next)
        with torch.no_grad():
            e_next, e_p = ab.asyrp_step(backend, x_edit, t, t_next, editor)
            r_next, r_p = ab.asyrp_step(backend, x_ref, t, t_next)
        for ours, engine in ((x_edit_next, e_next), (p_edit, e_p), (x_ref_next, r_next), (p_ref, r_p)):
            torch.testing.assert_close(ours, engine, rtol=1e-5, atol=1e-5)
        assert p_edit.requires_grad and not x_edit_next.requires_grad and not p_ref.requires_grad
        if i == 1:
            assert not torch.allclose(x_edit, x_ref)  # the chains have separated: the 2B-batch path is tested
        p_edit.square().mean().backward()
        x_edit, x_ref = x_edit_next, x_ref_next
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in editor.parameters())
    assert all(p.grad is None for p in backend.parameters())


def test_training_pairs_cover_t_at_least_t_edit():
    pairs = training_pairs(40, 500)
    assert pairs[0] == (999, 973) and all(t >= 500 for t, _ in pairs) and pairs[-1][0] == 512
    assert training_pairs(10, 0)[-1] == (0, -1)  # the last step goes to −1
    with pytest.raises(ConfigError, match="no timestep"):
        training_pairs(2, 1000 - 1 + 1)


# -- the loss -------------------------------------------------------------------------------------------------


class KnownEmbeddings:
    """A CLIP stand-in whose image embedding is the normalised per-channel mean (known in closed form)."""

    def encode_images(self, x: torch.Tensor) -> torch.Tensor:
        e = x.mean(dim=(2, 3))
        return e / e.norm(dim=-1, keepdim=True)


def test_loss_is_the_hand_computation_per_image(images):
    x0 = images[:2]
    p_edit = (x0 + torch.tensor([0.3, -0.2, 0.1])[None, :, None, None]).clamp(-1, 1)
    p_ref = x0 * 0.9
    text_dir = torch.tensor([1.0, -1.0, 0.5])
    text_dir = text_dir / text_dir.norm()
    clip = KnownEmbeddings()
    objective = Objective(clip, text_dir, 0.8, clip.encode_images(x0), lambda_clip=1.5, lambda_l1=3.0 * 0.8,
                           form="neg_log")
    total, direction, l1 = objective.per_image(p_edit, p_ref, torch.tensor([0, 1]))
    for i in range(2):
        src, edt = x0[i].mean(dim=(1, 2)), p_edit[i].mean(dim=(1, 2))
        d = edt / edt.norm() - src / src.norm()
        cos = float(d @ text_dir) / float(d.norm() + 1e-7)
        hand_dir = -math.log((1 + cos) / 2)
        hand_l1 = float((p_edit[i] - p_ref[i]).abs().mean())
        assert direction[i].item() == pytest.approx(hand_dir, rel=1e-5)
        assert l1[i].item() == pytest.approx(hand_l1, rel=1e-6)
        assert total[i].item() == pytest.approx(1.5 * hand_dir + 3.0 * 0.8 * hand_l1, rel=1e-5)
    # each image is its own CLIP source (B5): the batch gives what one image at a time gives
    for i in range(2):
        alone = objective.per_image(p_edit[i:i + 1], p_ref[i:i + 1], torch.tensor([i]))[0]
        torch.testing.assert_close(alone, total[i:i + 1])
    # swapping the images' roles flips the cosine's sign; P̃ = x0 gives cos = 0, i.e. log 2 (defined, not NaN)
    swapped = Objective(clip, text_dir, 0.8, clip.encode_images(p_edit), 1.0, 0.0, "one_minus")
    cos_fwd = 1 - Objective(clip, text_dir, 0.8, clip.encode_images(x0), 1.0, 0.0, "one_minus").per_image(
        p_edit, p_ref, torch.tensor([0, 1]))[1]
    cos_bwd = 1 - swapped.per_image(x0, p_ref, torch.tensor([0, 1]))[1]
    torch.testing.assert_close(cos_fwd, -cos_bwd)
    identical = objective.per_image(x0, x0, torch.tensor([0, 1]))[1]
    torch.testing.assert_close(identical, torch.full((2,), math.log(2.0)))


def test_prepare_objective_uses_real_x0_text_direction_and_cosine_weight(clip, images):
    recipe = resolve_recipe("asyrp_paper")
    objective = prepare_objective(clip, images, SOURCE, TARGET, recipe, batch_size=3)
    torch.testing.assert_close(objective.source_embeddings, clip.encode_images(images))
    torch.testing.assert_close(objective.text_direction, clip.text_direction(SOURCE, TARGET))
    assert objective.lambda_l1 == pytest.approx(3.0 * clip.text_cosine(SOURCE, TARGET))
    plain = prepare_objective(clip, images, SOURCE, TARGET, resolve_recipe("asyrp_paper", {"l1_text_cosine": False}))
    assert plain.lambda_l1 == 3.0


def test_batch_gradient_is_the_mean_of_single_image_gradients(backend, images, clip):
    """B5: with batch 2 each image keeps its own source; one step's gradient = mean of the per-image ones."""
    objective = prepare_objective(clip, images[:2], SOURCE, TARGET, resolve_recipe("asyrp_paper"))
    x_T = ab.invert(backend, images[:2], 8)
    torch.manual_seed(0)
    editor = AdditiveEditor(backend.h_shape, backend.temb_dim)

    def grads(rows: list[int]) -> list[torch.Tensor]:
        editor.zero_grad()
        index = torch.tensor(rows)
        x = x_T[index]
        _, p_edit, _, p_ref = paired_step(backend, editor, x, x, 999, 888)
        objective.per_image(p_edit, p_ref, index)[0].mean().backward()
        return [p.grad.clone() for p in editor.parameters()]

    both, first, second = grads([0, 1]), grads([0]), grads([1])
    for g, a, b in zip(both, first, second, strict=True):
        torch.testing.assert_close(g, (a + b) / 2, rtol=1e-4, atol=1e-6)


# -- training ------------------------------------------------------------------------------------------------


def run(backend, images, clip, tmp_path, **kwargs):
    kwargs.setdefault("recipe", "asyrp_paper")
    overrides = {**FAST, "lr": 2.0, "n_iter": 4, "batch_size": 2, **kwargs.pop("overrides", {})}
    return train_editor(backend, images, SOURCE, TARGET, t_edit=kwargs.pop("t_edit", 400), clip=clip,
                        cache=InversionCache(tmp_path / "cache"), overrides=overrides, **kwargs)


def test_training_lowers_the_directional_loss_deterministically_with_frozen_models(backend, images, clip, tmp_path):
    unet, clip_weights = snapshot(backend), snapshot(clip.model)
    records: list = []
    editor = run(backend, images, clip, tmp_path, seed=3, on_step=records.append)
    assert same(snapshot(backend), unet) and same(snapshot(clip.model), clip_weights)
    assert not any(p.requires_grad for p in backend.parameters())
    # 4 passes × 2 batches × |{t ≥ 400}| updates, one per timestep
    pairs = training_pairs(10, 400)
    assert len(records) == 4 * 2 * len(pairs) == editor.metadata["training"]["n_updates"]
    assert [r.t for r in records[: len(pairs)]] == [t for t, _ in pairs]
    # the directional loss along the chains, before vs after (the initial editor = same seed, untrained)
    objective = prepare_objective(clip, images, SOURCE, TARGET, resolve_recipe("asyrp_paper"))
    x_T = InversionCache(tmp_path / "cache").invert(backend, images, 8)
    with torch.random.fork_rng():
        torch.manual_seed(3)
        initial = AdditiveEditor(backend.h_shape, backend.temb_dim)
    before = chain_directional_loss(backend, initial, x_T, objective, pairs)
    after = chain_directional_loss(backend, editor, x_T, objective, pairs)
    assert after < before - 0.1, (before, after)
    # same seed -> identical weights; another seed -> other weights
    again = run(backend, images, clip, tmp_path, seed=3)
    assert same(snapshot(again), snapshot(editor))
    other = run(backend, images, clip, tmp_path, seed=4)
    assert not same(snapshot(other), snapshot(editor))
    assert same(snapshot(backend), unet) and same(snapshot(clip.model), clip_weights)


def test_metadata_is_filled_and_saved(backend, images, clip, tmp_path):
    out = tmp_path / "smiling.safetensors"
    editor = run(backend, images, clip, tmp_path, edit="smiling", t_edit=None, overrides={"n_iter": 1},
                 image_ids=["a", "b", "c", "d"], out=out)
    meta = editor.metadata
    assert not editor.training
    assert meta["t_edit"] == 513 and meta["t_boost"] == 167  # from the named edit (spec §4.5 table)
    assert meta["n_train_step"] == 10 and meta["n_inv_step"] == 8
    assert meta["prompts"] == {"source": "face", "target": "smiling face", "edit": "smiling"}
    assert meta["backend"]["weights_hash"] == backend.weights_hash and meta["backend"]["name"] == "toy"
    assert meta["recipe"]["name"] == "asyrp_paper" and meta["recipe"]["values"]["lr"] == 2.0
    assert meta["recipe"]["overrides"]["lr"] == 2.0 and meta["seed"] == 1234
    assert meta["clip"].startswith("local-dir:") and -1 <= meta["text_cosine"] <= 1
    assert meta["training"]["image_ids"] == ["a", "b", "c", "d"] and meta["training"]["n_images"] == 4
    loaded = ab.load_editor(out, backend=backend)
    assert loaded.metadata["t_edit"] == 513 and loaded.metadata["recipe"] == meta["recipe"]
    h = torch.randn(2, *backend.h_shape)
    temb = torch.randn(2, backend.temb_dim)
    assert torch.equal(loaded(h, temb), editor(h, temb))


@pytest.mark.parametrize("variant", ["multiplicative", "adagn", "transformer"])
def test_every_variant_trains(variant, backend, images, clip, tmp_path):
    params = {"dim_feedforward": 16, "heads": 2} if variant == "transformer" else {}
    editor = run(backend, images[:2], clip, tmp_path, variant=variant, editor_params=params,
                 overrides={"n_iter": 1, "optimizer": "adamw", "lr": 1e-3})
    assert editor.variant == variant and editor.metadata["training"]["n_updates"] == len(training_pairs(10, 400))
    if variant == "transformer":
        assert editor.config["heads"] == 2 and not editor.training


def test_recipe_variant_and_params_are_used(backend, images, clip, tmp_path):
    editor = run(backend, images[:2], clip, tmp_path, recipe="dl2_transformer_adamw",
                 overrides={"n_iter": 1, "batch_size": 2, "editor_params": {"dim_feedforward": 16, "heads": 2}})
    assert editor.variant == "transformer" and editor.config["layer_type"] == "pc"
    assert editor.config["injection"] == "adagn" and editor.config["heads"] == 2


def test_batches_need_not_divide_and_n_train_img_takes_the_first(backend, images, clip, tmp_path):
    records: list = []
    editor = run(backend, images, clip, tmp_path, overrides={"n_iter": 1, "batch_size": 3, "n_train_img": 3},
                 image_ids=list("wxyz"), on_step=records.append)
    assert {r.image_ids for r in records} == {("w", "x", "y")}
    assert editor.metadata["training"]["image_ids"] == ["w", "x", "y"]
    shuffled: list = []
    run(backend, images, clip, tmp_path, overrides={"n_iter": 2, "batch_size": 1, "shuffle": True},
        image_ids=list("wxyz"), on_step=shuffled.append)
    orders = [[r.image_ids[0] for r in shuffled if r.iteration == i and r.t == 999] for i in range(2)]
    assert sorted(orders[0]) == list("wxyz") and orders[0] != orders[1]


def test_scheduler_steps_once_per_pass(backend, images, clip, tmp_path):
    records: list = []
    run(backend, images[:1], clip, tmp_path, on_step=records.append,
        overrides={"n_iter": 3, "batch_size": 1, "scheduler_step_size": 1, "scheduler_gamma": 0.5, "lr": 0.4})
    assert sorted({(r.iteration, r.lr) for r in records}) == [(0, 0.4), (1, 0.2), (2, 0.1)]


def test_divergence_names_image_and_timestep_and_saves_nothing(backend, images, clip, tmp_path):
    class Poisoned(AdditiveEditor):
        """Δh is NaN for the second image of a batch."""

        def forward(self, h, temb):
            out = super().forward(h, temb)
            return torch.cat([out[:1], out[1:] * float("nan")]) if out.shape[0] > 1 else out

    poisoned = Poisoned(backend.h_shape, backend.temb_dim)
    out = tmp_path / "never.safetensors"
    with pytest.raises(TrainingDivergedError, match=r"image\(s\) \['bob'\] at timestep t=999"):
        run(backend, images[:2], clip, tmp_path, editor=poisoned, image_ids=["ann", "bob"], out=out)
    assert not out.exists()
    with pytest.raises(TrainingDivergedError, match="parameters became NaN/Inf"):
        run(backend, images[:1], clip, tmp_path, out=out, overrides={"lr": 1e38, "batch_size": 1})
    assert not out.exists()


def test_progress_bar_runs(backend, images, clip, tmp_path, capsys):
    run(backend, images[:1], clip, tmp_path, progress=True, overrides={"n_iter": 1})
    assert "loss" in capsys.readouterr().err


# -- recipes and bad input ---------------------------------------------------------------------------------------


def test_recipes_resolve_and_validate():
    paper = resolve_recipe("asyrp_paper")
    assert (paper.optimizer, paper.lr, paper.momentum, paper.lambda_clip, paper.lambda_l1) == ("sgd", 0.5, 0.0, 1, 3)
    assert (paper.n_inv_step, paper.n_train_step, paper.batch_size, paper.n_iter) == (40, 40, 1, 1)
    assert paper.clip_model == "ViT-B-16-quickgelu" and paper.clip_pretrained == "openai"
    code = resolve_recipe("asyrp_code_defaults")
    assert (code.lr, code.lambda_clip, code.lambda_l1, code.n_train_step) == (0.2, 3, 0, 6)
    assert (code.scheduler_step_size, code.scheduler_gamma) == (3, 0.1)
    adamw = resolve_recipe("dl2_transformer_adamw")
    assert (adamw.optimizer, adamw.lr, adamw.variant, adamw.batch_size) == ("adamw", 1e-5, "transformer", 9)
    assert resolve_recipe("asyrp_paper", {"lr": 1}).lr == 1.0
    with pytest.raises(ConfigError, match=r"unknown recipe key 'lamda_clip'. Did you mean 'lambda_clip'"):
        resolve_recipe("asyrp_paper", {"lamda_clip": 2})
    with pytest.raises(UnknownNameError, match="Did you mean 'asyrp_paper'"):
        resolve_recipe("asyrp_papr")
    for bad in ({"n_train_step": "40"}, {"optimizer": "lbfgs"}, {"lr": -1.0}, {"loss_form": "cos"},
                {"t_edit": 1200}, {"shuffle": "yes"}, {"lambda_clip": 0.0, "lambda_l1": 0.0}):
        with pytest.raises(ConfigError):
            resolve_recipe("asyrp_paper", bad)


def test_a_new_recipe_can_be_registered():
    name = "test_quick_recipe"
    if name not in RECIPES:
        register_recipe(Recipe(name=name, description="a test recipe", n_train_step=6, t_edit=300, lr=1.0))
    assert resolve_recipe(name).t_edit == 300
    with pytest.raises(ConfigError, match="n_iter"):
        register_recipe(Recipe(name="test_bad_recipe", description="bad", n_iter=0))


def test_bad_training_input(backend, images, clip, tmp_path):
    with pytest.raises(ConfigError, match="t_edit is required"):
        run(backend, images, clip, tmp_path, t_edit=None)
    with pytest.raises(ConfigError, match="source and a target"):
        train_editor(backend, images, clip=clip, t_edit=400)
    with pytest.raises(ConfigError, match="identical"):
        train_editor(backend, images, "face", "face", clip=clip, t_edit=400)
    with pytest.raises(ConfigError, match="do not also pass"):
        train_editor(backend, images, "face", "sad face", edit="smiling", clip=clip)
    with pytest.raises(UnknownNameError, match="Unknown edit 'smilling'"):
        train_editor(backend, images, edit="smilling", clip=clip)
    with pytest.raises(InputError, match=r"\[-1, 1\]"):
        run(backend, images * 127.5 + 127.5, clip, tmp_path)
    with pytest.raises(InputError, match="expects x_t of shape"):
        run(backend, images[:, :, :8, :8], clip, tmp_path)
    with pytest.raises(InputError, match="3 image ids for 4 images"):
        run(backend, images, clip, tmp_path, image_ids=["a", "b", "c"])
    with pytest.raises(UnknownNameError, match="Valid editors: adagn, additive, multiplicative, transformer"):
        run(backend, images, clip, tmp_path, variant="residual")
    wrong = AdditiveEditor((16, 8, 8), backend.temb_dim)
    with pytest.raises(ConfigError, match="bottleneck of 16 channels"):
        run(backend, images, clip, tmp_path, editor=wrong)


# -- the tiny ddpm backend (the real encode/decode code path at test size) -------------------------------------------


def test_training_on_the_tiny_backend(clip, tmp_path):
    pytest.importorskip("asyrp_bench.diffusion.backends.tiny", reason="the tiny backend has not landed")
    backend = ab.load_backend("tiny", config="tiny16")
    gen = torch.Generator().manual_seed(1)
    ramp = torch.linspace(-1, 1, backend.image_size)
    a, b = torch.rand(2, 3, 3, 1, 1, generator=gen) - 0.5
    x0 = (a * ramp[:, None] + b * ramp[None, :] + 0.1 * torch.randn(3, 3, 16, 16, generator=gen)).clamp(-1, 1)
    # the shared-encoder step equals the engine's on a U-Net with many skips and attention
    torch.manual_seed(0)
    editor = ab.build_editor("additive", backend.h_shape, backend.temb_dim)
    x_T = ab.invert(backend, x0, 8)
    x_edit = x_ref = x_T
    for t, t_next in training_pairs(8, 500)[:2]:
        ours = paired_step(backend, editor, x_edit, x_ref, t, t_next)
        with torch.no_grad():
            engine = (*ab.asyrp_step(backend, x_edit, t, t_next, editor), *ab.asyrp_step(backend, x_ref, t, t_next))
        for got, want in zip(ours, engine, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        x_edit, x_ref = ours[0], ours[2]
    unet = snapshot(backend)
    kwargs = dict(clip=clip, cache=InversionCache(tmp_path / "cache"), t_edit=500, seed=0,
                  overrides={"n_inv_step": 8, "n_train_step": 8, "n_iter": 4, "batch_size": 3, "lr": 2.0})
    trained = train_editor(backend, x0, SOURCE, TARGET, **kwargs)
    assert same(snapshot(backend), unet)
    assert same(snapshot(train_editor(backend, x0, SOURCE, TARGET, **kwargs)), snapshot(trained))
    objective = prepare_objective(clip, x0, SOURCE, TARGET, resolve_recipe("asyrp_paper"))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        initial = ab.build_editor("additive", backend.h_shape, backend.temb_dim)
    pairs = training_pairs(8, 500)
    before = chain_directional_loss(backend, initial, x_T, objective, pairs)
    after = chain_directional_loss(backend, trained, x_T, objective, pairs)
    assert after < before - 0.05, (before, after)
