"""``seg_consistency`` (SC): agreement of face-parsing label maps of the reference and the edited image.

Definition (version 1), per image:

* label maps = argmax over classes of the segmenter's logits for the reference and for the edit;
* ``pixel_accuracy`` = fraction of pixels whose labels agree (the Asyrp-lineage script, metrics_and_peers.md §3.2);
* ``miou`` = mean over classes present in either map of |A_c ∩ B_c| / |A_c ∪ B_c| (what the literature calls SC);
* ``ignore_classes`` (names or indices, default none): those classes leave the mIoU class set, and pixels that
  both maps assign to ignored classes leave the pixel accuracy. When nothing is left, the maps agree (1.0).

The reference is the DDIM reconstruction (``reference: reconstruction``, the Asyrp script's choice, spec §9) or
the source image (``reference: source``).

Segmenter = a segmentation-models-pytorch folder (``model.save_pretrained(DIR)``: config.json +
model.safetensors, loaded with ``smp.from_pretrained``) with an optional sidecar ``segmenter.json``::

    {"classes": ["background", "skin", ...], "input_size": 512 | null, "mean": [3 floats], "std": [3 floats]}

Input = RGB in [0, 1], normalised with ``mean``/``std`` (default ImageNet), at the image's own size unless
``input_size`` is given (then bilinear, antialiased resize to input_size², maps scored at that size). Without the
sidecar the classes are named class_0 ... class_{C-1}.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from asyrp_bench import weights
from asyrp_bench.errors import CheckpointError, ConfigError, InputError, WeightsNotFoundError
from asyrp_bench.metrics.base import Metric, MetricKey, Record, ScoringContext, ScoringInputs, _choice

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SIDECAR = "segmenter.json"
_SIDECAR_KEYS = {"classes", "input_size", "mean", "std"}


@dataclass
class Segmenter:
    """A loaded smp segmenter with its preprocessing.

    Attributes:
        model: the smp model (eval, frozen).
        classes: class names, one per output channel.
        input_size: square size fed to the model, or None for the image's own size.
        mean, std: per-channel normalisation of [0, 1] RGB.
        path: the folder it came from.
    """

    model: torch.nn.Module
    classes: list[str]
    input_size: int | None
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    path: Path
    maps_at_image_size: bool = False

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 RGB ``[B,3,H,W]`` -> label maps long ``[B,h,w]`` (h = w = input_size, or the image size)."""
        device = next(self.model.parameters()).device
        x = images.to(device).float() / 255
        if self.input_size is not None and tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False,
                              antialias=True)
        mean = torch.tensor(self.mean, device=device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=device).view(1, 3, 1, 1)
        try:
            logits = self.model((x - mean) / std)
        except RuntimeError as error:
            raise InputError(
                f"segmenter {self.path} cannot take images of size {tuple(x.shape[-2:])}: {error}. Set "
                f"\"input_size\" in {self.path / SIDECAR} to a size the model accepts (e.g. a multiple of 32)"
            ) from error
        if isinstance(logits, (tuple, list)):  # smp models with aux_params return (mask, label)
            logits = logits[0]
        if logits.shape[1] != len(self.classes):
            raise CheckpointError(f"segmenter {self.path} gives {logits.shape[1]} classes but names "
                                  f"{len(self.classes)} in {SIDECAR}")
        labels = logits.argmax(dim=1)
        if self.maps_at_image_size and labels.shape[-2:] != images.shape[-2:]:
            # face_parsing preprocessing: label maps back to the image size with nearest (docs/metrics.md)
            labels = F.interpolate(labels[:, None].float(), size=images.shape[-2:], mode="nearest")[:, 0].long()
        return labels


def _read_sidecar(folder: Path) -> dict[str, Any]:
    path = folder / SIDECAR
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(data, dict) or set(data) - _SIDECAR_KEYS:
        extra = sorted(set(data) - _SIDECAR_KEYS) if isinstance(data, dict) else data
        raise ConfigError(f"{path}: unknown keys {extra}; allowed: {sorted(_SIDECAR_KEYS)}")
    for key in ("mean", "std"):
        if key in data and (not isinstance(data[key], list) or len(data[key]) != 3):
            raise ConfigError(f"{path}: {key} must be a list of 3 numbers")
    size = data.get("input_size")
    if size is not None and (not isinstance(size, int) or size < 1):
        raise ConfigError(f"{path}: input_size must be a positive integer or null, got {size!r}")
    return data


def resolve_segmenter_folder(spec: str | Path) -> Path:
    """A path to an smp folder, or a weights key of kind segmenter."""
    path = weights.resolve(spec, kind="segmenter")
    if not path.is_dir():
        raise InputError(f"segmenter {path} must be a segmentation-models-pytorch folder (model.save_pretrained)")
    if not (path / "config.json").is_file():
        raise WeightsNotFoundError(f"{path} is not a segmentation-models-pytorch folder: config.json is missing "
                                   "(save the model with model.save_pretrained(DIR))")
    if not any((path / name).is_file() for name in ("model.safetensors", "pytorch_model.bin")):
        raise WeightsNotFoundError(f"segmenter folder {path} has no model.safetensors")
    return path


def load_segmenter(spec: str | Path, device: str = "cpu") -> Segmenter:
    """Load an smp folder (``smp.from_pretrained``) plus its optional ``segmenter.json``."""
    import segmentation_models_pytorch as smp

    folder = resolve_segmenter_folder(spec)
    sidecar = _read_sidecar(folder)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # smp prints "Loading weights from local directory"
            model = smp.from_pretrained(str(folder))
    except Exception as error:  # smp raises many types for a broken folder; name the folder
        raise CheckpointError(f"could not load the segmentation-models-pytorch folder {folder}: {error}") from error
    model = model.to(device).eval().requires_grad_(False)
    config = json.loads((folder / "config.json").read_text())
    n_classes = config.get("classes")
    if not isinstance(n_classes, int):
        raise CheckpointError(f"{folder / 'config.json'} has no integer 'classes'")
    classes = sidecar.get("classes") or [f"class_{i}" for i in range(n_classes)]
    if len(classes) != n_classes:
        raise ConfigError(f"{folder / SIDECAR} names {len(classes)} classes but the model has {n_classes}")
    mean = tuple(float(v) for v in sidecar.get("mean", IMAGENET_MEAN))
    std = tuple(float(v) for v in sidecar.get("std", IMAGENET_STD))
    return Segmenter(model, [str(c) for c in classes], sidecar.get("input_size"), mean, std, folder)  # type: ignore[arg-type]


BISENET_PREPROCESS = {
    # name: (input_size, mean, std); docs/metrics.md "BiSeNet face parser"
    "asyrp": (None, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),  # ToTensor only, own size (the Asyrp-lineage SC script)
    "face_parsing": (512, IMAGENET_MEAN, IMAGENET_STD),  # face-parsing.PyTorch test.py
}


def load_bisenet_segmenter(spec: str | Path, preprocess: str, device: str = "cpu") -> Segmenter:
    """A BiSeNet ``.pth`` file (path or weights key) with one of :data:`BISENET_PREPROCESS`."""
    from asyrp_bench.metrics.bisenet import CELEBAMASK_CLASSES, load_bisenet

    path = weights.resolve(spec, kind="segmenter")
    if not path.is_file():
        raise InputError(f"segmenter {path}: architecture bisenet needs a .pth file (79999_iter.pth), not a folder")
    size, mean, std = BISENET_PREPROCESS[preprocess]
    return Segmenter(load_bisenet(path, device), list(CELEBAMASK_CLASSES), size, mean, std, path,  # type: ignore[arg-type]
                     maps_at_image_size=True)


def infer_architecture(spec: str) -> str:
    """bisenet for a ``.pth``/``.pt`` path or a file-type weights key, smp otherwise (a folder)."""
    if spec in weights.ARTIFACTS:
        return "smp" if weights.ARTIFACTS[spec].is_dir else "bisenet"
    return "bisenet" if Path(spec).suffix in (".pth", ".pt") else "smp"


def label_agreement(reference: torch.Tensor, edit: torch.Tensor, num_classes: int,
                    ignore: Sequence[int] = ()) -> tuple[float, float]:
    """(pixel accuracy, mIoU over classes present in either map) of two label maps ``[H,W]`` (long)."""
    if reference.shape != edit.shape:
        raise InputError(f"label maps differ in shape: {tuple(reference.shape)} vs {tuple(edit.shape)}")
    ref, ed = reference.reshape(-1).long(), edit.reshape(-1).long()
    ignored = torch.zeros(num_classes, dtype=torch.bool, device=ref.device)
    if ignore:
        ignored[list(ignore)] = True
    keep = ~(ignored[ref] & ignored[ed])
    pixel_accuracy = float((ref[keep] == ed[keep]).float().mean()) if keep.any() else 1.0
    confusion = torch.bincount(ref * num_classes + ed, minlength=num_classes * num_classes)
    confusion = confusion.reshape(num_classes, num_classes).double()
    intersection = confusion.diagonal()
    union = confusion.sum(0) + confusion.sum(1) - intersection
    present = (union > 0) & ~ignored
    miou = float((intersection[present] / union[present]).mean()) if present.any() else 1.0
    return pixel_accuracy, miou


class SegConsistency(Metric):
    name: ClassVar[str] = "seg_consistency"
    version: ClassVar[int] = 1
    per_image: ClassVar[bool] = True
    keys: ClassVar[tuple[MetricKey, ...]] = (
        MetricKey("pixel_accuracy", True, "fraction of pixels with the same face-parsing label (Asyrp script)"),
        MetricKey("miou", True, "mean IoU over classes present in either label map"),
    )
    defaults: ClassVar[dict[str, Any]] = {"segmenter": "face_parsing_smp", "reference": "reconstruction",
                                          "ignore_classes": [], "architecture": None, "preprocess": None}
    description: ClassVar[str] = ("label agreement of face-parsing maps, reference vs edit (smp folder or BiSeNet "
                                  "79999_iter.pth)")

    def validate(self) -> None:
        self.params["reference"] = _choice(self.name, "reference", self.params["reference"],
                                           ("reconstruction", "source"))
        ignore = self.params["ignore_classes"]
        if not isinstance(ignore, list) or not all(isinstance(c, (str, int)) for c in ignore):
            raise ConfigError(f"metric {self.name!r}: ignore_classes must be a list of class names or indices")
        if not isinstance(self.params["segmenter"], (str, Path)):
            raise ConfigError(f"metric {self.name!r}: segmenter must be a folder path or a weights key")
        self.params["segmenter"] = str(self.params["segmenter"])
        self._resolve_architecture()

    def _resolve_architecture(self) -> None:
        """Fill architecture / preprocess for BiSeNet (named in the output config with the class names); an smp
        segmenter keeps its sidecar's preprocessing and its config stays as before (no new keys)."""
        arch = self.params["architecture"]
        if arch is None:
            arch = infer_architecture(self.params["segmenter"])
        arch = _choice(self.name, "architecture", arch, ("bisenet", "smp"))
        preprocess = self.params["preprocess"]
        if arch == "smp":
            if preprocess is not None:
                raise ConfigError(f"metric {self.name!r}: preprocess applies to architecture bisenet; an smp "
                                  f"segmenter's preprocessing is set in its {SIDECAR}")
            if self.params["architecture"] is None:
                del self.params["architecture"], self.params["preprocess"]
            return
        from asyrp_bench.metrics.bisenet import CELEBAMASK_CLASSES

        self.params["architecture"] = arch
        self.params["preprocess"] = _choice(self.name, "preprocess", preprocess or "asyrp", tuple(BISENET_PREPROCESS))
        self.params["classes"] = list(CELEBAMASK_CLASSES)

    def check_inputs(self, inputs: ScoringInputs) -> None:
        inputs.images(self.params["reference"])

    def _ignored_indices(self, segmenter: Segmenter) -> list[int]:
        out = []
        for c in self.params["ignore_classes"]:
            if isinstance(c, int):
                if not 0 <= c < len(segmenter.classes):
                    raise ConfigError(f"ignore_classes: index {c} outside 0..{len(segmenter.classes) - 1}")
                out.append(c)
            elif c in segmenter.classes:
                out.append(segmenter.classes.index(c))
            else:
                raise ConfigError(f"ignore_classes: {c!r} is not a class of {segmenter.path} "
                                  f"({', '.join(segmenter.classes)})")
        return out

    def compute(self, inputs: ScoringInputs, ctx: ScoringContext) -> list[Record]:
        self.check_inputs(inputs)
        spec = self.params["segmenter"]
        if self.params.get("architecture") == "bisenet":
            pre = self.params["preprocess"]
            segmenter = ctx.cached(("segmenter", spec, "bisenet", pre, ctx.device),
                                   lambda: load_bisenet_segmenter(spec, pre, ctx.device))
        else:
            segmenter = ctx.cached(("segmenter", spec, ctx.device), lambda: load_segmenter(spec, ctx.device))
        ignore = self._ignored_indices(segmenter)
        reference = inputs.images(self.params["reference"])
        n = len(inputs)
        records: list[Record] = []
        for part in ctx.batches(n):
            ref_maps = segmenter.predict(reference[part])
            edit_maps = segmenter.predict(inputs.edits[part])
            for j, image_id in enumerate(inputs.image_ids[part]):
                accuracy, miou = label_agreement(ref_maps[j], edit_maps[j], len(segmenter.classes), ignore)
                records.append(self.record(image_id, "pixel_accuracy", accuracy))
                records.append(self.record(image_id, "miou", miou))
            ctx.report("seg_consistency: face parsing", part.stop, n)
        return records
