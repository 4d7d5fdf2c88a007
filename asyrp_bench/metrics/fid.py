"""``fid`` and ``kid``: torch-fidelity's FID and KID between the reference set and the edited set.

Definition (version 1): features from a torch-fidelity feature extractor (default ``inception-v3-compat``, the
TF-exact Inception; its default layer per metric, 2048-d pool features for Inception) of the uint8 images, in id
order, then torch-fidelity's own ``fid_features_to_statistics`` / ``fid_statistics_to_metric`` and
``kid_features_to_metric`` (rng_seed 2020, polynomial kernel of degree 3, ``subsets`` subsets). The numbers equal
``torch_fidelity.calculate_metrics`` on folders holding the same images (tested). Reference set =
``source`` (default) or ``reconstruction``.

* KID's subset size is ``min(subset_size, N_reference, N_edit)`` (torch-fidelity refuses subsets larger than a
  set); the fitted size is reported as key ``subset_size``. With subset size = N every subset is the whole set.
* N (key ``n``) is reported with every value. FID is biased at small N (at N ≈ 100 it is far above its large-N
  value and changes with N): compare FIDs only at equal N, and prefer KID for small sets.
* Weights are never fetched: ``inception-v3-compat`` needs a local file (``weights: PATH``, or the weights key
  ``inception_v3_compat`` found in ``$ASYRP_BENCH_HOME/weights`` or the torch hub cache); a missing file is a
  WeightsNotFoundError. Other torch-fidelity built-ins that download (CLIP, DINOv2, VGG16) need ``weights``.
* Any extractor registered with torch-fidelity is accepted by name; :data:`EXTRACTOR_HOOKS` maps extra names to
  ``"module:function"`` hooks that register them on first use.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

import torch

from asyrp_bench import weights
from asyrp_bench.errors import CheckpointError, ConfigError, InputError, UnknownNameError
from asyrp_bench.metrics.base import (
    Metric,
    MetricKey,
    Record,
    ScoringContext,
    ScoringInputs,
    _choice,
    content_hash,
)

DEFAULT_EXTRACTOR = "inception-v3-compat"
RNG_SEED = 2020  # torch-fidelity's default; fixed so KID's subsets are reproducible

# Extra extractor names -> "module:function" that registers them with torch-fidelity (imported on first use).
# The toy world's extractor (docs/world.md) registers itself on first use.
EXTRACTOR_HOOKS: dict[str, str] = {"asyrp-world": "asyrp_bench.world.nets:register_fid_extractor"}

_DOWNLOADING_BUILTINS_PREFIX = "torch_fidelity."


def register_extractor_hook(name: str, target: str) -> None:
    """Add ``name -> "module:function"`` to :data:`EXTRACTOR_HOOKS` (the function takes no arguments)."""
    if ":" not in target:
        raise ValueError(f"hook target {target!r} must look like 'package.module:function'")
    if name in EXTRACTOR_HOOKS and EXTRACTOR_HOOKS[name] != target:
        raise ValueError(f"extractor hook {name!r} is already registered as {EXTRACTOR_HOOKS[name]!r}")
    EXTRACTOR_HOOKS[name] = target


def ensure_extractor(name: str) -> type:
    """The torch-fidelity extractor class registered as ``name`` (running its hook first if needed)."""
    import importlib

    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    if name not in FEATURE_EXTRACTORS_REGISTRY and name in EXTRACTOR_HOOKS:
        module_name, attr = EXTRACTOR_HOOKS[name].split(":", 1)
        getattr(importlib.import_module(module_name), attr)()
    if name not in FEATURE_EXTRACTORS_REGISTRY:
        known = sorted(set(FEATURE_EXTRACTORS_REGISTRY) | set(EXTRACTOR_HOOKS))
        raise UnknownNameError(f"Unknown feature extractor {name!r}. Registered with torch-fidelity or by a hook: "
                               f"{', '.join(known)}.")
    return FEATURE_EXTRACTORS_REGISTRY[name]


def resolve_extractor_weights(name: str, spec: str | None) -> str | None:
    """The weights file for extractor ``name``; never None for extractors that would download."""
    if name == DEFAULT_EXTRACTOR:
        path = weights.require("inception_v3_compat") if spec is None else weights.resolve(spec, kind="inception")
        _check_state_dict(path)
        return str(path)
    if spec is not None:
        return str(weights.resolve(spec))
    cls = ensure_extractor(name)
    if cls.__module__.startswith(_DOWNLOADING_BUILTINS_PREFIX):
        raise ConfigError(f"feature extractor {name!r} is a torch-fidelity built-in that downloads its weights "
                          "when none are given; pass its weights file as the metric's `weights` parameter")
    return None


def _check_state_dict(path: Any) -> None:
    # torch-fidelity reads this file with weights_only=False; reading it first with weights_only=True refuses
    # anything but a plain state dict, so the second read unpickles nothing else (COMMON: weights_only always).
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(f"{path} is not a torch state dict loadable with weights_only=True: {error}") from error
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} is not an InceptionV3 state dict in torch-fidelity's format "
                              "(a dict of tensors, e.g. Conv2d_1a_3x3.conv.weight)")


class _Extractor:
    """A torch-fidelity extractor instance with the layers it computes."""

    def __init__(self, name: str, weights_path: str | None, layers: tuple[str, ...], device: str) -> None:
        cls = ensure_extractor(name)
        kwargs: dict[str, Any] = {"verbose": False}
        if weights_path is not None:
            kwargs["feature_extractor_weights_path"] = weights_path
        try:
            module = cls(name, list(layers), **kwargs)
        except RuntimeError as error:  # state dict mismatch
            raise CheckpointError(f"could not load weights {weights_path} into feature extractor {name!r}: "
                                  f"{error}") from error
        self.module = module.to(device).eval().requires_grad_(False)
        self.name, self.layers, self.device = name, layers, device

    @torch.no_grad()
    def features(self, images: torch.Tensor, ctx: ScoringContext, label: str) -> dict[str, torch.Tensor]:
        """uint8 ``[N,3,H,W]`` -> {layer: float32 [N,D]} on the CPU (torch-fidelity's get_featuresdict_...)."""
        out: dict[str, list[torch.Tensor]] = {layer: [] for layer in self.layers}
        n = images.shape[0]
        for part in ctx.batches(n):
            feats = self.module(images[part].to(self.device))
            for layer, value in self.module.convert_features_tuple_to_dict(feats).items():
                out[layer].append(value.cpu())
            ctx.report(f"{label}: {self.name} features", part.stop, n)
        return {layer: torch.cat(values) for layer, values in out.items()}


def _layer_for(name: str, metric: str) -> str:
    return str(ensure_extractor(name).get_default_feature_layer_for_metric(metric))


def set_features(images: torch.Tensor, extractor: str, weights_spec: str | None, layer: str,
                 ctx: ScoringContext, label: str) -> torch.Tensor:
    """Features ``[N,D]`` of one image set, cached in ``ctx`` (and ``ctx.cache_dir``) by content hash, so fid and
    kid, and every cell of a run scoring the same reference set, extract them once."""
    from asyrp_bench.cache_entries import read_entry, write_entry

    weights_path = ctx.cached(("fidelity-weights", extractor, weights_spec),
                              lambda: resolve_extractor_weights(extractor, weights_spec))
    images_hash = content_hash(images)
    key = ("fidelity-features", extractor, weights_path, layer, images_hash)
    if key in ctx.cache:
        return ctx.cache[key]
    disk = None
    if ctx.cache_dir is not None:
        weights_id = "none" if weights_path is None else ctx.cached(
            ("sha256", weights_path), lambda: weights.sha256_file(Path(weights_path)))[:16]
        disk = (Path(ctx.cache_dir) / "fidelity_features"
                / f"{extractor}-{layer}-{weights_id}-{images_hash[:24]}.safetensors")
        # The entry carries its key and checksum and is verified on read (docs/cache.md): a damaged or swapped
        # file is discarded with a warning and the features are recomputed, never trusted.
        disk_key = "|".join(map(str, key))
        entry = read_entry(disk, disk_key)
        if entry is not None and "features" in entry:
            ctx.cache[key] = entry["features"]
            return ctx.cache[key]
    model = ctx.cached(("fidelity-extractor", extractor, weights_path, layer, ctx.device),
                       lambda: _Extractor(extractor, weights_path, (layer,), ctx.device))
    features = model.features(images, ctx, label)[layer]
    if disk is not None:  # written under a temporary name, then renamed: never a half-written cache file
        write_entry(disk, {"features": features}, disk_key)
    ctx.cache[key] = features
    return features


class _FidelityMetric(Metric):
    per_image: ClassVar[bool] = False
    _tf_metric: ClassVar[str]

    def validate(self) -> None:
        self.params["reference"] = _choice(self.name, "reference", self.params["reference"],
                                           ("source", "reconstruction"))
        if not isinstance(self.params["feature_extractor"], str):
            raise ConfigError(f"metric {self.name!r}: feature_extractor must be a name")
        if self.params["weights"] is not None:
            self.params["weights"] = str(self.params["weights"])

    def check_inputs(self, inputs: ScoringInputs) -> None:
        inputs.images(self.params["reference"])
        if len(inputs) < 2:
            raise InputError(f"{self.name} needs at least 2 images per set, got {len(inputs)}")

    def _features(self, inputs: ScoringInputs, ctx: ScoringContext) -> tuple[torch.Tensor, torch.Tensor]:
        self.check_inputs(inputs)
        extractor, spec = self.params["feature_extractor"], self.params["weights"]
        layer = _layer_for(extractor, self._tf_metric)
        reference = set_features(inputs.images(self.params["reference"]), extractor, spec, layer, ctx,
                                 f"{self.name}: {self.params['reference']}")
        edits = set_features(inputs.edits, extractor, spec, layer, ctx, f"{self.name}: edit")
        return reference, edits


class FID(_FidelityMetric):
    name: ClassVar[str] = "fid"
    version: ClassVar[int] = 1
    _tf_metric: ClassVar[str] = "fid"
    keys: ClassVar[tuple[MetricKey, ...]] = (
        MetricKey("fid", False, "Fréchet distance of feature statistics (torch-fidelity); biased at small N"),
        MetricKey("n", None, "images per set"),
    )
    defaults: ClassVar[dict[str, Any]] = {"feature_extractor": DEFAULT_EXTRACTOR, "weights": None,
                                          "reference": "source"}
    description: ClassVar[str] = "FID (torch-fidelity), reference set vs edits; biased at small N"

    def compute(self, inputs: ScoringInputs, ctx: ScoringContext) -> list[Record]:
        from torch_fidelity.metric_fid import (
            KEY_METRIC_FID,
            fid_features_to_statistics,
            fid_statistics_to_metric,
        )

        reference, edits = self._features(inputs, ctx)
        value = fid_statistics_to_metric(fid_features_to_statistics(reference), fid_features_to_statistics(edits),
                                         verbose=False)[KEY_METRIC_FID]
        if not math.isfinite(value):
            raise InputError(f"FID is not finite ({value}) for these {len(inputs)} images; too few or degenerate "
                             "features")
        return [self.record(None, "fid", value), self.record(None, "n", len(inputs))]


class KID(_FidelityMetric):
    name: ClassVar[str] = "kid"
    version: ClassVar[int] = 1
    _tf_metric: ClassVar[str] = "kid"
    keys: ClassVar[tuple[MetricKey, ...]] = (
        MetricKey("kid", False, "kernel inception distance, mean over subsets (torch-fidelity)"),
        MetricKey("kid_std", None, "standard deviation of KID over subsets"),
        MetricKey("subset_size", None, "subset size used (fitted to the set sizes)"),
        MetricKey("n", None, "images per set"),
    )
    defaults: ClassVar[dict[str, Any]] = {"feature_extractor": DEFAULT_EXTRACTOR, "weights": None,
                                          "reference": "source", "subset_size": 1000, "subsets": 100}
    description: ClassVar[str] = "KID (torch-fidelity), subset size fitted to small sets"

    def validate(self) -> None:
        super().validate()
        for key, minimum in (("subset_size", 2), ("subsets", 1)):
            value = self.params[key]
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ConfigError(f"metric 'kid': {key} must be an integer >= {minimum}, got {value!r}")

    def compute(self, inputs: ScoringInputs, ctx: ScoringContext) -> list[Record]:
        from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

        reference, edits = self._features(inputs, ctx)
        subset = min(self.params["subset_size"], reference.shape[0], edits.shape[0])
        out = kid_features_to_metric(reference, edits, kid_subsets=self.params["subsets"], kid_subset_size=subset,
                                     rng_seed=RNG_SEED, verbose=False)
        return [self.record(None, "kid", out[KEY_METRIC_KID_MEAN]), self.record(None, "kid_std", out[KEY_METRIC_KID_STD]),
                self.record(None, "subset_size", subset), self.record(None, "n", len(inputs))]
