"""``identity`` (ID): cosine similarity of face-recognition embeddings of the reference and the edited image.

Definition (version 1), per image: ``cosine`` = cos(emb(reference), emb(edit)) with a registered face embedder
(default ``facenet_vggface2``: MTCNN-aligned 160 px crops into InceptionResnetV1/VGGFace2, see
:mod:`asyrp_bench.metrics.face_embedders`). Reference = source (default) or reconstruction.
``arcface_irse50`` (ArcFace IR-SE50, DiffusionCLIP's IDLoss recipe, :mod:`asyrp_bench.metrics.irse50`) has no
face detector; its config says so (``face_detector``).

Images where no face is found (in the reference, the edit, or both) are never silently dropped: each image gets
``no_face`` = 1 or 0. With ``no_face: count`` (default) those images get no ``cosine`` (its N is smaller and the
``no_face`` mean says by how much); with ``no_face: center_crop`` the embedder's fixed fallback crop is used and
every image gets a ``cosine``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from asyrp_bench.errors import ConfigError
from asyrp_bench.hashing import canonical_json
from asyrp_bench.metrics.base import (
    Metric,
    MetricKey,
    Record,
    ScoringContext,
    ScoringInputs,
    _choice,
)
from asyrp_bench.metrics.face_embedders import FACE_EMBEDDERS

ARCFACE_NOTE = ("none: aligned faces assumed (CelebA-HQ); [-1, 1] RGB, non-256 px images average-pooled to 256 "
                "first, crop rows 35:223 cols 32:220, average-pooled to 112 (DiffusionCLIP IDLoss)")


class Identity(Metric):
    name: ClassVar[str] = "identity"
    version: ClassVar[int] = 1
    per_image: ClassVar[bool] = True
    keys: ClassVar[tuple[MetricKey, ...]] = (
        MetricKey("cosine", True, "cosine of face embeddings, reference vs edit"),
        MetricKey("no_face", None, "1 when no face was found in the reference or the edit, else 0"),
    )
    defaults: ClassVar[dict[str, Any]] = {"embedder": "facenet_vggface2", "weights": None, "no_face": "count",
                                          "reference": "source", "embedder_params": {}}
    description: ClassVar[str] = "face identity cosine (MTCNN + InceptionResnetV1 VGGFace2 by default)"

    def validate(self) -> None:
        self.params["no_face"] = _choice(self.name, "no_face", self.params["no_face"], ("count", "center_crop"))
        self.params["reference"] = _choice(self.name, "reference", self.params["reference"],
                                           ("source", "reconstruction"))
        if self.params["embedder"] not in FACE_EMBEDDERS:
            raise ConfigError(f"metric 'identity': {FACE_EMBEDDERS.unknown_message(str(self.params['embedder']))}")
        if not isinstance(self.params["embedder_params"], dict):
            raise ConfigError("metric 'identity': embedder_params must be a mapping")
        if self.params["weights"] is not None:
            self.params["weights"] = str(self.params["weights"])
        if self.params["embedder"] == "arcface_irse50":
            # named in the output config: this recipe has no detector and a fixed crop (docs/metrics.md)
            self.params["face_detector"] = ARCFACE_NOTE

    def check_inputs(self, inputs: ScoringInputs) -> None:
        inputs.images(self.params["reference"])

    def compute(self, inputs: ScoringInputs, ctx: ScoringContext) -> list[Record]:
        self.check_inputs(inputs)
        name, spec, extra = self.params["embedder"], self.params["weights"], self.params["embedder_params"]
        embedder = ctx.cached(
            ("face-embedder", name, spec, canonical_json(extra), ctx.device),
            lambda: FACE_EMBEDDERS.get(name).load(spec, ctx.device, **extra),
        )
        reference = inputs.images(self.params["reference"])
        n = len(inputs)
        cosines, found = [], []
        for part in ctx.batches(n):
            ref_emb, ref_found = embedder.embed(reference[part].float() / 255)
            edit_emb, edit_found = embedder.embed(inputs.edits[part].float() / 255)
            cosines.append(F.cosine_similarity(ref_emb.float(), edit_emb.float(), dim=-1).cpu())
            found.append((ref_found & edit_found).cpu())
            ctx.report(f"identity: {name} embeddings", part.stop, n)
        cosine, both = torch.cat(cosines), torch.cat(found)
        records: list[Record] = []
        for i, image_id in enumerate(inputs.image_ids):
            if bool(both[i]) or self.params["no_face"] == "center_crop":
                records.append(self.record(image_id, "cosine", float(cosine[i])))
            records.append(self.record(image_id, "no_face", 0.0 if bool(both[i]) else 1.0))
        return records
