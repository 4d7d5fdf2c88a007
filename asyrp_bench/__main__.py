"""``python -m asyrp_bench``: the CLI, so ``torchrun -m asyrp_bench ...`` launches it (docs/performance.md)."""

from asyrp_bench.cli import main

if __name__ == "__main__":
    main()
