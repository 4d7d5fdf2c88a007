"""End to end on the tiny backend: run, determinism, kill-and-resume, compare gate, dry run, report.

Small real models in their real formats (tests/_metric_models.py): an open_clip ``local-dir:`` CLIP for training
and S_dir, an smp segmenter, and a torch-fidelity extractor for FID/KID.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from asyrp_bench.errors import ConfigError
from asyrp_bench.results import TMP_PREFIX, RunDir

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
TABLES = ("scores.csv", "summary.csv")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from asyrp_bench.images import save_png
    from tests._metric_models import ensure_tiny_extractor, save_smp_folder, save_tiny_clip_dir, varied_images

    root = tmp_path_factory.mktemp("models")
    save_tiny_clip_dir(root / "clip")
    save_smp_folder(root / "seg")
    ensure_tiny_extractor()
    (root / "imgs").mkdir()
    for i, image in enumerate(varied_images(4, 32, seed=5)):
        save_png(image.float() / 127.5 - 1, root / "imgs" / f"{i:03d}.png")
    return {"root": root}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # One intra-op thread: the machine is shared, and CPU float reductions (so the last bits of every number)
    # depend on the thread count; byte-identity is promised for the same machine and thread count.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def suite_file(models: dict[str, Path], folder: Path, **changes) -> Path:
    root = models["root"]
    clip = f"local-dir:{root / 'clip'}"
    data = {
        "schema_version": 1,
        "name": "tiny_e2e",
        "backend": {"name": "tiny", "preset": "tiny"},
        "data": {"folder": str(root / "imgs")},
        "sampler": {"n_inv_step": 6, "n_test_step": 6},
        "editors": [{"variant": "additive"}],
        "train": {"recipe": "asyrp_paper",
                  "overrides": {"clip_model": clip, "n_inv_step": 6, "n_train_step": 6, "n_train_img": 4}},
        "edits": [{"name": "smiling", "source": "face", "target": "smiling face", "t_edit": 500, "t_boost": 200},
                  {"name": "tanned", "source": "face", "target": "tanned face", "t_edit": 500, "t_boost": 200}],
        "seed": 3,
        "metrics": [{"name": "clip_directional", "params": {"model": clip}},
                    {"name": "seg_consistency", "params": {"segmenter": str(root / "seg")}},
                    {"name": "fid", "params": {"feature_extractor": "asyrp-test-tiny"}},
                    {"name": "kid", "params": {"feature_extractor": "asyrp-test-tiny"}}],
        "output": {"batch_size": 2, "save_images": True, "report": False},
    }
    data.update(changes)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def reference_run(models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory, one_thread: None) -> Path:
    """One uninterrupted run (through the CLI), with its own cache home."""
    from asyrp_bench.cli import app

    home = tmp_path_factory.mktemp("home_ref")
    work = tmp_path_factory.mktemp("ref")
    suite = suite_file(models, work, output={"batch_size": 2, "save_images": True, "report": True})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ASYRP_BENCH_HOME", str(home))
        result = CliRunner().invoke(app, ["run", str(suite), "--out", str(work / "results"), "--device", "cpu",
                                          "--no-progress"])
    assert result.exit_code == 0, result.output
    path = Path(result.output.strip().splitlines()[-1])  # the last line printed is the run folder
    assert path.is_dir()
    return path


def test_run_folder(reference_run: Path) -> None:
    run = RunDir(reference_run)
    assert run.manifest["status"] == "complete"
    assert run.cell_ids() == ["reconstruction", "additive__smiling__s3", "additive__tanned__s3"]
    for cell in run.cell_ids():
        folder = run.cell_dir(cell)
        assert (folder / "cell.yaml").is_file() and len(list((folder / "images").glob("*.png"))) == 4
    assert (run.cell_dir("additive__smiling__s3") / "editor.safetensors").is_file()
    assert len(list((run.cell_dir("reconstruction") / "sources").glob("*.png"))) == 4
    summary = run.summary()
    metrics = set(summary["metric"])
    assert {"clip_directional.s_dir", "seg_consistency.miou", "fid.fid", "kid.kid"} <= metrics
    # S_dir needs an edit's prompts, so the reconstruction baseline has none; everything else is scored there.
    base = summary[summary["cell"] == "reconstruction"]
    assert "clip_directional.s_dir" not in set(base["metric"]) and "fid.fid" in set(base["metric"])
    assert run.env["seeds"]["seeds"] == [3] and run.env["libraries"]["torch"]
    assert run.manifest["splits"] and run.manifest["backends"]["tiny"]["weights_hash"]
    assert (reference_run / "report.md").is_file() and (reference_run / "report.html").is_file()
    assert list((reference_run / "report").glob("grid_*.png"))


def test_same_suite_and_seed_give_identical_tables(models, reference_run, tmp_path, monkeypatch) -> None:
    from asyrp_bench.runner import run_suite
    from asyrp_bench.suite import load_suite

    monkeypatch.setenv("ASYRP_BENCH_HOME", str(tmp_path / "fresh_home"))  # nothing cached: all recomputed
    path = run_suite(load_suite(suite_file(models, tmp_path)), tmp_path / "results", show_progress=False)
    for name in TABLES:
        assert (path / name).read_bytes() == (reference_run / name).read_bytes(), name


def _wait_for(predicate, timeout: float, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if process.poll() is not None:
            out = process.stdout.read().decode() if process.stdout else ""
            raise AssertionError(f"the run ended before it could be killed (exit {process.returncode}):\n{out}")
        time.sleep(0.05)
    raise AssertionError("timed out waiting for the run")


def test_killed_run_resumes_to_the_same_tables(models, reference_run, tmp_path) -> None:
    from asyrp_bench.runner import resume_run

    suite = suite_file(models, tmp_path)
    out = tmp_path / "results"
    script = (
        "import sys, torch; torch.set_num_threads(1)\n"
        "from tests._metric_models import ensure_tiny_extractor; ensure_tiny_extractor()\n"
        "from asyrp_bench.cli import main\n"
        f"sys.argv = ['asyrp-bench', 'run', {str(suite)!r}, '--out', {str(out)!r}, '--device', 'cpu', "
        "'--no-progress']\n"
        "main()\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def second_cell_in_progress() -> bool:
            runs = list((out / "tiny_e2e").glob("*/cells"))
            if not runs:
                return False
            cells = runs[0]
            return (cells / "reconstruction").is_dir() and any(
                p.name.startswith(TMP_PREFIX) and p.name != f"{TMP_PREFIX}reconstruction" for p in cells.iterdir())

        _wait_for(second_cell_in_progress, timeout=600, process=process)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=60)
    (run_dir,) = list((out / "tiny_e2e").iterdir())
    killed = RunDir(run_dir)
    assert killed.manifest["status"] == "running"  # never looks complete
    assert not (run_dir / "summary.csv").exists()
    assert "additive__tanned__s3" not in killed.complete_cells()
    assert any(p.name.startswith(TMP_PREFIX) for p in (run_dir / "cells").iterdir())

    resumed = resume_run(run_dir, show_progress=False)
    assert resumed == run_dir
    assert RunDir(run_dir).manifest["status"] == "complete"
    assert not any(p.name.startswith(TMP_PREFIX) for p in (run_dir / "cells").iterdir())
    for name in TABLES:
        assert (run_dir / name).read_bytes() == (reference_run / name).read_bytes(), name
    # resuming a complete run changes nothing
    before = (run_dir / "summary.csv").read_bytes()
    resume_run(run_dir, show_progress=False)
    assert (run_dir / "summary.csv").read_bytes() == before


def test_compare_gate(models, reference_run, tmp_path) -> None:
    """Two runs of one suite compare clean; a run with a deliberately degraded (reversed) editor fails, naming
    the metric."""
    from safetensors.torch import load_file, save_file

    from asyrp_bench.cli import app
    from asyrp_bench.editors.io import read_editor_header
    from asyrp_bench.runner import run_suite
    from asyrp_bench.suite import load_suite

    runner = CliRunner()
    again = run_suite(load_suite(suite_file(models, tmp_path / "again")), tmp_path / "results", show_progress=False)
    same = runner.invoke(app, ["compare", str(reference_run), str(again)])
    assert same.exit_code == 0, same.output

    checkpoints = {}
    for edit in ("smiling", "tanned"):
        source = RunDir(reference_run).cell_dir(f"additive__{edit}__s3") / "editor.safetensors"
        tensors = load_file(source)
        tensors["conv2.weight"] = -tensors["conv2.weight"]  # Δh reversed: the edit points away from the target
        tensors["conv2.bias"] = -tensors["conv2.bias"]
        header = read_editor_header(source)
        target = tmp_path / f"degraded_{edit}.safetensors"
        from safetensors import safe_open

        with safe_open(str(source), "pt") as handle:
            metadata = handle.metadata()
        save_file(tensors, str(target), metadata=metadata)
        assert header  # a harness editor file, with its metadata
        checkpoints[edit] = str(target)
    degraded_suite = suite_file(models, tmp_path / "degraded", train=None,
                                editors=[{"variant": "additive", "checkpoint": checkpoints}])
    degraded = run_suite(load_suite(degraded_suite), tmp_path / "results", show_progress=False)
    result = runner.invoke(app, ["compare", str(reference_run), str(degraded), "--tolerance", "*=0.01"])
    assert result.exit_code == 1, result.output
    assert "clip_directional.s_dir regressed" in result.output


def test_dry_run_runs_nothing(models, tmp_path) -> None:
    from asyrp_bench.cli import app

    out = tmp_path / "results"
    result = CliRunner().invoke(app, ["run", str(suite_file(models, tmp_path)), "--out", str(out), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "additive__smiling__s3" in result.output and "train 2 editor(s)" in result.output
    assert "4 images" in result.output
    assert not out.exists()


def test_loaded_editor_with_another_interval_is_refused(models, reference_run, tmp_path) -> None:
    from asyrp_bench.runner import run_suite
    from asyrp_bench.suite import load_suite

    trained = RunDir(reference_run).cell_dir("additive__smiling__s3") / "editor.safetensors"
    suite = suite_file(models, tmp_path, train=None,
                       editors=[{"variant": "additive", "checkpoint": str(trained)}],
                       edits=[{"name": "smiling", "source": "face", "target": "smiling face", "t_edit": 400}])
    with pytest.raises(ConfigError, match="trained with t_edit = 500"):
        run_suite(load_suite(suite), tmp_path / "results", show_progress=False)


def test_released_format_checkpoint_is_loaded_not_trained(models, tmp_path) -> None:
    """The paper_released path: a `.pth` in the released Asyrp layout ({"0": DeltaBlock state dict, ...}),
    loaded per edit with the suite's n_train_step, and written into the cell as safetensors with metadata."""
    from asyrp_bench.editors.io import read_editor_header
    from asyrp_bench.runner import run_suite
    from asyrp_bench.suite import load_suite

    generator = torch.Generator().manual_seed(0)
    channels, temb = 32, 64  # the tiny backend's bottleneck and time embedding
    state = {
        "conv1.weight": torch.randn(channels, channels, 1, 1, generator=generator) * 0.1,
        "conv1.bias": torch.zeros(channels), "temb_proj.weight": torch.randn(channels, temb, generator=generator) * 0.1,
        "temb_proj.bias": torch.zeros(channels), "norm2.weight": torch.ones(channels),
        "norm2.bias": torch.zeros(channels), "conv2.weight": torch.randn(channels, channels, 1, 1, generator=generator),
        "conv2.bias": torch.zeros(channels),
    }
    released = tmp_path / "smiling_LC_tiny_t999_ninv6_ngen6_0.pth"
    torch.save({"0": state, "optimizer": {}, "scheduler": {}}, released)
    suite = suite_file(models, tmp_path, train=None,
                       editors=[{"variant": "additive", "label": "released", "n_train_step": 6,
                                 "checkpoint": {"smiling": str(released), "tanned": str(released)}}])
    run = RunDir(run_suite(load_suite(suite), tmp_path / "results", show_progress=False))
    assert run.manifest["status"] == "complete"
    assert run.manifest["cells"]["released__smiling__s3"]["editor_from"] == "checkpoint"
    header = read_editor_header(run.cell_dir("released__smiling__s3") / "editor.safetensors")
    assert header["n_train_step"] == 6 and header["t_edit"] == 500 and header["loaded_from"] == released.name


def test_an_editor_is_trained_once_for_edits_that_differ_in_strength(models, tmp_path) -> None:
    from asyrp_bench.runner import run_suite
    from asyrp_bench.suite import load_suite

    edit = {"source": "face", "target": "smiling face", "t_edit": 500, "t_boost": 200}
    suite = suite_file(models, tmp_path, edits=[{"name": "smiling", **edit},
                                                {"name": "smiling_half", **edit, "strength": 0.5}])
    run = RunDir(run_suite(load_suite(suite), tmp_path / "results", show_progress=False))
    cells = run.manifest["cells"]
    assert cells["additive__smiling__s3"]["editor_from"] == "trained"
    assert cells["additive__smiling_half__s3"]["editor_from"] == "cache"
    summary = run.summary().set_index(["cell", "metric"])["value"]
    assert summary[("additive__smiling__s3", "clip_directional.s_dir")] != summary[
        ("additive__smiling_half__s3", "clip_directional.s_dir")]


def test_missing_files_fail_before_a_run_folder_exists(models, tmp_path) -> None:
    from asyrp_bench.errors import WeightsNotFoundError
    from asyrp_bench.runner import run_suite
    from asyrp_bench.suite import load_suite

    suite = load_suite(suite_file(models, tmp_path), check=False)
    out = tmp_path / "results"
    broken = suite.model_copy(update={"data": suite.data.model_copy(update={"folder": str(tmp_path / "gone")})})
    with pytest.raises(WeightsNotFoundError, match="gone"):
        run_suite(broken, out, show_progress=False)
    editors = [suite.editors[0].model_copy(update={"checkpoint": {"*": str(tmp_path / "missing.safetensors")}})]
    with pytest.raises(WeightsNotFoundError, match=r"missing\.safetensors"):
        run_suite(suite.model_copy(update={"editors": editors, "train": None}), out, show_progress=False)
    assert not out.exists()


def test_a_run_expands_its_suite_exactly_once(models, tmp_path, monkeypatch) -> None:
    """The suite is resolved once into a Plan shared by preflight, manifest and runner (issue 9)."""
    from asyrp_bench import suite as suite_module
    from asyrp_bench.runner import run_suite
    from asyrp_bench.suite import load_suite

    calls: list[str] = []
    real_expand = suite_module.expand

    def counting_expand(suite):
        calls.append(suite.name)
        return real_expand(suite)

    monkeypatch.setattr(suite_module, "expand", counting_expand)
    loaded = load_suite(suite_file(models, tmp_path))
    path = run_suite(loaded, tmp_path / "results", show_progress=False)
    assert (path / "summary.csv").is_file()
    assert calls == [loaded.name]
