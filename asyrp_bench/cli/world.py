"""``asyrp-bench world``: sample, train and check the tiny world shipped with the package (docs/world.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from asyrp_bench.cli.app import app, console, err_console, handle_errors

world_app = typer.Typer(
    name="world",
    help="The tiny cartoon-face world: a generator with ground truth and the models trained on it.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(world_app, name="world")


@world_app.command("sample")
@handle_errors
def sample_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG grid to write.")] = Path("world_samples.png"),
    what: Annotated[str, typer.Option(help="generator, ddpm, or both (generator row block, then DDPM).")] = "both",
    n: Annotated[int, typer.Option(help="Faces per block.")] = 32,
    seed: Annotated[int, typer.Option(help="First face seed (generator) / noise seed (DDPM).")] = 0,
    steps: Annotated[int, typer.Option(help="DDIM steps for DDPM samples.")] = 40,
    scale: Annotated[int, typer.Option(help="Nearest-neighbour upscaling of the 32 px faces.")] = 3,
    world: Annotated[Path | None, typer.Option(help="A trained world folder (default: the shipped one).")] = None,
) -> None:
    """Render generator faces and/or DDPM samples to a PNG grid."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torchvision.utils import save_image

    from asyrp_bench.errors import InputError
    from asyrp_bench.world import check
    from asyrp_bench.world.generator import render, sample_params

    if what not in ("generator", "ddpm", "both"):
        raise InputError(f"--what must be generator, ddpm or both, got {what!r}")
    if n < 1 or scale < 1:
        raise InputError("--n and --scale must be >= 1")
    blocks = []
    if what in ("generator", "both"):
        blocks.append(render(sample_params(np.arange(seed, seed + n))).images)
    if what in ("ddpm", "both"):
        blocks.append(check.sample(check.load_backend(world), n, seed=seed, n_steps=steps))
    grid = torch.cat(blocks)
    grid = F.interpolate(grid, scale_factor=scale, mode="nearest") if scale > 1 else grid
    out.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid, str(out), nrow=min(n, 16), padding=1, pad_value=1.0)
    console.print(f"wrote {out} ({grid.shape[0]} faces)")


@world_app.command("train")
@handle_errors
def train_command(
    only: Annotated[list[str] | None, typer.Option("--only", help="Train only these models (repeatable): "
                                                  "ddpm, clip, parser, identity, oracle.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default: the package's assets/world).")] = None,
    work: Annotated[Path | None, typer.Option(help="Checkpoint folder (default: $ASYRP_BENCH_HOME/world_train); "
                                                   "an interrupted run resumes from it.")] = None,
    threads: Annotated[int | None, typer.Option(help="torch threads (the shipped files used 1).")] = None,
    steps: Annotated[int | None, typer.Option(help="Smoke runs only: override every model's steps "
                                                   "(small batches; not the recipe).")] = None,
) -> None:
    """Train the world's models with the fixed recipe (asyrp_bench/world/recipe.py) and write world_card.json."""
    from asyrp_bench.weights import ASSETS_DIR
    from asyrp_bench.world import recipe
    from asyrp_bench.world.train import train_world

    target = out or ASSETS_DIR / "world"
    specs = recipe.tiny_specs(steps) if steps is not None else None

    def log(record: dict) -> None:
        err_console.print(json.dumps(record), highlight=False)

    card = train_world(target, only=only, work_dir=work, specs=specs, threads=threads, log=log)
    console.print(f"trained {', '.join(only or recipe.MODEL_NAMES)} into {target}; card: {target / 'world_card.json'}"
                  f" ({len(card['models'])} models recorded)")


@world_app.command("check")
@handle_errors
def check_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    world: Annotated[Path | None, typer.Option(help="A trained world folder (default: the shipped one).")] = None,
    n_samples: Annotated[int, typer.Option(help="DDPM samples for FID.")] = 256,
    steps: Annotated[int, typer.Option(help="DDIM steps for inversion and sampling.")] = 40,
    n_faces: Annotated[int | None, typer.Option(help="Use only the first faces of the split.")] = None,
    edits: Annotated[bool, typer.Option("--edits/--no-edits", help="Train the smiling and tanned editors "
                                        "(recipe world_quickstart) and judge their edits.")] = True,
    n_train: Annotated[int | None, typer.Option(help="Editor training faces (default: the recipe's).")] = None,
    images: Annotated[Path | None, typer.Option(help="Write PNG grids (samples, reconstructions, edits) here.")] = None,
) -> None:
    """Measure the world: reconstruction PSNR, FID of samples, CLIP top-1 and directions, judges, edits."""
    from asyrp_bench.world.check import run_check

    log = (lambda m: None) if as_json else (lambda m: err_console.print(f"[dim]{m}...[/]"))
    overrides = {"n_train_img": n_train} if n_train is not None else None
    result = run_check(world, n_samples=n_samples, n_steps=steps, n_faces=n_faces, log=log, edits=edits,
                       edit_overrides=overrides, images_out=images)
    if as_json:
        print(json.dumps(result, sort_keys=True))
        return
    table = Table(title="the world", title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in _flatten(result).items():
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    console.print(table)


def _flatten(d: dict, prefix: str = "") -> dict:
    out: dict = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            out[f"{prefix}{key}"] = f"{len(value)} rows (see --json)"
        else:
            out[f"{prefix}{key}"] = value
    return out
