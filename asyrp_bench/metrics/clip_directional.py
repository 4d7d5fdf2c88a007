"""``clip_directional`` (S_dir): does the edit move the image along the text direction in CLIP space?

Definition (version 1), per image (metrics_and_peers.md §1.2; DESIGN §4):

    s_dir = cos( (E_I(edit) − E_I(source)) / (‖·‖ + 1e-7),  text_direction(src_text, tgt_text) )

with L2-normalised image embeddings, the text direction averaged over the 79 ImageNet templates and normalised
(asyrp_bench.clip), and images preprocessed by open_clip's own evaluation transform from the uint8 pixels (PIL
bicubic resize of the shorter side to the model's input size, centre crop, CLIP normalisation). Units: cosine,
higher = stronger edit along the prompt direction. The Asyrp paper's table may be in 1 − cos units
(metrics_and_peers.md §1.6); this metric reports the raw cosine.

``image_text_sim`` = cos(E_I(edit), E_T(tgt_text)) with the raw target prompt (no templates), per image.
An identical source and edit give s_dir = 0 (a zero edit direction), never NaN.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from asyrp_bench import weights
from asyrp_bench.clip import DEFAULT_MODEL, DEFAULT_PRETRAINED, directional_cosine, load_clip
from asyrp_bench.errors import ConfigError, InputError
from asyrp_bench.metrics.base import Metric, MetricKey, Record, ScoringContext, ScoringInputs


class ClipDirectional(Metric):
    name: ClassVar[str] = "clip_directional"
    version: ClassVar[int] = 1
    per_image: ClassVar[bool] = True
    keys: ClassVar[tuple[MetricKey, ...]] = (
        MetricKey("s_dir", True, "cosine of the CLIP image edit direction and the 79-template text direction"),
        MetricKey("image_text_sim", True, "cosine of the edited image and the raw target prompt"),
    )
    defaults: ClassVar[dict[str, Any]] = {"model": DEFAULT_MODEL, "pretrained": DEFAULT_PRETRAINED}
    description: ClassVar[str] = "directional CLIP similarity (open_clip, 79 templates), units: cosine"

    def validate(self) -> None:
        if not isinstance(self.params["model"], str):
            raise ConfigError(f"metric {self.name!r}: model must be a string (open_clip name, local-dir:PATH or "
                              "a weights key)")
        if self.params["pretrained"] is not None:
            self.params["pretrained"] = str(self.params["pretrained"])
        elif not self.params["model"].startswith("local-dir:") and self.params["model"] not in weights.ARTIFACTS:
            raise ConfigError(f"metric {self.name!r}: model {self.params['model']!r} needs `pretrained` (a tag such "
                              "as openai, a weights file or a weights key); only local-dir: folders and folder "
                              "weights keys carry their own weights")

    def check_inputs(self, inputs: ScoringInputs) -> None:
        if not inputs.src_text or not inputs.tgt_text:
            raise InputError("clip_directional needs the edit's source and target prompts (asyrp-bench score "
                             "--src-text TEXT --tgt-text TEXT)")

    def compute(self, inputs: ScoringInputs, ctx: ScoringContext) -> list[Record]:
        self.check_inputs(inputs)
        assert inputs.src_text is not None and inputs.tgt_text is not None
        clip = load_clip(self.params["model"], self.params["pretrained"], ctx.device)
        direction = clip.text_direction(inputs.src_text, inputs.tgt_text)
        target = clip.encode_text([inputs.tgt_text])[0]
        n = len(inputs)
        s_dir: list[torch.Tensor] = []
        sim: list[torch.Tensor] = []
        for part in ctx.batches(n):
            # sources and edits go through identical batches, so an unchanged image gives exactly 0
            src = clip.encode_uint8(inputs.sources[part])
            edit = clip.encode_uint8(inputs.edits[part])
            s_dir.append(directional_cosine(src, edit, direction).cpu())
            sim.append((edit @ target).cpu())
            ctx.report("clip_directional: CLIP features", part.stop, n)
        s_dir_all, sim_all = torch.cat(s_dir), torch.cat(sim)
        records: list[Record] = []
        for i, image_id in enumerate(inputs.image_ids):
            records.append(self.record(image_id, "s_dir", float(s_dir_all[i])))
            records.append(self.record(image_id, "image_text_sim", float(sim_all[i])))
        return records
