"""asyrp-bench: an evaluation harness for h-space editing of frozen diffusion models (Asyrp, ICLR 2023)."""

from __future__ import annotations

__version__ = "0.1.0"
