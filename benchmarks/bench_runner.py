"""Where a run's time goes: phases per cell of a suite, and the harness's own overhead (not a test).

    python benchmarks/bench_runner.py suites/ci_tiny.yaml            # a shipped suite
    python benchmarks/bench_runner.py suites/quickstart.yaml --threads 2
    python benchmarks/bench_runner.py --tiny                          # tiny backend + tiny test models, 4 images

Runs the suite into a temporary folder with a fresh cache (so inversions and training are computed, not loaded),
then prints the manifest's per-cell timings (editor = training or loading, edit, score) and the wall time left
over: backend loading, inversion and reconstruction, the baseline, tables and the report.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def tiny_suite(folder: Path) -> Path:
    """The end-to-end test's suite (tests/test_runner.py): tiny backend, 4 images, tiny CLIP/segmenter/extractor."""
    sys.path.insert(0, str(REPO))
    import yaml

    from asyrp_bench.images import save_png
    from tests._metric_models import ensure_tiny_extractor, save_smp_folder, save_tiny_clip_dir, varied_images

    save_tiny_clip_dir(folder / "clip")
    save_smp_folder(folder / "seg")
    ensure_tiny_extractor()
    (folder / "imgs").mkdir()
    for i, image in enumerate(varied_images(4, 32, seed=5)):
        save_png(image.float() / 127.5 - 1, folder / "imgs" / f"{i:03d}.png")
    clip = f"local-dir:{folder / 'clip'}"
    suite = {
        "schema_version": 1, "name": "bench_tiny", "backend": {"name": "tiny", "preset": "tiny"},
        "data": {"folder": str(folder / "imgs")}, "sampler": {"n_inv_step": 6, "n_test_step": 6},
        "editors": [{"variant": "additive"}, {"variant": "adagn"}],
        "train": {"recipe": "asyrp_paper", "overrides": {"clip_model": clip, "n_inv_step": 6, "n_train_step": 6}},
        "edits": [{"name": "smiling", "source": "face", "target": "smiling face", "t_edit": 500, "t_boost": 200},
                  {"name": "tanned", "source": "face", "target": "tanned face", "t_edit": 500, "t_boost": 200}],
        "seed": 3,
        "metrics": [{"name": "clip_directional", "params": {"model": clip}},
                    {"name": "seg_consistency", "params": {"segmenter": str(folder / "seg")}},
                    {"name": "fid", "params": {"feature_extractor": "asyrp-test-tiny"}},
                    {"name": "kid", "params": {"feature_extractor": "asyrp-test-tiny"}}],
        "output": {"batch_size": 4},
    }
    path = folder / "bench_tiny.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", nargs="?", type=Path)
    parser.add_argument("--tiny", action="store_true", help="the tiny end-to-end suite of the tests")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", dest="sets", action="append", default=[])
    args = parser.parse_args()
    if (args.suite is None) == (not args.tiny):
        parser.error("give a suite file or --tiny")

    import torch

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="bench_runner_"))
    os.environ["ASYRP_BENCH_HOME"] = str(work / "home")  # fresh cache: everything is computed
    suite_path = tiny_suite(work) if args.tiny else args.suite

    from asyrp_bench.runner import run_suite
    from asyrp_bench.suite import load_suite

    suite = load_suite(suite_path, args.sets)
    start = time.perf_counter()
    run_dir = run_suite(suite, work / "results", show_progress=False)
    wall = time.perf_counter() - start

    manifest = json.loads((run_dir / "manifest.json").read_text())
    print(f"{suite.name}: {len(manifest['cells'])} cells, {args.threads} thread(s), wall {wall:.1f} s")
    print(f"{'cell':40s} {'editor':>8s} {'edit':>8s} {'score':>8s}")
    in_cells = 0.0
    for cell_id, cell in manifest["cells"].items():
        seconds = cell.get("seconds", {})
        in_cells += sum(seconds.values())
        print(f"{cell_id:40s} " + " ".join(f"{seconds.get(k, float('nan')):8.2f}" for k in ("editor", "edit", "score")))
    print(f"outside cells (backend load, inversion, reconstruction, tables, report): {wall - in_cells:.1f} s")
    print(f"run folder: {run_dir}")


if __name__ == "__main__":
    main()
