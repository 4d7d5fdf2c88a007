"""Text names of the world's attributes and the captions the tiny CLIP is trained on.

Asyrp's text direction averages E_T(template(target)) − E_T(template(source)) over the 79 ImageNet templates
(spec §4.4) with sources like "face" and targets like "smiling face". The tiny CLIP is therefore trained on
captions made of those same templates around attribute phrases, where every attribute word is optional: the
bare "face" matches every face, "smiling face" only smiling ones. Contrastive targets count a caption as
positive for every image it is true of (:func:`consistent`), so the text tower learns additive attribute
directions instead of memorising whole captions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from asyrp_bench.world.generator import HAIR_PALETTE, HAIR_STYLES, FaceParams

# thresholds of the attribute words (values between bands get no word: the caption then says nothing)
SMILING_MIN, SAD_MAX, NEUTRAL_ABS = 0.4, -0.4, 0.15
TANNED_MIN, PALE_MAX = 0.6, 0.35

#: the zero-shot classes used for ``clip_top1`` (per attribute: class word -> phrase)
ZERO_SHOT: dict[str, dict[str, str]] = {
    "smile": {"smiling": "smiling face", "neutral": "neutral face", "sad": "sad face"},
    "tan": {"tanned": "tanned face", "pale": "pale face"},
    "glasses": {"glasses": "face with glasses", "no_glasses": "face without glasses"},
}

#: the edit prompts of the world (source -> target), as in the Asyrp text dictionary (spec §4.5)
EDIT_PROMPTS: dict[str, tuple[str, str]] = {
    "smiling": ("face", "smiling face"),
    "sad": ("face", "sad face"),
    "tanned": ("face", "tanned face"),
    "pale": ("face", "pale face"),
    "glasses": ("face", "face with glasses"),
}


def templates() -> list[Callable[[str], str]]:
    """The 79 ImageNet templates of the Asyrp / StyleGAN-NADA list: open_clip's 80 OpenAI ones minus the
    second ("a photo of many {}.")."""
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    out = list(OPENAI_IMAGENET_TEMPLATES)
    del out[1]
    return out


def attribute_words(params: FaceParams) -> dict[str, np.ndarray]:
    """Per face, the word of each attribute ('' inside the gaps between bands), [B] str arrays."""
    smile, tan = np.asarray(params.smile), np.asarray(params.tan)
    s = np.full(len(params), "", dtype=object)
    s[smile >= SMILING_MIN] = "smiling"
    s[smile <= SAD_MAX] = "sad"
    s[np.abs(smile) <= NEUTRAL_ABS] = "neutral"
    t = np.full(len(params), "", dtype=object)
    t[tan >= TANNED_MIN] = "tanned"
    t[tan <= PALE_MAX] = "pale"
    g = np.where(np.asarray(params.glasses) > 0.5, "glasses", "no_glasses").astype(object)
    return {"smile": s, "tan": t, "glasses": g, "hair": hair_words(params)}


def hair_words(params: FaceParams) -> np.ndarray:
    """'bald' or the name of the nearest palette colour ('black', 'blond', ...)."""
    names = list(HAIR_PALETTE)
    pal = np.asarray(list(HAIR_PALETTE.values()), dtype=np.float64) / 255.0
    nearest = np.argmin(((np.asarray(params.hair_color)[:, None, :] - pal[None]) ** 2).sum(-1), axis=1)
    words = np.asarray([names[i] for i in nearest], dtype=object)
    words[np.asarray(params.hair_style) == HAIR_STYLES.index("bald")] = "bald"
    return words


def phrase(smile: str = "", tan: str = "", glasses: str = "", hair: str = "") -> str:
    """An attribute phrase around the noun "face": ("smiling", "tanned", "glasses") -> "smiling tanned face with
    glasses"."""
    words = [w for w in (smile, tan) if w]
    text = " ".join([*words, "face"])
    extras = []
    if glasses == "glasses":
        extras.append("glasses")
    if hair == "bald":
        text = "bald " + text
    elif hair:
        extras.append(f"{hair} hair")
    if extras:
        text += " with " + " and ".join(extras)
    if glasses == "no_glasses":
        text += " without glasses"
    return text


def sample_captions(
    params: FaceParams, rng: np.random.Generator, keep: float = 0.6
) -> tuple[list[str], list[dict[str, str]]]:
    """One training caption per face: a random template around a phrase that names a random subset of the
    face's attribute words (each kept with probability ``keep``). Returns the captions and the words used."""
    words = attribute_words(params)
    temps = templates()
    caps, used = [], []
    for i in range(len(params)):
        chosen = {}
        for key in ("smile", "tan", "glasses", "hair"):
            word = words[key][i]
            p = keep * (0.5 if key == "hair" or word == "no_glasses" else 1.0)
            if word and rng.uniform() < p:
                chosen[key] = word
        template = temps[int(rng.integers(len(temps)))]
        caps.append(template(phrase(**chosen)))
        used.append(chosen)
    return caps, used


def consistent(used: Sequence[dict[str, str]], params: FaceParams) -> np.ndarray:
    """[B_images, B_captions] bool: caption j (its words ``used[j]``) is true of face i."""
    words = attribute_words(params)
    out = np.ones((len(params), len(used)), dtype=bool)
    for j, chosen in enumerate(used):
        for key, word in chosen.items():
            out[:, j] &= words[key] == word
    return out
