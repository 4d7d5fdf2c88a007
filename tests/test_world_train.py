"""``asyrp-bench world train`` runs every model a few steps into a temporary folder, resumes, and loads back."""

from __future__ import annotations

import contextlib
import json

import torch
from typer.testing import CliRunner

from asyrp_bench.cli import app
from asyrp_bench.world import assets, recipe, train
from asyrp_bench.world.recipe import TrainSpec


def test_train_command_runs_every_model_a_few_steps(tmp_path):
    out, work = tmp_path / "world", tmp_path / "work"
    threads = torch.get_num_threads()
    try:  # one thread, as the shipped files were trained (and robust on a busy machine)
        result = CliRunner().invoke(app, ["world", "train", "--out", str(out), "--work", str(work), "--steps", "2",
                                          "--threads", "1"])
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    card = json.loads((out / "world_card.json").read_text())
    assert set(card["models"]) == set(recipe.MODEL_NAMES)
    assert all(info["steps"] == 2 and info["batch_size"] == 8 for info in card["models"].values())
    # every folder loads through the same path as the shipped files
    unet = assets.load_unet(out)
    assert unet(torch.zeros(1, 3, 32, 32), torch.tensor([10])).sample.shape == (1, 3, 32, 32)
    model, _, tokenizer = assets.load_clip(out)
    assert model.encode_text(tokenizer(["a photo of a smiling face."])).shape == (1, 64)
    parser, sidecar = assets.load_parser(out)
    assert parser(torch.zeros(1, 3, 32, 32)).shape == (1, len(sidecar["classes"]), 32, 32)
    from asyrp_bench.world.nets import WorldFaceEmbedder, WorldOracle

    z, found = WorldFaceEmbedder.load(str(out / "identity")).embed(torch.rand(2, 3, 32, 32))
    assert z.shape == (2, train.IDENTITY_DIM) and bool(found.all())
    assert set(WorldOracle.load(str(out / "oracle")).predict(torch.rand(2, 3, 32, 32))) == {"smile", "tan", "glasses"}


def _linear_run(work, interrupt_at=None):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)

    def loss_fn(step, gen):
        if step == interrupt_at:
            raise KeyboardInterrupt
        x = torch.randn(8, 4, generator=gen)
        return (model(x) - x.sum(1, keepdim=True)).pow(2).mean()

    spec = TrainSpec(steps=6, batch_size=8, lr=0.05, seed=3, warmup=1, ema_decay=0.9, checkpoint_every=2)
    return train._run_loop("toy", model, spec, work, loss_fn, lambda record: None)


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path):
    whole, info = _linear_run(tmp_path / "a")
    with contextlib.suppress(KeyboardInterrupt):
        _linear_run(tmp_path / "b", interrupt_at=3)
    assert int(torch.load(tmp_path / "b" / "toy.ckpt.pt", weights_only=True)["step"]) == 2
    resumed, _ = _linear_run(tmp_path / "b")
    for key, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    assert info["faces_seen"] == 48 and info["final_loss"] is not None


def test_step_data_is_a_function_of_the_step():
    a = train.step_faces("oracle", 5, 4)
    b = train.step_faces("oracle", 5, 4)
    c = train.step_faces("oracle", 6, 4)
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    spec = recipe.TRAIN_SPECS["ddpm"]
    assert torch.equal(torch.randn(3, generator=train.step_generator(spec, 7)),
                       torch.randn(3, generator=train.step_generator(spec, 7)))
