"""Named edits: the official prompt pairs (spec §4.5, ``utils/text_dic.py: SRC_TRG_TXT_DIC``, entry ``[0]`` of each).

An edit is one (source, target) text pair; one editor is trained per pair. ``t_edit`` / ``t_boost`` are filled
only where a published script states them (the DL2 reproduction's smiling run: 513 / 167, metrics_and_peers.md
§6.2); everywhere else they come from the user (the LPIPS rule of spec §5 is not implemented here).
The official table's quirks are kept out: ``short_hair`` (mapped to "long hair" upstream), ``jocker`` and the
duplicated ``dog_fat`` are not listed.
"""

from __future__ import annotations

from dataclasses import dataclass

from asyrp_bench.registry import Registry


@dataclass(frozen=True)
class EditPrompt:
    """One named edit.

    Attributes:
        name: registry key (``asyrp-bench train --edit smiling``).
        source, target: the text pair of the directional CLIP loss.
        t_edit, t_boost: the interval used by a published run of this edit, or None (then the user gives them).
        note: where t_edit / t_boost come from.
    """

    name: str
    source: str
    target: str
    t_edit: int | None = None
    t_boost: int | None = None
    note: str = ""


EDIT_PROMPTS: Registry[EditPrompt] = Registry("edit")


def register_edit(edit: EditPrompt) -> EditPrompt:
    EDIT_PROMPTS.register(edit.name)(edit)
    return edit


def get_edit(name: str) -> EditPrompt:
    """The named edit (unknown names list the valid ones, with a "did you mean")."""
    return EDIT_PROMPTS.get(name)


_TABLE: tuple[tuple[str, str, str], ...] = (
    ("smiling", "face", "smiling face"),
    ("sad", "face", "sad face"),
    ("angry", "face", "angry face"),
    ("tanned", "face", "tanned face"),
    ("pixar", "Human", "3D render in the style of Pixar"),
    ("neanderthal", "Human", "Neanderthal"),
    ("young", "person", "young person"),
    ("old", "person", "old person"),
    ("makeup", "person", "person with makeup"),
    ("curly_hair", "person", "person with curly hair"),
    ("nicolas", "Person", "Nicolas Cage"),
    ("frida", "photo", "self-portrait by Frida Kahlo"),
    ("modigliani", "photo", "Painting in Modigliani style"),
    ("zombie", "Human", "Zombie"),
    ("man", "a person", "a man"),
    ("woman", "a person", "a woman"),
    ("dog_happy", "Dog", "Happy Dog"),
    ("dog_sleepy", "Dog", "Sleepy Dog"),
    ("dog_angry", "Dog", "Angry Dog"),
    ("dog_wolf", "Dog", "Wolf"),
    ("dog_yorkshire", "Dog", "Yorkshire Terrier"),
    ("church_gothic", "Church", "Gothic Church"),
    ("church_red_brick", "Church", "Red brick wall Church"),
    ("church_temple", "Church", "Temple"),
    ("church_wooden_church", "Church", "Wooden Church"),
    ("church_factory", "church", "factory with chimneys"),
    ("church_department_store", "church", "department store"),
    ("bedroom_hotel", "Bedroom", "Hotel Bedroom"),
    ("bedroom_princess", "Bedroom", "Princess Bedroom"),
    ("metface_smiling", "painting of a person", "painting of a Smiling person"),
    ("metface_sad", "painting of a person", "painting of a Sad person"),
    ("metface_angry", "painting of a person", "painting of a Angry person"),
    ("metface_disgusted", "painting of a person", "painting of a Disgusted person"),
)

# Intervals stated by a published script (metrics_and_peers.md §6.2: script_inference_smiling.sh).
_INTERVALS = {"smiling": (513, 167, "DL2 reproduction, scripts/reproduction/script_inference_smiling.sh")}

for _name, _source, _target in _TABLE:
    _t_edit, _t_boost, _note = _INTERVALS.get(_name, (None, None, ""))
    register_edit(EditPrompt(_name, _source, _target, _t_edit, _t_boost, _note))
