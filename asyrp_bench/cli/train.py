"""``asyrp-bench train``: train one editor f_t on a folder of images (spec §4.3) and save it as safetensors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from asyrp_bench.cli.app import app, console, handle_errors


@app.command("train")
@handle_errors
def train_command(
    images: Annotated[Path, typer.Option("--images", "-i", help="Folder of training images (sorted by file name).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Editor file to write (.safetensors).")],
    edit: Annotated[str | None, typer.Option("--edit", "-e", help="A named edit (`asyrp-bench ls edits`).")] = None,
    source: Annotated[str | None, typer.Option("--source", help="Source prompt (instead of --edit).")] = None,
    target: Annotated[str | None, typer.Option("--target", help="Target prompt (instead of --edit).")] = None,
    backend: Annotated[str, typer.Option("--backend", "-b", help="Backend name (`asyrp-bench ls backends`).")] = "ddpm",
    weights: Annotated[str | None, typer.Option("--weights", help="Backend weights: a path or weights key.")] = None,
    config: Annotated[str | None, typer.Option("--config", help="Backend preset name or a YAML config file.")] = None,
    variant: Annotated[str | None, typer.Option("--variant", "-v", help="Editor variant (default: the recipe's).")
                       ] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="Editor parameter KEY=VALUE (repeat).")
                     ] = None,
    recipe: Annotated[str, typer.Option("--recipe", "-r", help="Training recipe (`asyrp-bench ls recipes`).")
                      ] = "asyrp_paper",
    set_: Annotated[list[str] | None, typer.Option("--set", "-s", help="Recipe override KEY=VALUE (repeat).")] = None,
    t_edit: Annotated[int | None, typer.Option("--t-edit", help="Train for t ≥ t_edit.")] = None,
    t_boost: Annotated[int | None, typer.Option("--t-boost", help="Recorded for editing: η=1 below it.")] = None,
    clip_model: Annotated[str | None, typer.Option("--clip-model", help="CLIP: open_clip name, local-dir:PATH or key.")
                          ] = None,
    clip_pretrained: Annotated[str | None, typer.Option("--clip-pretrained", help="CLIP tag, weights file or key.")
                               ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed (default: the recipe's).")] = None,
    device: Annotated[str, typer.Option("--device", help="torch device.")] = "cpu",
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir", help="Inversion cache folder.")] = None,
    precision: Annotated[str, typer.Option("--precision", help="fp32 | bf16 | fp16 | auto (bf16 on CUDA, fp32 "
                                           "on CPU); autocasts the frozen U-Net only (docs/performance.md).")
                         ] = "auto",
    compile_: Annotated[bool, typer.Option("--compile", help="torch.compile the U-Net (first batch is slow).")
                        ] = False,
    channels_last: Annotated[bool, typer.Option("--channels-last", help="channels_last memory format.")] = False,
    cudnn_benchmark: Annotated[bool, typer.Option("--cudnn-benchmark", help="cuDNN autotuning (not bit-stable).")
                               ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Train an editor with the directional CLIP loss and write it, with its provenance, as safetensors."""
    from asyrp_bench.cache import InversionCache
    from asyrp_bench.cli._common import load_cli_backend, load_image_folder, parse_assignments, speed_options
    from asyrp_bench.errors import ConfigError
    from asyrp_bench.recipes import resolve_recipe
    from asyrp_bench.training import train_editor

    if out.suffix != ".safetensors":
        raise ConfigError(f"--out must name a .safetensors file, got {out}")
    overrides = parse_assignments(set_, "--set")
    if clip_model is not None:
        overrides["clip_model"] = clip_model
    if clip_pretrained is not None:
        overrides["clip_pretrained"] = clip_pretrained
    resolved = resolve_recipe(recipe, overrides)  # fail on a bad recipe before loading anything heavy
    editor_params = parse_assignments(param, "--param")
    net = load_cli_backend(backend, weights, config, device)
    precision = speed_options(net, precision, compile_, channels_last, cudnn_benchmark)
    ids, x0, resized = load_image_folder(images, net.image_size, limit=resolved.n_train_img)
    console.print(f"training on {len(ids)} image(s) from {images} with recipe [bold]{resolved.name}[/]"
                  + (f"; {len(resized)} resized to {net.image_size} px" if resized else ""))
    editor = train_editor(
        net, x0, source, target, edit=edit, recipe=recipe, overrides=overrides, variant=variant,
        editor_params=editor_params or None, t_edit=t_edit, t_boost=t_boost, seed=seed, image_ids=ids,
        cache=InversionCache(cache_dir) if cache_dir is not None else None, progress=not quiet,
        precision=precision,
    )
    from asyrp_bench.editors.io import save_editor

    spec = {"name": backend, "weights": weights, "config": config, "device": device}
    save_editor(editor, out, metadata={"backend_spec": spec, "images_folder": str(images)})
    summary = editor.metadata["training"]
    console.print(
        f"wrote {out}: {editor.variant} editor, {summary['n_updates']} updates, loss "
        f"{summary['loss_first_pass']:.4f} (first pass) -> {summary['loss_last_pass']:.4f} (last pass), "
        f"t_edit {editor.metadata['t_edit']}, n_train_step {editor.metadata['n_train_step']}"
    )
