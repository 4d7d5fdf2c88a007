"""f_t variants behind one contract (see :mod:`.base`) and their files.

Imports only the base modules and diffusion/ (docs/architecture.md, checked by tests/test_layers.py).
"""

from asyrp_bench.editors.base import EDITORS, Editor, build_editor

__all__ = ["EDITORS", "Editor", "build_editor"]
