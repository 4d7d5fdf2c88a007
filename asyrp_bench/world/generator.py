"""A procedural generator of cartoon faces with known parameters and pixel-exact part masks.

Every face is a pure function of its parameters, and its parameters are a pure function of one integer seed
(``numpy.random.default_rng(seed)``, never a global RNG), so a face can be re-rendered anywhere from its seed.
The parameters split in two:

* **identity** (what a person "is"): face shape, hair style and colour, eye spacing / size / height, mouth
  width, background and clothes colour;
* **attributes** (what an edit may change), each with text names for CLIP captions:
  ``smile`` in [-1, 1] (mouth curvature: -1 sad, 0 neutral, +1 smiling; the mouth corners move by
  ``SMILE_CORNER_PX`` pixels at 32 px), ``tan`` in [0, 1] (skin tone: 0 pale, 1 tanned) and ``glasses``
  in {0, 1}.

:func:`with_attributes` keeps the identity and changes attributes: the ground truth of an edit.

Rendering draws layers back to front on a ``supersample``-times finer grid and box-filters down (anti-aliasing
helps the DDPM); the part mask of a pixel is the layer that covers most of its sub-pixels (ties go to the layer
drawn last), so masks are exact functions of the geometry and agree with the image: a pixel whose sub-pixels
are all one part has exactly that part's colour. Ties (exactly half the sub-pixels each) go to the part that
is usually on top: glasses > mouth > eyes > hair > skin > clothes > background.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from asyrp_bench.errors import InputError

#: part classes of the masks, in label order (label = index)
CLASSES: tuple[str, ...] = ("background", "skin", "hair", "eyes", "mouth", "glasses", "clothes")
BACKGROUND, SKIN, HAIR, EYES, MOUTH, GLASSES, CLOTHES = range(len(CLASSES))

# tie-break priority per class (index = label), added to 16 x the sub-pixel counts
_TIE_PRIORITY = np.asarray([0, 2, 3, 4, 5, 6, 1], dtype=np.int32)

ATTRIBUTES: tuple[str, ...] = ("smile", "tan", "glasses")
ATTRIBUTE_RANGES: dict[str, tuple[float, float]] = {"smile": (-1.0, 1.0), "tan": (0.0, 1.0), "glasses": (0.0, 1.0)}

HAIR_STYLES: tuple[str, ...] = ("short", "long", "bob", "spiky", "bald")
HAIR_PALETTE: dict[str, tuple[int, int, int]] = {
    "black": (28, 24, 26), "brown": (96, 60, 34), "blond": (222, 186, 104), "red": (176, 72, 34),
    "grey": (160, 160, 166), "blue": (52, 84, 170),
}
PALE_SKIN = (250, 222, 204)
TANNED_SKIN = (150, 92, 56)
MOUTH_COLOR = (150, 20, 38)
EYE_WHITE = (255, 255, 255)
PUPIL_COLOR = (16, 18, 44)
GLASSES_COLOR = (34, 34, 34)

IMAGE_SIZE = 32
SUPERSAMPLE = 4
#: vertical travel of each mouth corner between neutral and full smile, in units of the image size
SMILE_AMPLITUDE = 0.085
SMILE_CORNER_PX = SMILE_AMPLITUDE * IMAGE_SIZE


@dataclass(frozen=True)
class FaceParams:
    """Parameters of B faces as a struct of numpy arrays (lengths in units of the image size, y down).

    Identity: ``bg_color``/``clothes_color``/``hair_color`` [B,3] in [0,1], ``face_w``/``face_h`` half axes,
    ``face_p`` superellipse exponent (2 round .. 3.2 square), ``face_taper`` chin narrowing, ``hair_style`` [B]
    int index into ``HAIR_STYLES``, ``hair_fringe`` fringe depth, ``eye_dx`` half eye spacing, ``eye_r`` eye
    radius, ``eye_y`` eye height, ``mouth_w`` mouth half width. Attributes: ``smile``, ``tan``, ``glasses``.
    """

    bg_color: np.ndarray
    clothes_color: np.ndarray
    hair_color: np.ndarray
    face_w: np.ndarray
    face_h: np.ndarray
    face_p: np.ndarray
    face_taper: np.ndarray
    hair_style: np.ndarray
    hair_fringe: np.ndarray
    eye_dx: np.ndarray
    eye_r: np.ndarray
    eye_y: np.ndarray
    mouth_w: np.ndarray
    smile: np.ndarray
    tan: np.ndarray
    glasses: np.ndarray

    def __len__(self) -> int:
        return int(self.smile.shape[0])

    def __getitem__(self, index: int | slice | np.ndarray | Sequence[int]) -> FaceParams:
        if isinstance(index, int):
            index = [index]
        return FaceParams(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @property
    def identity_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in fields(self) if f.name not in ATTRIBUTES)

    def identity_vector(self) -> np.ndarray:
        """All identity parameters of each face flattened to [B, 19] float (hair style as its index)."""
        cols = [np.asarray(getattr(self, n), dtype=np.float64).reshape(len(self), -1) for n in self.identity_names]
        return np.concatenate(cols, axis=1)

    def attributes(self) -> dict[str, np.ndarray]:
        return {name: np.asarray(getattr(self, name), dtype=np.float64) for name in ATTRIBUTES}

    def to_dict(self) -> dict[str, list]:
        """JSON-ready parameters (lists), for manifests."""
        return {f.name: np.asarray(getattr(self, f.name)).tolist() for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, list]) -> FaceParams:
        out = {}
        for f in fields(cls):
            dtype = np.int64 if f.name == "hair_style" else np.float64
            out[f.name] = np.asarray(data[f.name], dtype=dtype)
        return cls(**out)

    @staticmethod
    def concat(parts: Sequence[FaceParams]) -> FaceParams:
        return FaceParams(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(FaceParams)})


def _one_face(rng: np.random.Generator, glasses_prob: float) -> dict[str, object]:
    # The draw order is part of the contract: changing it changes every face of every seed.
    hue = rng.uniform(0.0, 1.0)
    bg = _hsv_to_rgb(hue, rng.uniform(0.15, 0.55), rng.uniform(0.55, 0.95))
    clothes = _hsv_to_rgb(rng.uniform(0.0, 1.0), rng.uniform(0.3, 0.8), rng.uniform(0.25, 0.85))
    palette = list(HAIR_PALETTE.values())
    base = np.asarray(palette[int(rng.integers(len(palette)))], dtype=np.float64)
    hair = np.clip(base + rng.uniform(-14, 14, size=3), 0, 255) / 255.0
    return {
        "bg_color": bg, "clothes_color": clothes, "hair_color": hair,
        "face_w": rng.uniform(0.25, 0.31), "face_h": rng.uniform(0.31, 0.36), "face_p": rng.uniform(2.0, 3.2),
        "face_taper": rng.uniform(0.0, 0.3), "hair_style": int(rng.integers(len(HAIR_STYLES))),
        "hair_fringe": rng.uniform(0.08, 0.3), "eye_dx": rng.uniform(0.09, 0.135),
        "eye_r": rng.uniform(0.042, 0.06), "eye_y": rng.uniform(0.47, 0.52), "mouth_w": rng.uniform(0.11, 0.15),
        "smile": rng.uniform(-1.0, 1.0), "tan": rng.uniform(0.0, 1.0),
        "glasses": float(rng.uniform(0.0, 1.0) < glasses_prob),
    }


def sample_params(seeds: Sequence[int] | np.ndarray, glasses_prob: float = 0.35) -> FaceParams:
    """Parameters of one face per seed: face ``i`` depends on ``seeds[i]`` only (not on the batch).

    Attributes are drawn uniformly (``smile`` in [-1,1], ``tan`` in [0,1]) and ``glasses`` with probability
    ``glasses_prob``.
    """
    seeds = [int(s) for s in np.asarray(seeds).reshape(-1)]
    if not seeds:
        raise InputError("sample_params needs at least one seed")
    if any(s < 0 for s in seeds):
        raise InputError("face seeds must be non-negative integers")
    rows = [_one_face(np.random.default_rng(s), glasses_prob) for s in seeds]
    out = {}
    for f in fields(FaceParams):
        dtype = np.int64 if f.name == "hair_style" else np.float64
        out[f.name] = np.asarray([r[f.name] for r in rows], dtype=dtype)
    return FaceParams(**out)


def with_attributes(params: FaceParams, **attrs: float | np.ndarray) -> FaceParams:
    """The same identities with some attributes replaced (scalars broadcast): the ground truth of an edit."""
    unknown = set(attrs) - set(ATTRIBUTES)
    if unknown:
        raise InputError(f"unknown attribute(s) {sorted(unknown)}; attributes are {list(ATTRIBUTES)}")
    new = {}
    for name, value in attrs.items():
        lo, hi = ATTRIBUTE_RANGES[name]
        arr = np.broadcast_to(np.asarray(value, dtype=np.float64), (len(params),)).copy()
        if np.any(arr < lo) or np.any(arr > hi):
            raise InputError(f"attribute {name!r} must lie in [{lo}, {hi}]")
        new[name] = arr
    return replace(params, **new)


@dataclass(frozen=True)
class RenderedFaces:
    """Images [B,3,S,S] float32 in [0,1] and part masks [B,S,S] int64 (labels index ``CLASSES``)."""

    images: Tensor
    masks: Tensor

    def to_minus1_1(self) -> Tensor:
        return self.images * 2.0 - 1.0


def render(params: FaceParams, size: int = IMAGE_SIZE, supersample: int = SUPERSAMPLE) -> RenderedFaces:
    """Render faces with anti-aliasing (box filter over ``supersample``² sub-pixels) and their part masks."""
    if size < 8 or supersample < 1:
        raise InputError(f"size must be >= 8 and supersample >= 1, got {size}, {supersample}")
    images, masks = [], []
    s = supersample
    for start in range(0, len(params), _CHUNK):
        chunk = params[np.arange(start, min(start + _CHUNK, len(params)))]
        layers = _layers(chunk, size * s)  # [n, fine, fine] uint8
        # coverage of each drawing layer per pixel = the box filter over its sub-pixels (anti-aliasing)
        onehot = layers[:, None] == np.arange(_N_LAYERS, dtype=np.uint8).reshape(1, -1, 1, 1)
        cover = F.avg_pool2d(torch.from_numpy(onehot.astype(np.float32)), s) if s > 1 else torch.from_numpy(
            onehot.astype(np.float32))  # [n, L, size, size]
        # each layer has one colour per face
        images.append(torch.einsum("nlhw,nlc->nchw", cover, torch.from_numpy(_palette(chunk))).numpy())
        counts = torch.einsum("nlhw,lk->nhwk", cover, _LAYER_TO_CLASS).numpy() * (s * s)
        masks.append((np.rint(counts).astype(np.int32) * 16 + _TIE_PRIORITY).argmax(axis=-1))
    image_t = torch.from_numpy(np.ascontiguousarray(np.concatenate(images))).clamp_(0.0, 1.0)
    return RenderedFaces(images=image_t, masks=torch.from_numpy(np.concatenate(masks).astype(np.int64)))


_CHUNK = 128
# Internal drawing layers (several may share a part class): the eye white and the pupil are both "eyes".
_L_BG, _L_SKIN, _L_HAIR, _L_EYE, _L_PUPIL, _L_MOUTH, _L_GLASSES, _L_CLOTHES = range(8)
_N_LAYERS = 8
_LAYER_CLASS = (BACKGROUND, SKIN, HAIR, EYES, EYES, MOUTH, GLASSES, CLOTHES)
_LAYER_TO_CLASS = F.one_hot(torch.tensor(_LAYER_CLASS), len(CLASSES)).float()  # [L, K]


def _palette(params: FaceParams) -> np.ndarray:
    """The colour of every drawing layer of every face, [n, 8, 3] float32 in [0, 1]."""
    n = len(params)
    pal = np.empty((n, _N_LAYERS, 3), dtype=np.float32)
    pal[:, _L_BG] = params.bg_color
    pal[:, _L_SKIN] = _skin_color(params.tan)
    pal[:, _L_HAIR] = params.hair_color
    pal[:, _L_EYE] = np.asarray(EYE_WHITE) / 255.0
    pal[:, _L_PUPIL] = np.asarray(PUPIL_COLOR) / 255.0
    pal[:, _L_MOUTH] = np.asarray(MOUTH_COLOR) / 255.0
    pal[:, _L_GLASSES] = np.asarray(GLASSES_COLOR) / 255.0
    pal[:, _L_CLOTHES] = params.clothes_color
    return pal


def _layers(params: FaceParams, fine: int) -> np.ndarray:
    """The drawing layer of every sub-pixel, [n, fine, fine] uint8, painted back to front (numpy: its boolean
    kernels are several times faster than torch's on CPU)."""
    n = len(params)
    coords = (np.arange(fine, dtype=np.float32) + 0.5) / fine
    y = coords.reshape(1, fine, 1)
    x = coords.reshape(1, 1, fine)
    layers = np.zeros((n, fine, fine), dtype=np.uint8)

    def col(name: str) -> np.ndarray:
        return np.asarray(getattr(params, name), dtype=np.float32).reshape(n, 1, 1)

    def paint(region: np.ndarray, layer: int) -> None:
        np.copyto(layers, np.uint8(layer), where=np.broadcast_to(region, layers.shape))

    cx, cy = np.float32(0.5), np.float32(0.56)
    fw, fh, fp, taper = col("face_w"), col("face_h"), col("face_p"), col("face_taper")
    style = np.asarray(params.hair_style).reshape(n, 1, 1)
    dx, dy = np.abs(x - cx), y - cy
    # hair behind the head (long and bob styles reach down the sides)
    cap_w, cap_h = fw * np.float32(1.14), fh * np.float32(1.12)
    cap = np.square(dx / cap_w) + np.square((y - (cy - np.float32(0.02))) / cap_h) <= 1.0
    long_back = (style == 1) & (dx <= cap_w) & (y >= cy - 0.05) & (y <= 0.9)
    bob_back = (style == 2) & (dx <= cap_w * np.float32(0.98)) & (y >= cy - 0.05) & (y <= cy + 0.16)
    paint(long_back | bob_back | (cap & ((style == 1) | (style == 2))), _L_HAIR)
    # neck and clothes
    paint((dx <= fw * np.float32(0.38)) & (y >= cy) & (y <= 0.95), _L_SKIN)
    shoulders = np.square((x - cx) / np.float32(0.42)) + np.square((y - np.float32(1.08)) / np.float32(0.2)) <= 1
    paint(shoulders | (y >= 0.985), _L_CLOTHES)
    # face: a superellipse whose width narrows towards the chin
    width = fw * (1.0 - taper * np.clip(dy / fh, 0.0, 1.0))
    paint(np.power(dx / width, fp) + np.power(np.abs(dy) / fh, fp) <= 1.0, _L_SKIN)
    # hair in front: the top of the cap down to the fringe line (none for bald), spikes above it
    fringe_y = cy - fh + col("hair_fringe") * fh
    top = cap & (y <= fringe_y) & (style != 4)
    spike_base = np.sin((x - cx) * np.float32(70.0)) * np.float32(0.035) + (cy - cap_h - np.float32(0.02))
    spikes = (style == 3) & (y <= fringe_y + np.float32(0.02)) & (y >= spike_base) & (dx <= cap_w * np.float32(0.9))
    paint(top | spikes, _L_HAIR)
    # eyes: white with a dark pupil
    ey, er, edx = col("eye_y"), col("eye_r"), col("eye_dx")
    ex = np.minimum(np.abs(dx - edx), np.abs(dx + edx))
    d2 = np.square(ex / (er * np.float32(1.15))) + np.square((y - ey) / er)
    paint(d2 <= 1.0, _L_EYE)
    paint(d2 <= 0.4, _L_PUPIL)
    # mouth: a thick parabola; its corners move up with smile, its middle down (the mean height stays put)
    mw, smile = col("mouth_w"), col("smile")
    u = np.clip((x - cx) / mw, -1.0, 1.0)
    curve = cy + np.float32(0.56) * fh + np.float32(SMILE_AMPLITUDE) * smile * (np.float32(0.5) - np.square(u))
    paint((np.abs(y - curve) <= 0.028) & (dx <= mw), _L_MOUTH)
    # glasses: rings round the eyes and a bridge
    ring_r = er * np.float32(1.15) + np.float32(0.035)
    dist = np.sqrt(np.square(ex) + np.square(y - ey))
    rings = np.abs(dist - ring_r) <= 0.017
    bridge = (np.abs(y - (ey - np.float32(0.01))) <= 0.015) & (dx <= edx - ring_r + np.float32(0.01))
    wear = (np.asarray(params.glasses) > 0.5).reshape(n, 1, 1)
    paint((rings | bridge) & wear, _L_GLASSES)
    return layers


def render_seeds(seeds: Sequence[int] | np.ndarray, size: int = IMAGE_SIZE, **attrs: float) -> RenderedFaces:
    """Shortcut: sample the faces of ``seeds`` (optionally overriding attributes) and render them."""
    params = sample_params(seeds)
    if attrs:
        params = with_attributes(params, **attrs)
    return render(params, size=size)


def _skin_color(tan: np.ndarray) -> np.ndarray:
    """Skin RGB in [0, 1] for tan in [0, 1]: a straight line from pale to tanned, [B, 3]."""
    t = np.asarray(tan, dtype=np.float64).reshape(-1, 1)
    pale, tanned = np.asarray(PALE_SKIN) / 255.0, np.asarray(TANNED_SKIN) / 255.0
    return pale + t * (tanned - pale)


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6.0) % 6
    f = h * 6.0 - int(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.asarray([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i], dtype=np.float64)
