"""Bounds on what a suite document may cost to read, and on the numbers it may hold (docs/suites.md, "Limits").

YAML aliases let a few hundred bytes describe a document of billions of nodes (the "billion laughs" bomb).
PyYAML's ``safe_load`` shares aliased nodes, so building the data is cheap, but every walk that visits each key
path (our file:line locations, pydantic validation, hashing) pays the expanded size. So the expanded size is
measured on the node graph first, in time linear in the number of distinct nodes, and refused above a limit.

Non-finite numbers (``.nan``, ``.inf``, ``1e400``) are valid YAML floats but never a valid setting: they would
reach hashes (``allow_nan=False``) or the sampler. They are refused with the key and its file:line.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import yaml

from asyrp_bench.errors import ConfigError

MAX_SUITE_BYTES = 1 << 20
"""A suite file is configuration, not data: 1 MiB is far above any real suite (the paper suites are < 4 kB)."""

MAX_EXPANDED_NODES = 100_000
"""Nodes of the document with every alias expanded; real suites have a few hundred."""


def check_text_size(text: str, where: str) -> None:
    size = len(text.encode("utf-8", errors="replace"))
    if size > MAX_SUITE_BYTES:
        raise ConfigError(f"{where}: the suite file is {size:,} bytes; the limit is {MAX_SUITE_BYTES:,} "
                          "(a suite is configuration: put data in files it names)")


def check_expanded_size(root: yaml.Node, where: str) -> None:
    """Refuse a node graph whose alias-expanded size exceeds :data:`MAX_EXPANDED_NODES`."""
    sizes: dict[int, int] = {}
    # Iterative post-order so that deep nesting cannot exhaust the Python stack either.
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    on_path: set[int] = set()
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        children = _children(node)
        if not children_done:
            if key in on_path:
                raise ConfigError(f"{where}: the YAML document refers to itself (recursive alias)")
            on_path.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
            continue
        on_path.discard(key)
        total = 1 + sum(sizes.get(id(child), 1) for child in children)
        if total > MAX_EXPANDED_NODES:
            raise ConfigError(f"{where}: the document expands to more than {MAX_EXPANDED_NODES:,} values "
                              "through YAML aliases (an alias bomb?); refusing to read it")
        sizes[key] = total


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def non_finite_paths(data: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Key paths whose value is a float NaN or ±inf (``1e400`` reads as inf)."""
    if isinstance(data, float):
        return [] if math.isfinite(data) else [prefix]
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    found: list[tuple[str | int, ...]] = []
    for key, value in items:
        found.extend(non_finite_paths(value, (*prefix, key)))
    return found


def refuse_non_finite(data: Any, describe: Callable[[tuple[str | int, ...]], str]) -> None:
    """Raise one ConfigError listing every non-finite number; ``describe`` renders a key path with its place."""
    bad = non_finite_paths(data)
    if bad:
        lines = [f"{describe(path)}: not a finite number (NaN and infinity are never valid settings)"
                 for path in bad]
        raise ConfigError("\n".join(lines))
