"""Time encode and decode of the backends on CPU (not a test; speed is measured here, never asserted).

    python benchmarks/bench_backends.py                     # tiny, tiny16 and the CelebA-HQ 256 architecture
    python benchmarks/bench_backends.py --skip-celeba --repeats 50
    python benchmarks/bench_backends.py --threads 1

The CelebA model gets seeded random weights (same architecture and cost as celeba_hq.ckpt). Each cell is the
median over ``--repeats`` calls after one warm-up, under ``torch.no_grad``. An Asyrp step above t_edit costs
one encode + two decodes; below it one encode + one decode.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import torch


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up (allocations, oneDNN primitive selection)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def bench(name: str, backend: torch.nn.Module, batch: int, repeats: int) -> dict[str, object]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, backend.in_channels, backend.image_size, backend.image_size, generator=generator)
    t = torch.full((batch,), 500)
    with torch.no_grad():
        bottleneck = backend.encode(x, t)
        encode_ms = _median_ms(lambda: backend.encode(x, t), repeats)
        decode_ms = _median_ms(lambda: backend.decode(bottleneck), repeats)
    return {"backend": name, "batch": batch, "encode_ms": encode_ms, "decode_ms": decode_ms,
            "asyrp_step_ms": encode_ms + 2 * decode_ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per cell for tiny (CelebA: --celeba-repeats)")
    parser.add_argument("--celeba-repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--skip-celeba", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from asyrp_bench.diffusion.backends import load_backend
    from asyrp_bench.diffusion.backends.ddpm import DDPMBackend
    from asyrp_bench.diffusion.backends.tiny import init_weights_

    rows = []
    for preset in ("tiny", "tiny16"):
        backend = load_backend("tiny", config=preset)
        rows += [bench(f"tiny:{preset}", backend, batch, args.repeats) for batch in (1, 4)]
    if not args.skip_celeba:
        celeba = DDPMBackend.build("celeba_hq", device="meta").to_empty(device="cpu")
        init_weights_(celeba, torch.Generator().manual_seed(0))
        celeba.freeze()
        rows += [bench("ddpm:celeba_hq (256 px)", celeba, batch, args.celeba_repeats) for batch in (1, 4)]

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"backend encode/decode on CPU ({platform.processor() or platform.machine()}, "
                        f"{torch.get_num_threads()} threads, torch {torch.__version__}), median ms")
    for column in ("backend", "batch", "encode ms", "decode ms", "encode + 2 decodes ms", "per image ms"):
        table.add_column(column, justify="right" if column != "backend" else "left")
    for row in rows:
        step = row["asyrp_step_ms"]
        table.add_row(row["backend"], str(row["batch"]), f"{row['encode_ms']:.1f}", f"{row['decode_ms']:.1f}",
                      f"{step:.1f}", f"{step / row['batch']:.1f}")
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
