"""Named training recipes for f_t (spec §4.1, §4.6; seed_study_ft.md), with validated overrides.

A recipe is every training hyper-parameter in one frozen dataclass. ``resolve_recipe("asyrp_paper",
{"lr": 0.2})`` returns a new validated recipe; unknown keys are an error with a "did you mean". Other modules
(e.g. the shipped toy world's quick start) add recipes with :func:`register_recipe`::

    register_recipe(Recipe(name="quickstart", description="...", n_train_step=10, t_edit=500, ...))

The resolved values travel into every saved editor's metadata (``recipe``: name + values).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from asyrp_bench.errors import ConfigError
from asyrp_bench.registry import Registry

OPTIMIZERS = ("sgd", "adam", "adamw")
LOSS_FORMS = ("neg_log", "one_minus")


@dataclass(frozen=True)
class Recipe:
    """How an editor is trained (spec §4.3). Values the paper leaves per edit (t_edit, t_boost) may be None.

    Attributes:
        name, description: registry key and one line for ``asyrp-bench ls recipes``.
        optimizer: ``sgd`` (the paper: no momentum, no weight decay), ``adam`` or ``adamw``.
        lr, momentum, weight_decay, betas: optimizer settings (momentum for SGD, betas for Adam/AdamW).
        scheduler_step_size, scheduler_gamma: StepLR stepped once per outer iteration, as the official code;
            step size None keeps the learning rate constant.
        lambda_clip, lambda_l1: loss weights; ``l1_text_cosine`` multiplies λ_l1 by the raw-prompt text cosine
            (spec §4.3, B3: what the official code does).
        loss_form: ``neg_log`` = −log((1 + cos)/2) (the official form) or ``one_minus`` = 1 − cos.
        clip_model, clip_pretrained: the CLIP of the directional loss (see ``asyrp_bench.clip.load_clip``).
        n_inv_step: DDIM inversion grid of the training images; n_train_step: the training grid (its t ≥ t_edit
            part is trained, one optimizer step per timestep).
        batch_size: images per optimizer step (each image is its own CLIP source, fixing B5).
        n_iter: passes over the training images (outer iterations); n_train_img: the first this many images
            are used (None: all given).
        shuffle: reshuffle the image order every pass (seeded); False keeps loader order as the official code.
        t_edit, t_boost: default interval (None: given per edit; spec §5).
        variant, editor_params: the f_t built when the caller gives none.
        seed: seeds editor initialisation, dropout and shuffling (the official default is 1234).
    """

    name: str
    description: str
    optimizer: str = "sgd"
    lr: float = 0.5
    momentum: float = 0.0
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    scheduler_step_size: int | None = None
    scheduler_gamma: float = 1.0
    lambda_clip: float = 1.0
    lambda_l1: float = 3.0
    l1_text_cosine: bool = True
    loss_form: str = "neg_log"
    clip_model: str = "ViT-B-16-quickgelu"
    clip_pretrained: str | None = "openai"
    n_inv_step: int = 40
    n_train_step: int = 40
    batch_size: int = 1
    n_iter: int = 1
    n_train_img: int | None = 100
    shuffle: bool = False
    t_edit: int | None = None
    t_boost: int | None = None
    variant: str = "additive"
    editor_params: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 1234

    def values(self) -> dict[str, Any]:
        """Every setting but name and description, JSON-ready (for editor metadata)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("name", "description")}
        out["betas"] = list(self.betas)
        out["editor_params"] = dict(self.editor_params)
        return out


RECIPES: Registry[Recipe] = Registry("recipe")


def register_recipe(recipe: Recipe) -> Recipe:
    """Add a named recipe (validated now, so a bad preset fails at import, not mid-run)."""
    validate_recipe(recipe)
    RECIPES.register(recipe.name)(recipe)
    return recipe


def get_recipe(name: str) -> Recipe:
    return RECIPES.get(name)


_INT_FIELDS = ("n_inv_step", "n_train_step", "batch_size", "n_iter", "seed")
_OPTIONAL_INT_FIELDS = ("scheduler_step_size", "n_train_img", "t_edit", "t_boost")
_FLOAT_FIELDS = ("lr", "momentum", "weight_decay", "scheduler_gamma", "lambda_clip", "lambda_l1")
_BOOL_FIELDS = ("l1_text_cosine", "shuffle")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_recipe(recipe: Recipe) -> Recipe:
    """Check types and ranges; raise ConfigError naming the recipe and the field."""
    where = f"recipe {recipe.name!r}"
    for name in _INT_FIELDS:
        if not _is_int(getattr(recipe, name)):
            raise ConfigError(f"{where}: {name} must be an integer, got {getattr(recipe, name)!r}")
    for name in _OPTIONAL_INT_FIELDS:
        value = getattr(recipe, name)
        if value is not None and not _is_int(value):
            raise ConfigError(f"{where}: {name} must be an integer or null, got {value!r}")
    for name in _FLOAT_FIELDS:
        value = getattr(recipe, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: {name} must be a number, got {value!r}")
    for name in _BOOL_FIELDS:
        if not isinstance(getattr(recipe, name), bool):
            raise ConfigError(f"{where}: {name} must be true or false, got {getattr(recipe, name)!r}")
    if recipe.optimizer not in OPTIMIZERS:
        raise ConfigError(f"{where}: optimizer {recipe.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
    if recipe.loss_form not in LOSS_FORMS:
        raise ConfigError(f"{where}: loss_form {recipe.loss_form!r} is not one of {', '.join(LOSS_FORMS)}")
    if not recipe.lr > 0:
        raise ConfigError(f"{where}: lr must be positive, got {recipe.lr}")
    if recipe.lambda_clip < 0 or recipe.lambda_l1 < 0 or recipe.lambda_clip + recipe.lambda_l1 == 0:
        raise ConfigError(f"{where}: loss weights must be ≥ 0 and not both 0 "
                          f"(lambda_clip={recipe.lambda_clip}, lambda_l1={recipe.lambda_l1})")
    if recipe.n_inv_step < 2 or recipe.n_train_step < 2:
        raise ConfigError(f"{where}: n_inv_step and n_train_step must be ≥ 2")
    if recipe.batch_size < 1 or recipe.n_iter < 1 or (recipe.n_train_img is not None and recipe.n_train_img < 1):
        raise ConfigError(f"{where}: batch_size, n_iter and n_train_img must be ≥ 1")
    if recipe.scheduler_step_size is not None and recipe.scheduler_step_size < 1:
        raise ConfigError(f"{where}: scheduler_step_size must be ≥ 1 or null")
    for name in ("t_edit", "t_boost"):
        value = getattr(recipe, name)
        if value is not None and not 0 <= value <= 999:
            raise ConfigError(f"{where}: {name} must lie in [0, 999], got {value}")
    if not (isinstance(recipe.betas, (tuple, list)) and len(recipe.betas) == 2):
        raise ConfigError(f"{where}: betas must be two numbers, got {recipe.betas!r}")
    if not isinstance(recipe.editor_params, Mapping):
        raise ConfigError(f"{where}: editor_params must be a mapping, got {recipe.editor_params!r}")
    return recipe


def resolve_recipe(recipe: str | Recipe, overrides: Mapping[str, Any] | None = None) -> Recipe:
    """A named (or given) recipe with ``overrides`` applied and validated.

    Unknown override keys raise ConfigError with a "did you mean" and the list of valid keys.
    """
    base = get_recipe(recipe) if isinstance(recipe, str) else recipe
    if not isinstance(base, Recipe):
        raise ConfigError(f"recipe must be a name or a Recipe, got {type(base).__name__}")
    overrides = dict(overrides or {})
    valid = [f.name for f in dataclasses.fields(Recipe) if f.name not in ("name", "description")]
    for key in overrides:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown recipe key {key!r}.{hint} Valid keys: {', '.join(valid)}.")
    if "betas" in overrides and isinstance(overrides["betas"], list):
        overrides["betas"] = tuple(overrides["betas"])
    for key in _FLOAT_FIELDS:  # YAML/CLI integers are fine where a float is meant
        if _is_int(overrides.get(key)):
            overrides[key] = float(overrides[key])
    return validate_recipe(dataclasses.replace(base, **overrides))


# -- the presets ----------------------------------------------------------------------------------------------

register_recipe(Recipe(
    name="asyrp_paper",
    description="The recipe implied by the official scripts and released checkpoints (spec §4.6): SGD lr 0.5, "
                "λ_clip 1, λ_l1 3 (× text cosine), ViT-B/16, 40/40 steps, batch 1, one pass over ~100 images; "
                "t_edit/t_boost per edit.",
    optimizer="sgd", lr=0.5, momentum=0.0, weight_decay=0.0,
    # The released CelebA checkpoints record StepLR 20 / 0.9; with one pass it never fires.
    scheduler_step_size=20, scheduler_gamma=0.9,
    lambda_clip=1.0, lambda_l1=3.0, n_inv_step=40, n_train_step=40, batch_size=1, n_iter=1, n_train_img=100,
))

register_recipe(Recipe(
    name="asyrp_code_defaults",
    description="The official main.py defaults (spec §4.6, B4): SGD lr 0.2, λ_clip 3, λ_l1 0, n_train_step 6, "
                "StepLR 3/0.1, 50 images. Does NOT reproduce the paper.",
    optimizer="sgd", lr=0.2, scheduler_step_size=3, scheduler_gamma=0.1,
    lambda_clip=3.0, lambda_l1=0.0, n_inv_step=40, n_train_step=6, batch_size=1, n_iter=1, n_train_img=50,
))

register_recipe(Recipe(
    name="dl2_transformer_adamw",
    description="The UvA DL2 transformer runs (seed_study_ft.md): pc transformer + AdaGN, AdamW lr 1e-5 no weight "
                "decay, λ_clip 0.8, λ_l1 3, batch 9, 1000 images, 20 passes, 40/40 steps.",
    optimizer="adamw", lr=1e-5, weight_decay=0.0,
    # seed_study_ft.md says "StepLR" without values; we assume the vendored main.py defaults (3 / 0.1).
    scheduler_step_size=3, scheduler_gamma=0.1,
    lambda_clip=0.8, lambda_l1=3.0, n_inv_step=40, n_train_step=40, batch_size=9, n_iter=20, n_train_img=1000,
    variant="transformer", editor_params={"layer_type": "pc", "injection": "adagn", "heads": 1},
))
