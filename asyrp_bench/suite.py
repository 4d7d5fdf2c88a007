"""Suites: the declarative description of a benchmark run (DESIGN §5).

A suite is data only. It is read from YAML, merged over its ``include:`` base files (deep merge, later keys
win; lists are replaced, not concatenated), then ``--set key.path=value`` overrides are applied (values are
parsed as YAML), and the result is validated by a strict pydantic schema (``extra="forbid"`` everywhere).
Precedence: ``--set`` > the suite file > its includes (in order, later wins) > schema defaults.

Every error names the key, the file and the line it came from, with a "did you mean" for misspelled keys::

    suites/paper_table1.yaml:12: editors[0].varaint: unknown key. Did you mean 'variant'?

:func:`expand` turns a suite into cells, one per backend × editor × edit × seed, each with a ``config_hash``
over its semantic fields only (sorted canonical JSON; output options, device and batch size never enter it,
and paths enter it by file name only; the files' content hashes are recorded in the run manifest).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import os
import re
import types
import typing
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from asyrp_bench.errors import AsyrpBenchError, ConfigError
from asyrp_bench.hashing import config_hash
from asyrp_bench.suite_guard import check_expanded_size, check_text_size, refuse_non_finite

SCHEMA_VERSION = 1
"""The suite schema version this package reads and writes."""

NUM_TRAIN_TIMESTEPS = 1000  # spec §1.1: T = 1000 for every supported backbone

_NAME = r"^[a-z][a-z0-9_]*$"
_LABEL = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"

Location = tuple[str, int | None]  # (file or "--set ...", 1-based line or None)
KeyPath = tuple[str | int, ...]


# ---------------------------------------------------------------------------------------------------------
# schema
# ---------------------------------------------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BackendSpec(_Strict):
    """The frozen diffusion model. ``asyrp-bench ls backends`` lists names and presets.

    ``weights`` is a weights-registry key (``asyrp-bench doctor``) or a path (relative to the file that names
    it); ``preset`` names one of the backend's presets; ``config`` is a config dict instead of a preset.
    """

    name: str
    weights: str | None = None
    preset: str | None = None
    config: dict[str, Any] | None = None
    label: Annotated[str, Field(pattern=_LABEL)] | None = None

    @model_validator(mode="after")
    def _one_config(self) -> BackendSpec:
        if self.preset is not None and self.config is not None:
            raise ValueError("give either 'preset' or 'config', not both")
        return self

    @property
    def display(self) -> str:
        """The backend's name in tables: ``label``, else the preset, else the backend name."""
        return self.label or self.preset or self.name


class DataSpec(_Strict):
    """The images: a named split (``asyrp-bench ls splits``) or any folder of images.

    ``root`` points a split at the user's copy of its images (for CelebA-HQ, the test folder of the
    DiffusionCLIP/StyleMapGAN download; see :mod:`asyrp_bench.data`). ``offset`` skips the first images of the
    split's order and ``limit`` keeps N after that (train and evaluate on disjoint parts of one split).
    """

    split: str | None = None
    folder: str | None = None
    root: str | None = None
    limit: Annotated[int, Field(ge=1)] | None = None
    offset: Annotated[int, Field(ge=0)] = 0

    @model_validator(mode="after")
    def _split_or_folder(self) -> DataSpec:
        if (self.split is None) == (self.folder is None):
            raise ValueError("give exactly one of 'split' (a named split) or 'folder' (a folder of images)")
        if self.folder is not None and self.root is not None:
            raise ValueError("'root' belongs to a named split; a 'folder' is its own root")
        return self


class SamplerSpec(_Strict):
    """DDIM grids (spec §1.3): ``n_inv_step`` steps invert x0 to x_T, ``n_test_step`` steps generate.

    The phases' η are fixed by the method (spec §5.3): η = 0 for t ≥ t_boost, η = 1 below t_boost (boosting).
    """

    n_inv_step: Annotated[int, Field(ge=2, le=NUM_TRAIN_TIMESTEPS)] = 40
    n_test_step: Annotated[int, Field(ge=2, le=NUM_TRAIN_TIMESTEPS)] = 40


class TrainSpec(_Strict):
    """How an editor is trained: a named recipe (``asyrp-bench ls recipes``) plus overrides of its fields.

    ``data`` selects the training images (default: the suite's ``data``; the paper trains on training images
    and evaluates on the test split, so the paper suites set it).
    """

    recipe: str = "asyrp_paper"
    overrides: dict[str, Any] = Field(default_factory=dict)
    data: DataSpec | None = None


class EditorSpec(_Strict):
    """One f_t variant (``asyrp-bench ls editors``) with constructor ``params``.

    Either it is trained (with the suite's ``train`` or its own), or ``checkpoint`` loads it instead: one file
    or weights key for every edit, or a mapping edit name -> file or weights key (e.g. the five released Asyrp
    checkpoints). ``n_train_step`` is the grid a loaded editor was trained on when its file does not record
    it (the released files: 40); Δh is scaled by n_train_step / n_test_step (spec §2.4). ``label`` names it
    in tables and folders (default: the variant), so a suite can hold the same variant twice.
    """

    variant: str
    label: Annotated[str, Field(pattern=_LABEL)] | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    checkpoint: dict[str, str] | None = None
    n_train_step: Annotated[int, Field(ge=1, le=NUM_TRAIN_TIMESTEPS)] | None = None
    train: TrainSpec | None = None

    @field_validator("checkpoint", mode="before")
    @classmethod
    def _checkpoint_shorthand(cls, value: Any) -> Any:
        # ``checkpoint: file`` means the same file for every edit; stored as {"*": file}.
        return {"*": value} if isinstance(value, str | os.PathLike) else value

    @model_validator(mode="after")
    def _train_or_load(self) -> EditorSpec:
        if self.checkpoint is not None and self.train is not None:
            raise ValueError("an editor is either loaded ('checkpoint') or trained ('train'), not both")
        if self.n_train_step is not None and self.checkpoint is None:
            raise ValueError("'n_train_step' describes a loaded checkpoint; a trained editor records its own")
        return self

    @property
    def display(self) -> str:
        return self.label or self.variant


class EditSpec(_Strict):
    """One edit: the prompt pair of spec §4.5 and the interval of spec §5 (t_edit, t_boost on the 0…999 scale).

    ``t_boost: null`` turns quality boosting off. ``strength`` scales Δh at test time (spec §7.2).
    ``train_overrides`` are recipe fields for this edit only, applied over the editor's recipe overrides (the
    official scripts tune lr and loss weights per attribute; an edit that recolours every skin pixel needs a
    weaker L1 term than one that bends the mouth). They do not apply to loaded checkpoints.
    """

    name: Annotated[str, Field(pattern=_NAME)]
    source: Annotated[str, Field(min_length=1)]
    target: Annotated[str, Field(min_length=1)]
    t_edit: Annotated[int, Field(ge=0, le=NUM_TRAIN_TIMESTEPS - 1)]
    t_boost: Annotated[int, Field(ge=0, le=NUM_TRAIN_TIMESTEPS - 1)] | None = 167
    strength: float = 1.0
    train_overrides: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _boost_below_edit(self) -> EditSpec:
        # spec §5.2: the official code does not guard against t_edit < t_boost; we do.
        if self.t_boost is not None and self.t_boost > self.t_edit:
            raise ValueError(f"t_boost ({self.t_boost}) must not exceed t_edit ({self.t_edit})")
        if self.source.strip() == self.target.strip():
            raise ValueError("source and target prompts are identical; the CLIP direction would be zero")
        return self


class MetricSpec(_Strict):
    """A metric (``asyrp-bench ls metrics``) and its parameters; the same block ``asyrp-bench score`` reads."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    label: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")] | None = None  # <label>.<key>; default: name

    @model_serializer(mode="wrap")
    def _drop_unset_label(self, handler: Any) -> Any:  # unlabelled entries serialise as before (golden runs)
        data = handler(self)
        if data.get("label") is None:
            data.pop("label", None)
        return data


class ReferenceSpec(_Strict):
    """Published numbers shown beside ours in reports; never mixed into our tables or comparisons.

    ``values`` maps metric name -> edit name -> value. ``note`` says what is known about the numbers (units,
    image set) and is printed with them.
    """

    label: str
    source: str
    note: str = ""
    values: dict[str, dict[str, float]]


class OutputSpec(_Strict):
    """What a run writes besides the tables. None of these enter a config hash."""

    save_images: bool = True
    batch_size: Annotated[int, Field(ge=1)] = 8
    report: bool = True


class Suite(_Strict):
    """A validated suite. Build one with :func:`load_suite` (files) or :func:`suite_from_dict`."""

    schema_version: int
    name: Annotated[str, Field(pattern=_LABEL)]
    description: str = ""
    backend: list[BackendSpec]
    data: DataSpec
    sampler: SamplerSpec = Field(default_factory=SamplerSpec)
    editors: Annotated[list[EditorSpec], Field(min_length=1)]
    train: TrainSpec | None = None
    edits: Annotated[list[EditSpec], Field(min_length=1)]
    seeds: Annotated[list[int], Field(min_length=1)]
    metrics: list[MetricSpec] = Field(default_factory=list)
    reference: list[ReferenceSpec] = Field(default_factory=list)
    output: OutputSpec = Field(default_factory=OutputSpec)

    _source: str | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if isinstance(data.get("backend"), dict):
            data["backend"] = [data["backend"]]
        if "seed" in data:
            if "seeds" in data:
                raise ValueError("give 'seed' or 'seeds', not both")
            seed = data.pop("seed")
            data["seeds"] = [seed] if not isinstance(seed, list) else seed
        if isinstance(data.get("metrics"), list):
            data["metrics"] = [{"name": m} if isinstance(m, str) else m for m in data["metrics"]]
        return data

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value > SCHEMA_VERSION:
            raise ValueError(f"schema_version {value} is newer than this asyrp-bench reads ({SCHEMA_VERSION}); "
                             "upgrade asyrp-bench")
        if value < 1:
            raise ValueError("schema_version starts at 1")
        return value

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError(f"seeds must be unique, got {value}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Suite:
        _unique([b.display for b in self.backend], "backend labels (set 'label' to tell them apart)")
        _unique([e.display for e in self.editors], "editor labels (set 'label' to tell them apart)")
        _unique([e.name for e in self.edits], "edit names")
        _unique([m.label or m.name for m in self.metrics], "metric labels (set 'label' to tell them apart)")
        edit_names = {e.name for e in self.edits}
        for editor in self.editors:
            if editor.checkpoint is None:
                if editor.train is None and self.train is None:
                    raise ValueError(f"editor {editor.display!r} has neither 'checkpoint' nor a 'train' recipe "
                                     "(add a suite-level 'train:' or a 'checkpoint:')")
                continue
            keys = set(editor.checkpoint)
            if keys == {"*"}:
                continue
            unknown = sorted(keys - edit_names)
            if unknown:
                raise ValueError(f"editor {editor.display!r}: checkpoint for unknown edit(s) {unknown}; "
                                 f"edits are {sorted(edit_names)}")
            missing = sorted(edit_names - keys)
            if missing:
                raise ValueError(f"editor {editor.display!r}: no checkpoint for edit(s) {missing}")
        metric_names = {m.label or m.name for m in self.metrics}
        for ref in self.reference:
            for metric, per_edit in ref.values.items():
                if metric not in metric_names:
                    raise ValueError(f"reference {ref.label!r} names metric {metric!r}, which the suite does not "
                                     f"compute (metrics: {sorted(metric_names)})")
                for edit in per_edit:
                    if edit not in edit_names:
                        raise ValueError(f"reference {ref.label!r} names edit {edit!r}, not one of "
                                         f"{sorted(edit_names)}")
        return self

    @property
    def source(self) -> str | None:
        """The file this suite was loaded from (None when built from a dict)."""
        return self._source

    def resolved_dict(self) -> dict[str, Any]:
        """Plain data of the whole suite after include, ``--set`` and defaults (written as suite.resolved.yaml)."""
        data = self.model_dump(mode="json")
        for editor in data["editors"]:
            if editor["checkpoint"] is not None and set(editor["checkpoint"]) == {"*"}:
                editor["checkpoint"] = editor["checkpoint"]["*"]
        return data

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.resolved_dict(), sort_keys=False, allow_unicode=True, width=110)


def _unique(values: list[str], what: str) -> None:
    seen: set[str] = set()
    dupes = sorted({v for v in values if v in seen or seen.add(v)})  # type: ignore[func-returns-value]
    if dupes:
        raise ValueError(f"duplicate {what}: {dupes}")


# ---------------------------------------------------------------------------------------------------------
# YAML with locations, includes and --set
# ---------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class _Raw:
    """Merged plain data and where each key path was last set."""

    data: dict[str, Any]
    locations: dict[KeyPath, Location]


def _read_yaml(path: Path) -> _Raw:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"suite file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read suite file {path}: {error}") from None
    check_text_size(text, str(path))
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return _Raw({}, {})
        check_expanded_size(node, str(path))
        data = loader.construct_document(node)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:{node.start_mark.line + 1}: a suite file must be a mapping of keys, "
                          f"got {type(data).__name__}")
    locations: dict[KeyPath, Location] = {(): (str(path), node.start_mark.line + 1)}
    _walk_locations(node, (), str(path), locations)
    return _Raw(data, locations)


def _walk_locations(node: yaml.Node, prefix: KeyPath, file: str, out: dict[KeyPath, Location]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ConfigError(f"{file}:{line}: duplicate key {_dotted((*prefix, key))!r} "
                                  f"(first given on line {seen[key]})")
            seen[key] = line
            out[(*prefix, key)] = (file, line)
            _walk_locations(value_node, (*prefix, key), file, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            out[(*prefix, index)] = (file, item.start_mark.line + 1)
            _walk_locations(item, (*prefix, index), file, out)


def _merge(base: _Raw, over: _Raw) -> _Raw:
    """Deep-merge ``over`` onto ``base``: mappings merge key by key, everything else is replaced."""
    data = copy.deepcopy(base.data)
    locations = dict(base.locations)

    def merge_into(target: dict[str, Any], source: dict[str, Any], prefix: KeyPath) -> None:
        for key, value in source.items():
            path = (*prefix, key)
            if isinstance(value, dict) and isinstance(target.get(key), dict):
                merge_into(target[key], value, path)
                locations[path] = over.locations.get(path, locations.get(path, ("?", None)))
                continue
            for stale in [p for p in locations if p[: len(path)] == path]:
                del locations[stale]
            target[key] = copy.deepcopy(value)
            locations.update({p: loc for p, loc in over.locations.items() if p[: len(path)] == path})

    merge_into(data, over.data, ())
    return _Raw(data, locations)


def _suites_root(top: Path) -> Path:
    """The suites tree a top-level suite may include from: its nearest ancestor folder named ``suites``."""
    for parent in [top.parent, *top.parent.parents]:
        if parent.name == "suites":
            return parent
    return top.parent


def _load_with_includes(path: Path, root: Path, stack: tuple[Path, ...]) -> _Raw:
    raw = _read_yaml(path)
    includes = raw.data.pop("include", None)
    include_locs = {p: loc for p, loc in raw.locations.items() if p[:1] == ("include",)}
    for p in include_locs:
        del raw.locations[p]
    if includes is None:
        return raw
    if isinstance(includes, str):
        includes = [includes]
        include_locs[("include", 0)] = include_locs.get(("include",), (str(path), None))
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        where = _fmt_loc(include_locs.get(("include",), (str(path), None)))
        raise ConfigError(f"{where}: include: must be a file name or a list of file names")
    merged = _Raw({}, {})
    for index, name in enumerate(includes):
        loc = include_locs.get(("include", index), (str(path), None))
        target = (path.parent / name).resolve()
        allowed = [path.parent.resolve(), root.resolve()]
        if not any(target == a or a in target.parents for a in allowed):
            raise ConfigError(f"{_fmt_loc(loc)}: include {name!r} resolves to {target}, outside the including "
                              f"file's folder and the suites tree {root}; includes must stay inside them")
        if target in stack:
            chain = " -> ".join(str(p) for p in (*stack, target))
            raise ConfigError(f"{_fmt_loc(loc)}: include cycle: {chain}")
        if not target.is_file():
            raise ConfigError(f"{_fmt_loc(loc)}: included file not found: {target}")
        merged = _merge(merged, _load_with_includes(target, root, (*stack, target)))
    merged = _merge(merged, raw)
    merged.locations[()] = raw.locations[()]
    return merged


_SET_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*(?:\.(?:[A-Za-z_][A-Za-z0-9_]*|\d+))*)\s*=(.*)$", re.S)


def parse_set(expr: str) -> tuple[KeyPath, Any]:
    """Parse one ``--set key.path=value`` (list indices as numbers: ``edits.0.t_edit=500``; value as YAML)."""
    match = _SET_RE.match(expr)
    if not match:
        raise ConfigError(f"--set {expr!r}: expected key.path=value (e.g. sampler.n_test_step=20)")
    keys: KeyPath = tuple(int(k) if k.isdigit() else k for k in match.group(1).split("."))
    text = match.group(2).strip()
    try:
        value = yaml.safe_load(text) if text else None
    except yaml.YAMLError as error:
        raise ConfigError(f"--set {expr!r}: the value is not valid YAML: {error}") from None
    return keys, value


def _apply_set(raw: _Raw, expr: str) -> None:
    keys, value = parse_set(expr)
    loc: Location = (f"--set {expr.strip()}", None)
    node: Any = raw.data
    for depth, key in enumerate(keys[:-1]):
        here = keys[: depth + 1]
        if isinstance(key, int):
            if not isinstance(node, list) or key >= len(node):
                size = len(node) if isinstance(node, list) else "no"
                raise ConfigError(f"--set {expr!r}: {_dotted(here)} does not exist ({_dotted(keys[:depth]) or 'top'} "
                                  f"has {size} list items)")
            node = node[key]
        else:
            if not isinstance(node, dict):
                raise ConfigError(f"--set {expr!r}: {_dotted(keys[:depth])} is not a mapping")
            if isinstance(node.get(key), dict | list):
                node = node[key]
            else:
                node[key] = {}
                node = node[key]
                raw.locations[here] = loc
    last = keys[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            raise ConfigError(f"--set {expr!r}: {_dotted(keys)} does not exist")
    elif not isinstance(node, dict):
        raise ConfigError(f"--set {expr!r}: {_dotted(keys[:-1])} is not a mapping")
    node[last] = value
    for stale in [p for p in raw.locations if p[: len(keys)] == keys]:
        del raw.locations[stale]
    raw.locations[keys] = loc
    if isinstance(value, dict | list):
        _record_value_locations(value, keys, loc, raw.locations)


def _record_value_locations(value: Any, prefix: KeyPath, loc: Location, out: dict[KeyPath, Location]) -> None:
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, sub in items:
        out[(*prefix, key)] = loc
        _record_value_locations(sub, (*prefix, key), loc, out)


# ---------------------------------------------------------------------------------------------------------
# paths and registered names
# ---------------------------------------------------------------------------------------------------------
def _looks_like_path(text: str) -> bool:
    return "/" in text or os.sep in text or text.startswith("~") or bool(Path(text).suffix)


def _resolve_paths(raw: _Raw) -> None:
    """Make relative paths absolute, relative to the file that wrote them (``--set`` values: the CWD)."""

    def base_dir(path: KeyPath) -> Path:
        file = raw.locations.get(path, ("--set", None))[0]
        return Path.cwd() if file.startswith("--set") or file == "?" else Path(file).parent

    def fix(container: Any, key: Any, path: KeyPath, *, maybe_key: bool) -> None:
        value = container.get(key) if isinstance(container, dict) else None
        if not isinstance(value, str) or not value:
            return
        if maybe_key and not _looks_like_path(value):
            return  # a registry key (weights / split); checked against its registry
        if value.startswith("local-dir:") or "://" in value:
            return
        expanded = Path(value).expanduser()
        container[key] = str(expanded if expanded.is_absolute() else (base_dir(path) / expanded).resolve())

    data = raw.data
    backends = data.get("backend")
    for index, backend in (enumerate(backends) if isinstance(backends, list) else [(None, backends)]):
        prefix: KeyPath = ("backend",) if index is None else ("backend", index)
        if isinstance(backend, dict):
            fix(backend, "weights", (*prefix, "weights"), maybe_key=True)

    def fix_data(spec: Any, prefix: KeyPath) -> None:
        if isinstance(spec, dict):
            for key in ("root", "folder"):
                fix(spec, key, (*prefix, key), maybe_key=False)

    fix_data(data.get("data"), ("data",))
    if isinstance(data.get("train"), dict):
        fix_data(data["train"].get("data"), ("train", "data"))
    for index, editor in enumerate(data.get("editors") or []):
        if not isinstance(editor, dict):
            continue
        checkpoint = editor.get("checkpoint")
        if isinstance(checkpoint, str):
            fix(editor, "checkpoint", ("editors", index, "checkpoint"), maybe_key=True)
        elif isinstance(checkpoint, dict):
            for edit in list(checkpoint):
                fix(checkpoint, edit, ("editors", index, "checkpoint", edit), maybe_key=True)
        if isinstance(editor.get("train"), dict):
            fix_data(editor["train"].get("data"), ("editors", index, "train", "data"))


def registry_names(kind: str) -> list[str] | None:
    """Registered names of ``kind`` (backend, editor, metric, recipe, split), or None when that part of the
    package is not importable (then names are checked when the run starts)."""
    try:
        if kind == "backend":
            from asyrp_bench.diffusion.backends import BACKENDS

            return BACKENDS.names()
        if kind == "editor":
            from asyrp_bench.editors import EDITORS  # type: ignore[import-not-found,attr-defined]

            return EDITORS.names()
        if kind == "metric":
            from asyrp_bench.metrics import METRICS  # type: ignore[import-not-found,attr-defined]

            return METRICS.names()
        if kind == "recipe":
            from asyrp_bench.recipes import RECIPES  # type: ignore[import-not-found,attr-defined]

            return RECIPES.names()
        if kind == "split":
            from asyrp_bench.data import SPLITS

            return SPLITS.names()
    except ImportError:
        return None
    raise ValueError(f"unknown registry kind {kind!r}")


def _did_you_mean(name: str, valid: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(valid), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def check_names(suite: Suite) -> list[tuple[KeyPath, str]]:
    """Names that are not registered (backend, variant, metric, recipe, split, weights key): (key path, message)."""
    problems: list[tuple[KeyPath, str]] = []

    def check(kind: str, name: str, path: KeyPath) -> None:
        valid = registry_names(kind)
        if valid is not None and name not in valid:
            problems.append((path, f"unknown {kind} {name!r}.{_did_you_mean(name, valid)} "
                                   f"Valid {kind}s: {', '.join(valid) or '(none)'}."))

    def check_weights(value: str, path: KeyPath, kind: str | None) -> None:
        from asyrp_bench import weights

        if _looks_like_path(value) or Path(value).exists():
            if not Path(value).exists():
                problems.append((path, f"file not found: {value}"))
            return
        try:
            artifact = weights.get_artifact(value)
        except AsyrpBenchError as error:  # an unknown key; the message carries a "did you mean"
            problems.append((path, str(error)))
            return
        if kind is not None and artifact.kind != kind:
            problems.append((path, f"weights key {value!r} is a {artifact.kind} artifact, not a {kind} one"))

    def check_data(spec: DataSpec | None, path: KeyPath) -> None:
        if spec is None:
            return
        if spec.split is not None:
            check("split", spec.split, (*path, "split"))
        if spec.folder is not None and not Path(spec.folder).is_dir():
            problems.append(((*path, "folder"), f"folder not found: {spec.folder}"))

    for i, backend in enumerate(suite.backend):
        check("backend", backend.name, ("backend", i, "name"))
        if backend.weights is not None:
            check_weights(backend.weights, ("backend", i, "weights"), None)
    check_data(suite.data, ("data",))
    if suite.train is not None:
        check("recipe", suite.train.recipe, ("train", "recipe"))
        check_data(suite.train.data, ("train", "data"))
    for i, editor in enumerate(suite.editors):
        check("editor", editor.variant, ("editors", i, "variant"))
        if editor.train is not None:
            check("recipe", editor.train.recipe, ("editors", i, "train", "recipe"))
            check_data(editor.train.data, ("editors", i, "train", "data"))
        for edit, value in (editor.checkpoint or {}).items():
            check_weights(value, ("editors", i, "checkpoint", *(() if edit == "*" else (edit,))), "editor")
    for i, metric in enumerate(suite.metrics):
        check("metric", metric.name, ("metrics", i, "name"))
    if not problems:
        problems.extend(_check_parameters(suite))
    return problems


def _check_parameters(suite: Suite) -> list[tuple[KeyPath, str]]:
    """Metric parameters and recipe overrides, checked by their owners (no model is loaded)."""
    problems: list[tuple[KeyPath, str]] = []
    try:
        from asyrp_bench.metrics import METRICS  # type: ignore[import-not-found,attr-defined]
    except ImportError:
        METRICS = None
    if METRICS is not None:
        for i, metric in enumerate(suite.metrics):
            try:
                METRICS.get(metric.name)(**metric.params)
            except AsyrpBenchError as error:
                problems.append((("metrics", i, "params"), str(error)))
    try:
        from asyrp_bench.recipes import resolve_recipe  # type: ignore[import-not-found,attr-defined]
    except ImportError:
        return problems
    trains = [(("train",), suite.train)] + [(("editors", i, "train"), e.train) for i, e in enumerate(suite.editors)]
    trains = [(path, train) for path, train in trains if train is not None]
    for path, train in trains:
        try:
            resolve_recipe(train.recipe, train.overrides)
        except AsyrpBenchError as error:
            problems.append(((*path, "overrides"), str(error)))
    # an edit's overrides are applied over every trained editor's (expand); each combination must resolve
    for i, edit in enumerate(suite.edits):
        if not edit.train_overrides:
            continue
        errors = []
        for _, train in trains:
            try:
                resolve_recipe(train.recipe, {**train.overrides, **edit.train_overrides})
            except AsyrpBenchError as error:
                errors.append(str(error))
        if errors:
            problems.append((("edits", i, "train_overrides"), errors[0]))
    return problems


# ---------------------------------------------------------------------------------------------------------
# error formatting
# ---------------------------------------------------------------------------------------------------------
def _dotted(path: Sequence[str | int]) -> str:
    out = ""
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out


def _fmt_loc(loc: Location) -> str:
    file, line = loc
    if os.path.isabs(file):
        relative = os.path.relpath(file)
        file = file if relative.startswith("..") else relative
    return f"{file}:{line}" if line is not None else file


def _raw_path(data: Any, loc: Sequence[str | int]) -> KeyPath:
    """Map a pydantic error location onto the key path of the user's data (undoing shorthands)."""
    out: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(part, int):
            if isinstance(node, list) and part < len(node):
                node = node[part]
                out.append(part)
            elif isinstance(node, dict) and part == 0:
                continue  # ``backend: {...}`` written for a one-element list
            else:
                out.append(part)
                node = None
        else:
            if part == "seeds" and isinstance(node, dict) and "seed" in node and "seeds" not in node:
                part = "seed"
            if isinstance(node, dict) and part in node:
                node = node[part]
                out.append(part)
            elif isinstance(node, dict):
                out.append(part)
                node = None
            elif isinstance(node, str) and part == "name":
                continue  # ``metrics: [fid]`` shorthand
            else:
                out.append(part)
                node = None
    return tuple(out)


def _location_of(path: KeyPath, raw: _Raw, default: str) -> Location:
    for cut in range(len(path), -1, -1):
        loc = raw.locations.get(path[:cut])
        if loc is not None:
            return loc
    return (default, None)


def _model_fields_at(path: Sequence[str | int]) -> list[str] | None:
    """Field names of the schema model found at ``path`` (for "did you mean"), or None."""
    annotation: Any = Suite
    for part in path:
        annotation = _unwrap(annotation)
        if isinstance(part, int):
            continue
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        field = annotation.model_fields.get(part)
        if field is None:
            return None
        annotation = field.annotation
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        names = list(annotation.model_fields)
        if annotation is Suite:
            names += ["include", "seed"]
        return names
    return None


def _unwrap(annotation: Any) -> Any:
    """Strip Optional / list / Annotated to the model type inside."""
    while True:
        origin = typing.get_origin(annotation)
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if origin is Annotated or origin in (list, tuple):
            annotation = args[0]
        elif args and origin in (typing.Union, types.UnionType):
            models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            annotation = models[0] if models else args[0]
        else:
            return annotation


def _format_validation_error(error: ValidationError, raw: _Raw, default: str) -> str:
    lines: list[str] = []
    seen: set[str] = set()
    for item in error.errors(include_url=False):
        loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and p[:1].isupper()))
        path = _raw_path(raw.data, loc)
        where = _fmt_loc(_location_of(path, raw, default))
        key = _dotted(path) or "(top level)"
        kind = item["type"]
        if kind == "extra_forbidden":
            valid = _model_fields_at(loc[:-1]) or []
            hint = _did_you_mean(str(loc[-1]), valid)
            message = f"unknown key.{hint} Valid keys here: {', '.join(valid)}."
        elif kind == "missing":
            message = "required key is missing"
        else:
            message = item["msg"].removeprefix("Value error, ")
            if kind not in ("value_error", "assertion_error") and "input" in item:
                message += f" (got {item['input']!r})"
        text = f"{where}: {key}: {message}"
        if text not in seen:
            seen.add(text)
            lines.append(text)
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# public entry points
# ---------------------------------------------------------------------------------------------------------
def load_suite(path: str | os.PathLike[str], overrides: Sequence[str] = (), *, check: bool = True) -> Suite:
    """Read, merge, override and validate a suite file.

    Args:
        path: the suite YAML.
        overrides: ``key.path=value`` strings (``--set``), applied after includes, in order.
        check: also check registered names (backend, variants, metrics, recipes, splits, weights keys) and that
            named paths exist.

    Raises:
        ConfigError: with one line per problem, each naming file, line and key.
    """
    top = Path(path).expanduser().resolve()
    if not top.is_file():
        raise ConfigError(f"suite file not found: {Path(path)}")
    raw = _load_with_includes(top, _suites_root(top), (top,))
    for expr in overrides:
        _apply_set(raw, expr)
    _refuse_non_finite(raw, str(top))
    _resolve_paths(raw)
    suite = _validate(raw, str(top), check=check)
    suite._source = str(top)
    return suite


def suite_from_dict(data: dict[str, Any], *, check: bool = True, origin: str = "<dict>") -> Suite:
    """Validate an in-memory suite (no includes; relative paths resolve against the working directory)."""
    raw = _Raw(copy.deepcopy(data), {})
    _record_value_locations(raw.data, (), (origin, None), raw.locations)
    _refuse_non_finite(raw, origin)
    _resolve_paths(raw)
    return _validate(raw, origin, check=check)


def _refuse_non_finite(raw: _Raw, default: str) -> None:
    def describe(path: KeyPath) -> str:
        return f"{_fmt_loc(_location_of(path, raw, default))}: {_dotted(path)}"

    refuse_non_finite(raw.data, describe)


def _validate(raw: _Raw, default: str, *, check: bool) -> Suite:
    try:
        suite = Suite.model_validate(raw.data)
    except ValidationError as error:
        raise ConfigError(_format_validation_error(error, raw, default)) from None
    # Strings such as "nan" or "1e400" pass pydantic's lax float parsing as NaN / inf: check the parsed values.
    refuse_non_finite(suite.model_dump(mode="python"), lambda loc: (
        f"{_fmt_loc(_location_of(_raw_path(raw.data, loc), raw, default))}: {_dotted(_raw_path(raw.data, loc))}"))
    if check:
        problems = check_names(suite)
        if problems:
            lines = []
            for loc, message in problems:
                path = _raw_path(raw.data, loc)
                lines.append(f"{_fmt_loc(_location_of(path, raw, default))}: {_dotted(path)}: {message}")
            raise ConfigError("\n".join(lines))
    return suite


# ---------------------------------------------------------------------------------------------------------
# cells
# ---------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Cell:
    """One unit of work: one backend × editor × edit × seed, scored with the suite's metrics.

    Attributes:
        id: the cell's folder name, ``<editor>__<edit>__s<seed>`` (prefixed by ``<backend>__`` when the suite
            has several backends).
        train: the recipe that trains the editor, or None when ``checkpoint`` loads it.
        checkpoint: the editor file or weights key for this edit, or None when trained.
        config_hash: sha256 of the canonical JSON of :meth:`semantic` (64 hex digits).
    """

    id: str
    backend: BackendSpec
    editor: EditorSpec
    edit: EditSpec
    seed: int
    data: DataSpec
    sampler: SamplerSpec
    metrics: tuple[MetricSpec, ...]
    train: TrainSpec | None
    checkpoint: str | None
    config_hash: str

    def semantic(self) -> dict[str, Any]:
        return cell_semantics(self.backend, self.editor, self.edit, self.seed, self.data, self.sampler,
                              self.metrics, self.train, self.checkpoint)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for cell.yaml: the cell's resolved configuration plus its id and hash."""
        return {
            "id": self.id,
            "config_hash": self.config_hash,
            "backend": self.backend.model_dump(mode="json"),
            "editor": {k: v for k, v in self.editor.model_dump(mode="json").items() if k not in ("checkpoint", "train")},
            "edit": self.edit.model_dump(mode="json"),
            "seed": self.seed,
            "data": self.data.model_dump(mode="json"),
            "sampler": self.sampler.model_dump(mode="json"),
            "train": self.train.model_dump(mode="json") if self.train else None,
            "checkpoint": self.checkpoint,
            "metrics": [m.model_dump(mode="json") for m in self.metrics],
        }


def _path_identity(value: str | None) -> str | None:
    # Paths name a location, not a content; they enter hashes by file name only (contents are hashed at run time).
    if value is None or not _looks_like_path(value):
        return value
    return Path(value).name


def _data_identity(spec: DataSpec | None) -> dict[str, Any] | None:
    if spec is None:
        return None
    return {"split": spec.split, "folder": _path_identity(spec.folder), "limit": spec.limit, "offset": spec.offset}


def cell_semantics(
    backend: BackendSpec,
    editor: EditorSpec,
    edit: EditSpec,
    seed: int,
    data: DataSpec,
    sampler: SamplerSpec,
    metrics: Sequence[MetricSpec],
    train: TrainSpec | None,
    checkpoint: str | None,
) -> dict[str, Any]:
    """The fields that decide a cell's numbers (hashed into ``config_hash``)."""
    train_id = None
    if train is not None:
        train_id = {"recipe": train.recipe, "overrides": train.overrides, "data": _data_identity(train.data or data)}
    return {
        "schema_version": SCHEMA_VERSION,
        "backend": {"name": backend.name, "weights": _path_identity(backend.weights), "preset": backend.preset,
                    "config": backend.config},
        "data": _data_identity(data),
        "sampler": sampler.model_dump(mode="json"),
        "editor": {"variant": editor.variant, "params": editor.params, "n_train_step": editor.n_train_step},
        "train": train_id,
        "checkpoint": _path_identity(checkpoint),
        "edit": edit.model_dump(mode="json"),
        "seed": seed,
        "metrics": [{"name": m.name, "params": m.params} for m in metrics],
    }


def expand(suite: Suite) -> list[Cell]:
    """All cells of a suite, backend-major then editor, edit and seed, in the suite's order."""
    cells: list[Cell] = []
    many_backends = len(suite.backend) > 1
    for backend in suite.backend:
        for editor in suite.editors:
            for edit in suite.edits:
                for seed in suite.seeds:
                    checkpoint = None
                    train = None
                    if editor.checkpoint is not None:
                        checkpoint = editor.checkpoint.get(edit.name, editor.checkpoint.get("*"))
                    else:
                        train = editor.train or suite.train
                        if train is not None and edit.train_overrides:
                            train = train.model_copy(update={"overrides": {**train.overrides,
                                                                           **edit.train_overrides}})
                    cell_id = f"{editor.display}__{edit.name}__s{seed}"
                    if many_backends:
                        cell_id = f"{backend.display}__{cell_id}"
                    semantic = cell_semantics(backend, editor, edit, seed, suite.data, suite.sampler,
                                              suite.metrics, train, checkpoint)
                    cells.append(Cell(
                        id=cell_id, backend=backend, editor=editor, edit=edit, seed=seed, data=suite.data,
                        sampler=suite.sampler, metrics=tuple(suite.metrics), train=train,
                        checkpoint=checkpoint, config_hash=config_hash(semantic),
                    ))
    return cells


def hash_of_cells(cells: Iterable[Cell]) -> str:
    """Hash of a suite's semantics: of its sorted cell hashes (names the run folder)."""
    return config_hash(sorted(c.config_hash for c in cells))


def suite_hash(suite: Suite) -> str:
    """Hash of the whole suite's semantics (a run computes it once, in :func:`asyrp_bench.plan.build_plan`)."""
    return hash_of_cells(expand(suite))


def find_suite_files(root: str | os.PathLike[str]) -> list[Path]:
    """Every runnable suite under ``root`` (``_base/`` holds include-only fragments and is skipped)."""
    base = Path(root)
    return sorted(p for p in base.rglob("*.yaml") if "_base" not in p.relative_to(base).parts)
