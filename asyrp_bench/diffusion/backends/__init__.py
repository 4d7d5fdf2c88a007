"""Frozen U-Nets behind one encode/decode contract (see :mod:`.base`)."""

from asyrp_bench.diffusion.backends.base import BACKENDS, Backend, Bottleneck, load_backend

__all__ = ["BACKENDS", "Backend", "Bottleneck", "load_backend"]
