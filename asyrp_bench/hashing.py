"""The one canonical JSON encoding behind every config hash and cache key (docs/architecture.md, "Hashes").

Sorted keys, compact separators, ASCII only, no NaN: the same data always gives the same bytes, so a hash
written into a run folder today still matches tomorrow. Paths encode as their string, tuples and sets as lists
(sets sorted), so callers may pass metric parameters or suite data without converting them first.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def _encode_extra(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, tuple):
        return list(obj)
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    raise TypeError(f"value {obj!r} is not JSON-serialisable")


def canonical_json(data: Any) -> str:
    """Sorted-key, compact JSON: the same data always gives the same bytes."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False,
                      default=_encode_extra)


def config_hash(data: Any) -> str:
    """sha256 hex digest of :func:`canonical_json`."""
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()
