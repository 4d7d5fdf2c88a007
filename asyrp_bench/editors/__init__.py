"""f_t variants behind one contract (see :mod:`.base`)."""

from asyrp_bench.editors.base import EDITORS, Editor, build_editor

__all__ = ["EDITORS", "Editor", "build_editor"]
