"""Seconds per image of each metric at full model size on CPU (random weights in the real architectures).

Builds ViT-B-16-quickgelu (open_clip checkpoint), torch-fidelity's InceptionV3 file, an InceptionResnetV1
vggface2-format file and a small smp segmenter in a temporary folder, then scores N 256 px image pairs with each
metric separately and prints a table. Weights are random, so only the timings mean anything.

    OMP_NUM_THREADS=1 python benchmarks/metrics_cpu.py --n 8
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    import open_clip
    import safetensors.torch

    from asyrp_bench.metrics import ScoringContext, ScoringInputs, score
    from tests._metric_models import (
        save_inception_compat,
        save_smp_folder,
        save_vggface2_format,
        varied_images,
    )

    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        t0 = time.perf_counter()
        clip = open_clip.create_model("ViT-B-16-quickgelu")
        safetensors.torch.save_file(clip.state_dict(), str(tmp / "vitb16.safetensors"))
        inception = save_inception_compat(tmp / "inception.pth")
        vggface2 = save_vggface2_format(tmp / "vggface2.pt")
        seg = save_smp_folder(tmp / "seg")
        print(f"built models in {time.perf_counter() - t0:.1f} s; torch threads {torch.get_num_threads()}")

        n, size = args.n, args.size
        inputs = ScoringInputs([f"{i:04d}" for i in range(n)], varied_images(n, size, 0), varied_images(n, size, 1),
                               varied_images(n, size, 2), src_text="face", tgt_text="smiling face")
        specs = {
            "clip_directional": {"model": "ViT-B-16-quickgelu", "pretrained": str(tmp / "vitb16.safetensors")},
            "seg_consistency (tiny smp)": {"segmenter": str(seg)},
            "fid": {"weights": str(inception)},
            "identity (center_crop)": {"weights": str(vggface2), "no_face": "center_crop"},
        }
        print(f"{'metric':28s} {'first run s':>12s} {'s/image':>9s}")
        for label, params in specs.items():
            name = label.split(" ")[0]
            ctx = ScoringContext(batch_size=args.batch_size)
            start = time.perf_counter()
            score(inputs, [{"name": name, "params": params}], ctx)
            total = time.perf_counter() - start
            print(f"{label:28s} {total:12.2f} {total / n:9.3f}")


if __name__ == "__main__":
    main()
