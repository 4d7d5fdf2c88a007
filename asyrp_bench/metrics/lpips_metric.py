"""``lpips``: the LPIPS perceptual distance (the ``lpips`` package, the reference implementation), reference vs edit.

Definition (version 1), per image: ``distance`` = ``lpips.LPIPS(net=NET, version="0.1")(reference, edit)`` with
both images in [-1, 1] (``uint8 / 127.5 - 1``), lower is better. ``net``: alex (default, Asyrp's t_edit rule),
vgg or squeeze. The linear heads ship inside the lpips wheel; the torchvision backbone comes from a local file
(``weights``: a path or a weights key, default ``lpips_<net>``, also found in the torch hub cache) and is never
downloaded: the network is built with a random trunk (``pnet_rand=True``) and the file's ``features.*`` weights
are copied into it strictly (docs/metrics.md, "LPIPS").
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any, ClassVar

import torch

from asyrp_bench import weights as weights_registry
from asyrp_bench.errors import CheckpointError, ConfigError
from asyrp_bench.metrics.base import Metric, MetricKey, Record, ScoringContext, ScoringInputs, _choice
from asyrp_bench.metrics.strict_load import read_state_dict

NETS = ("alex", "vgg", "squeeze")
WEIGHTS_KEYS = {"alex": "lpips_alexnet", "vgg": "lpips_vgg", "squeeze": "lpips_squeezenet"}


def _backbone_state(trunk: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """Map torchvision ``features.<i>.*`` keys onto lpips's ``slice<k>.<i>.*`` (children keep their index)."""
    where = {index: name for name, slice_ in trunk.named_children() for index, _ in slice_.named_children()}
    mapped, extra = {}, []
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "features" and len(parts) > 2 and parts[1] in where:
            mapped[f"{where[parts[1]]}.{'.'.join(parts[1:])}"] = value
        elif parts[0] != "classifier":  # torchvision's classifier is not part of LPIPS
            extra.append(key)
    expected = trunk.state_dict()
    missing = sorted(set(expected) - set(mapped))
    shapes = sorted(k for k in mapped if k in expected and mapped[k].shape != expected[k].shape)
    unexpected = sorted(extra + [k for k in mapped if k not in expected])
    if missing or shapes or unexpected:
        raise CheckpointError(f"{path} is not the torchvision backbone LPIPS needs: missing {missing[:8]}, "
                              f"unexpected {unexpected[:8]}, wrong shapes {shapes[:8]}")
    return mapped


def load_lpips(net: str, weights: str | None, device: str = "cpu") -> torch.nn.Module:
    """``lpips.LPIPS(net, version 0.1)`` with its trunk from a local torchvision file (never downloaded)."""
    import lpips

    path = weights_registry.require(WEIGHTS_KEYS[net]) if weights is None else weights_registry.resolve(
        weights, kind="lpips")
    state = read_state_dict(path, f"torchvision {net}")
    with contextlib.redirect_stdout(io.StringIO()):  # lpips prints its setup
        model = lpips.LPIPS(net=net, version="0.1", pnet_rand=True, verbose=False)
    model.net.load_state_dict(_backbone_state(model.net, state, path), strict=True)
    return model.to(device).eval().requires_grad_(False)


class LPIPS(Metric):
    name: ClassVar[str] = "lpips"
    version: ClassVar[int] = 1
    per_image: ClassVar[bool] = True
    keys: ClassVar[tuple[MetricKey, ...]] = (
        MetricKey("distance", False, "LPIPS v0.1 distance, reference vs edit (lower = closer)"),
    )
    defaults: ClassVar[dict[str, Any]] = {"net": "alex", "weights": None, "reference": "source"}
    description: ClassVar[str] = "LPIPS perceptual distance (lpips package, v0.1, AlexNet by default)"

    def validate(self) -> None:
        self.params["net"] = _choice(self.name, "net", self.params["net"], NETS)
        self.params["reference"] = _choice(self.name, "reference", self.params["reference"],
                                           ("source", "reconstruction"))
        if self.params["weights"] is not None:
            if not isinstance(self.params["weights"], (str, Path)):
                raise ConfigError(f"metric {self.name!r}: weights must be a file path or a weights key")
            self.params["weights"] = str(self.params["weights"])
        self.params["lpips_version"] = "0.1"

    def check_inputs(self, inputs: ScoringInputs) -> None:
        inputs.images(self.params["reference"])

    @torch.no_grad()
    def compute(self, inputs: ScoringInputs, ctx: ScoringContext) -> list[Record]:
        self.check_inputs(inputs)
        net, spec = self.params["net"], self.params["weights"]
        model = ctx.cached(("lpips", net, spec, ctx.device), lambda: load_lpips(net, spec, ctx.device))
        reference = inputs.images(self.params["reference"])
        n = len(inputs)
        records: list[Record] = []
        for part in ctx.batches(n):
            ref = reference[part].to(ctx.device).float() / 127.5 - 1
            edit = inputs.edits[part].to(ctx.device).float() / 127.5 - 1
            distances = model(ref, edit).flatten().cpu()
            for image_id, value in zip(inputs.image_ids[part], distances.tolist(), strict=True):
                records.append(self.record(image_id, "distance", value))
            ctx.report("lpips: distances", part.stop, n)
        return records
