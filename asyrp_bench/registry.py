"""One small generic registry for plug-ins (backends, editors, metrics).

Implementations register themselves by snake_case name with a decorator; heavy plug-ins register a lazy
``"module:attr"`` target instead, so that ``asyrp-bench --help`` and ``validate`` never import open_clip,
torch-fidelity or facenet-pytorch.

>>> EDITORS = Registry("editor")
>>> @EDITORS.register("additive")
... class AdditiveEditor: ...
>>> EDITORS.get("additive").__name__
'AdditiveEditor'
"""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from asyrp_bench.errors import UnknownNameError

T = TypeVar("T")

_NAME_RE = re.compile(r"^[a-z][a-z0-9_\-]*$")


class Registry(Generic[T]):
    """A name -> object mapping with helpful misses.

    Args:
        kind: what the registry holds ("backend", "editor", "metric"); used in error messages.
        base_cls: if given, every registered class must subclass it (checked on registration or on the first
            ``get`` of a lazy entry).
    """

    def __init__(self, kind: str, base_cls: type | None = None) -> None:
        self.kind = kind
        self.base_cls = base_cls
        self._entries: dict[str, T | str] = {}

    def register(self, name: str, target: str | None = None) -> Callable[[T], T]:
        """Register ``name``; as a decorator, or eagerly with ``target="pkg.module:Attr"`` (lazy import)."""
        if not _NAME_RE.match(name):
            raise ValueError(f"{self.kind} name {name!r} must be lower snake_case")
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        if target is not None:
            if ":" not in target:
                raise ValueError(f"lazy target {target!r} must look like 'package.module:Attr'")
            self._entries[name] = target
            return lambda obj: obj

        def decorator(obj: T) -> T:
            self._check(name, obj)
            self._entries[name] = obj
            return obj

        return decorator

    def _check(self, name: str, obj: Any) -> None:
        if self.base_cls is not None and not (isinstance(obj, type) and issubclass(obj, self.base_cls)):
            raise TypeError(f"{self.kind} {name!r} must be a subclass of {self.base_cls.__name__}, got {obj!r}")

    def get(self, name: str) -> T:
        """Return the object registered as ``name`` (importing a lazy entry on first use)."""
        if name not in self._entries:
            raise UnknownNameError(self.unknown_message(name))
        entry = self._entries[name]
        if isinstance(entry, str):
            module_name, attr = entry.split(":", 1)
            obj = getattr(importlib.import_module(module_name), attr)
            self._check(name, obj)
            self._entries[name] = obj
            entry = obj
        return entry  # type: ignore[return-value]

    def unknown_message(self, name: str) -> str:
        valid = self.names()
        close = difflib.get_close_matches(name, valid, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return f"Unknown {self.kind} {name!r}.{hint} Valid {self.kind}s: {', '.join(valid) or '(none)'}."

    def names(self) -> list[str]:
        return sorted(self._entries)

    def is_loaded(self, name: str) -> bool:
        return name in self._entries and not isinstance(self._entries[name], str)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
