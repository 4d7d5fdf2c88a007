"""Speed of one training step: the shared-encoder paired step vs two engine steps (docs/training.md D2).

    PYTHONPATH=. python benchmarks/training_step.py [--backend tiny] [--threads 1] [--repeats 10]

Prints milliseconds per step (forward of both chains + backward of the edited one) for batch sizes 1, 4, 8.
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", default="tiny")
    parser.add_argument("--config", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import asyrp_bench as ab
    from asyrp_bench.training import paired_step

    backend = ab.load_backend(args.backend, config=args.config)
    torch.manual_seed(0)
    editor = ab.build_editor("additive", backend.h_shape, backend.temb_dim)
    size = backend.image_size

    def timed(fn) -> float:
        fn()
        start = time.perf_counter()
        for _ in range(args.repeats):
            fn()
        return (time.perf_counter() - start) / args.repeats * 1e3

    print(f"backend {args.backend} ({size} px, h {backend.h_shape}), {args.threads} thread(s)")
    for batch in (1, 4, 8):
        gen = torch.Generator().manual_seed(batch)
        x_edit = torch.randn(batch, 3, size, size, generator=gen)
        x_ref = torch.randn(batch, 3, size, size, generator=gen)

        def paired(x_edit: torch.Tensor = x_edit, x_ref: torch.Tensor = x_ref) -> None:
            _, p_edit, _, _ = paired_step(backend, editor, x_edit, x_ref, 500, 475)
            p_edit.square().mean().backward()

        def engine(x_edit: torch.Tensor = x_edit, x_ref: torch.Tensor = x_ref) -> None:
            _, p_edit = ab.asyrp_step(backend, x_edit, 500, 475, editor)
            with torch.no_grad():
                ab.asyrp_step(backend, x_ref, 500, 475)
            p_edit.square().mean().backward()

        print(f"batch {batch}: paired step {timed(paired):7.1f} ms   two engine steps {timed(engine):7.1f} ms")


if __name__ == "__main__":
    main()
