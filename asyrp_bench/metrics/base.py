"""The metric contract (DESIGN §4): inputs, context, records, the ``METRICS`` registry and metric specs.

A metric scores a set of (source, edited[, reconstruction]) image pairs and returns tidy :class:`Record` rows:

* per-image metrics (S_dir, SC, ID) emit one row per image and sub-key (``image_id`` set);
* per-set metrics (FID, KID) emit rows with ``image_id`` None, including ``n`` (the set size).

Every row carries the metric name, its ``version`` (bumped whenever the definition changes) and the resolved
parameters as canonical JSON, so a number can never be separated from its definition.

The same code scores images in memory (the harness) and folders (``asyrp-bench score``): both become a
:class:`ScoringInputs` of uint8 tensors, sorted by image id, so results do not depend on file or batch order.
Models are loaded lazily, once per :class:`ScoringContext` (and CLIP once per process).
"""

from __future__ import annotations

import difflib
import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from pydantic import BaseModel, ConfigDict, Field

from asyrp_bench.errors import ConfigError, InputError
from asyrp_bench.hashing import canonical_json
from asyrp_bench.registry import Registry

T = TypeVar("T")

ProgressFn = Callable[[str, int, int], None]
"""``progress(description, completed, total)``: called as work advances (feature extraction batches)."""


# -- inputs and context ---------------------------------------------------------------------------------------


@dataclass
class ScoringInputs:
    """What a metric scores. Tensors are uint8 RGB ``[N,3,H,W]`` (as read from PNG), one size per set.

    Build from float ``[-1, 1]`` tensors with :meth:`from_unit_range`. On construction the rows are sorted by
    ``image_id`` (results never depend on input order); duplicate ids are an error.

    Attributes:
        image_ids: one id per image (file name without suffix).
        sources: the unedited images.
        edits: the edited images (same shape as sources).
        reconstructions: optional DDIM reconstructions of the sources (same shape), the SC reference of the
            Asyrp script and the fidelity baseline.
        src_text, tgt_text: the edit's source and target prompts (needed by clip_directional).
    """

    image_ids: list[str]
    sources: torch.Tensor
    edits: torch.Tensor
    reconstructions: torch.Tensor | None = None
    src_text: str | None = None
    tgt_text: str | None = None

    def __post_init__(self) -> None:
        ids = [str(i) for i in self.image_ids]
        if len(set(ids)) != len(ids):
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            raise InputError(f"duplicate image ids: {', '.join(dupes[:10])}")
        n = len(ids)
        if n == 0:
            raise InputError("nothing to score: no images")
        for role in ("sources", "edits", "reconstructions"):
            x = getattr(self, role)
            if x is None:
                continue
            if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] != 3:
                got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
                raise InputError(f"{role} must be uint8 [N,3,H,W] (use ScoringInputs.from_unit_range for "
                                 f"[-1, 1] floats), got {got}")
            if x.shape[0] != n:
                raise InputError(f"{role} has {x.shape[0]} images but there are {n} image ids")
            if x.shape != self.sources.shape:
                raise InputError(f"{role} {tuple(x.shape)} and sources {tuple(self.sources.shape)} differ in shape; "
                                 "resize them first (asyrp_bench.images.resize_uint8)")
        order = sorted(range(n), key=lambda i: ids[i])
        if order != list(range(n)):
            index = torch.tensor(order)
            self.sources = self.sources[index]
            self.edits = self.edits[index]
            if self.reconstructions is not None:
                self.reconstructions = self.reconstructions[index]
        self.image_ids = [ids[i] for i in order]

    @classmethod
    def from_unit_range(cls, image_ids: Sequence[str], sources: torch.Tensor, edits: torch.Tensor,
                        reconstructions: torch.Tensor | None = None, **texts: str | None) -> ScoringInputs:
        """Build from float images in ``[-1, 1]``, quantised exactly as PNG files are (images.to_uint8)."""
        from asyrp_bench.images import to_uint8

        recon = to_uint8(reconstructions) if reconstructions is not None else None
        return cls(list(image_ids), to_uint8(sources), to_uint8(edits), recon, **texts)

    def __len__(self) -> int:
        return len(self.image_ids)

    def images(self, role: str) -> torch.Tensor:
        """``source`` / ``edit`` / ``reconstruction`` images; a missing reconstruction is a clear InputError."""
        if role == "source":
            return self.sources
        if role == "edit":
            return self.edits
        if role == "reconstruction":
            if self.reconstructions is None:
                raise InputError("this metric needs the DDIM reconstructions of the sources (asyrp-bench score "
                                 "--reconstruction DIR), or set its parameter reference: source")
            return self.reconstructions
        raise ConfigError(f"unknown image set {role!r}; choose source, edit or reconstruction")


def content_hash(x: torch.Tensor) -> str:
    """sha256 of a tensor's bytes, shape and dtype (cache key of features computed from it)."""
    digest = hashlib.sha256(f"{x.dtype}{tuple(x.shape)}".encode())
    digest.update(x.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@dataclass
class ScoringContext:
    """Run-wide settings and the cache that lets metrics share loaded models and features.

    Reuse one context for every cell of a run: segmenters, face models, feature extractors and FID features of
    an image set (keyed by content hash) are then loaded/computed once.

    Attributes:
        device: torch device string for every model ("cpu", "cuda", "cuda:1").
        batch_size: images per forward pass (results do not depend on it beyond float noise).
        progress: optional :data:`ProgressFn`.
        cache: shared objects, keyed by hashable tuples (use :meth:`cached`).
        cache_dir: optional folder for features that outlive the process (FID/KID features of an image set,
            keyed by extractor, weights checksum, layer and the images' content hash). None: memory only.
    """

    device: str = "cpu"
    batch_size: int = 16
    progress: ProgressFn | None = None
    cache: dict[Hashable, Any] = field(default_factory=dict)
    cache_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")

    def cached(self, key: Hashable, factory: Callable[[], T]) -> T:
        if key not in self.cache:
            self.cache[key] = factory()
        return self.cache[key]

    def report(self, description: str, completed: int, total: int) -> None:
        if self.progress is not None:
            self.progress(description, completed, total)

    def batches(self, n: int) -> list[slice]:
        return [slice(i, min(i + self.batch_size, n)) for i in range(0, n, self.batch_size)]


# -- records --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """One tidy result row.

    Attributes:
        image_id: the image, or None for a per-set value.
        metric: metric name (registry key).
        key: the sub-measure (e.g. ``cos``, ``pixel_accuracy``, ``fid``, ``n``).
        value: the number (float; counts are floats too).
        metric_version: the metric's version.
        params: resolved parameters, canonical JSON (sorted keys).
    """

    image_id: str | None
    metric: str
    key: str
    value: float
    metric_version: int
    params: str
    registry_name: str | None = None
    """The registered metric when ``metric`` is an entry's label (None: ``metric`` is the registered name)."""

    @property
    def metric_name(self) -> str:
        return self.registry_name or self.metric

    def as_row(self) -> dict[str, Any]:
        return {"image_id": self.image_id, "metric": self.metric, "key": self.key,
                "metric_version": self.metric_version, "value": self.value, "params": self.params}


RECORD_COLUMNS = ("image_id", "metric", "key", "metric_version", "value", "params")


@dataclass(frozen=True)
class MetricKey:
    """A sub-measure a metric reports. ``higher_is_better`` None for bookkeeping keys (counts)."""

    name: str
    higher_is_better: bool | None
    description: str


# -- the contract ---------------------------------------------------------------------------------------------


class Metric(ABC):
    """A metric: class attributes describe it, ``compute`` scores one :class:`ScoringInputs`.

    Class attributes:
        name: registry key.
        version: integer, bumped whenever a change could change a number.
        per_image: True for per-image metrics, False for per-set ones.
        keys: the sub-measures emitted; the first is the primary one (its direction is ``higher_is_better``).
        defaults: every accepted parameter with its default (unknown parameters are refused).
        description: one line for ``asyrp-bench ls metrics``.
    """

    name: ClassVar[str]
    version: ClassVar[int]
    per_image: ClassVar[bool]
    keys: ClassVar[tuple[MetricKey, ...]]
    defaults: ClassVar[dict[str, Any]]
    description: ClassVar[str] = ""

    def __init__(self, **params: Any) -> None:
        unknown = [k for k in params if k not in self.defaults]
        if unknown:
            hints = []
            for key in unknown:
                close = difflib.get_close_matches(key, list(self.defaults), n=1)
                hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise ConfigError(f"metric {self.name!r} has no parameter {', '.join(hints)}; its parameters: "
                              f"{', '.join(f'{k}={v!r}' for k, v in self.defaults.items())}")
        self.params: dict[str, Any] = {**self.defaults, **params}
        self.label: str = self.name
        """What values are named by (``<label>.<key>``): the entry's ``label:``, default the metric name."""
        self.validate()

    @classmethod
    def higher_is_better(cls) -> bool:
        return bool(cls.keys[0].higher_is_better)

    @classmethod
    def primary_key(cls) -> str:
        return cls.keys[0].name

    def validate(self) -> None:
        """Check ``self.params`` (raise ConfigError); may normalise values. Runs on construction."""
        return None

    def check_inputs(self, inputs: ScoringInputs) -> None:
        """Raise InputError when ``inputs`` lack what this metric needs (before any model is loaded)."""
        return None

    @abstractmethod
    def compute(self, inputs: ScoringInputs, ctx: ScoringContext) -> list[Record]:
        """Score ``inputs``; return tidy records (sorted by image id for per-image metrics)."""

    @property
    def params_json(self) -> str:
        return canonical_json(self.params)

    def record(self, image_id: str | None, key: str, value: float) -> Record:
        registry_name = None if self.label == self.name else self.name
        return Record(image_id, self.label, key, float(value), self.version, self.params_json, registry_name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params_json})"


def _choice(metric: str, param: str, value: Any, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ConfigError(f"metric {metric!r}: {param} must be one of {', '.join(choices)}, got {value!r}")
    return str(value)


METRICS: Registry[type[Metric]] = Registry("metric", base_cls=Metric)
METRICS.register("clip_directional", target="asyrp_bench.metrics.clip_directional:ClipDirectional")
METRICS.register("seg_consistency", target="asyrp_bench.metrics.seg_consistency:SegConsistency")
METRICS.register("fid", target="asyrp_bench.metrics.fid:FID")
METRICS.register("kid", target="asyrp_bench.metrics.fid:KID")
METRICS.register("identity", target="asyrp_bench.metrics.identity:Identity")
METRICS.register("lpips", target="asyrp_bench.metrics.lpips_metric:LPIPS")


# -- specs (the ``metrics:`` block of suites and of ``score --metrics``) -----------------------------------------


class MetricSpec(BaseModel):
    """One entry of a ``metrics:`` list: ``{name: fid, params: {...}, label: ...}`` (a bare string: default params).

    ``label`` (default: the name) names the entry's values ``<label>.<key>``, so one metric can be listed twice
    with different parameters (identity with facenet and with arcface); labels must be unique.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    label: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")

    @property
    def display(self) -> str:
        return self.label or self.name


def parse_metric_specs(entries: Any, where: str = "metrics") -> list[MetricSpec]:
    """Validate a ``metrics:`` list (strings or {name, params} mappings) into specs; names are checked."""
    from pydantic import ValidationError

    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{where}: expected a non-empty list of metrics, got {entries!r}")
    specs = []
    for i, entry in enumerate(entries):
        try:
            spec = MetricSpec(name=entry) if isinstance(entry, str) else MetricSpec.model_validate(entry)
        except ValidationError as error:
            raise ConfigError(f"{where}[{i}]: {error.errors()[0]['msg']} ({entry!r}); write "
                              "{name: NAME, params: {...}}") from None
        if spec.name not in METRICS:
            raise ConfigError(f"{where}[{i}]: {METRICS.unknown_message(spec.name)}")
        specs.append(spec)
    check_unique_labels([s.display for s in specs], where)
    return specs


def check_unique_labels(labels: Sequence[str], where: str = "metrics") -> None:
    """Refuse two entries whose values would share names (``label``, default the metric name)."""
    for label in sorted(set(labels)):
        if list(labels).count(label) > 1:
            raise ConfigError(f"{where}: metric label {label!r} is used {list(labels).count(label)} times; give "
                              "each entry of the same metric its own `label:` (values are named <label>.<key>)")


def load_metrics_file(path: str | Path) -> list[MetricSpec]:
    """Read a YAML file with a top-level ``metrics:`` list (the same block as in suites)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"metrics file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(data, dict) or set(data) != {"metrics"}:
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ConfigError(f"{path}: expected exactly one top-level key 'metrics', got {keys}")
    return parse_metric_specs(data["metrics"], where=f"{path}: metrics")


def build_metric(spec: MetricSpec | str | dict[str, Any]) -> Metric:
    """Instantiate a metric from a spec, a name or a {name, params} dict (params validated)."""
    if isinstance(spec, str):
        spec = MetricSpec(name=spec)
    elif isinstance(spec, dict):
        spec = parse_metric_specs([spec])[0]
    metric = METRICS.get(spec.name)(**spec.params)
    metric.label = spec.display
    return metric
