"""``asyrp-bench edit``: apply one or more editor files to a folder of images (spec §7).

Writes ``OUT/edited/<id>.png`` (the edit), ``OUT/recon/<id>.png`` (the plain DDIM reconstruction from the same
x_T, the fidelity baseline) and ``OUT/edit.json`` (every setting used, the editors' provenance).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from asyrp_bench.cli.app import app, console, handle_errors


def parse_editor_arg(text: str) -> tuple[Path, float]:
    """``PATH`` or ``PATH:COEF`` (the coefficient of a linear combination, spec §7.3; default 1)."""
    head, sep, tail = text.rpartition(":")
    if sep and head and not Path(text).exists():
        try:
            return Path(head), float(tail)
        except ValueError:
            pass  # a colon that is part of the path
    return Path(text), 1.0


@app.command("edit")
@handle_errors
def edit_command(
    editors: Annotated[list[str], typer.Argument(help="Editor files, each PATH or PATH:COEF (several = a linear "
                                                      "combination, h + Σ c·f/√N).")],
    images: Annotated[Path, typer.Option("--images", "-i", help="Folder of images to edit.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (edited/, recon/, edit.json).")],
    backend: Annotated[str | None, typer.Option("--backend", "-b", help="Backend (default: as the editor was trained).")
                       ] = None,
    weights: Annotated[str | None, typer.Option("--weights", help="Backend weights: a path or weights key.")] = None,
    config: Annotated[str | None, typer.Option("--config", help="Backend preset name or a YAML config file.")] = None,
    strength: Annotated[float, typer.Option("--strength", help="Editing strength (negative reverses).")] = 1.0,
    n_test_step: Annotated[int, typer.Option("--n-test-step", help="Generation steps (Δh rescaled by "
                                                                    "n_train_step / n_test_step).")] = 40,
    n_inv_step: Annotated[int | None, typer.Option("--n-inv-step", help="Inversion steps (default: the editor's).")
                          ] = None,
    t_edit: Annotated[int | None, typer.Option("--t-edit", help="Override the editor's t_edit.")] = None,
    t_boost: Annotated[int | None, typer.Option("--t-boost", help="Override the editor's t_boost (0: off).")] = None,
    n_images: Annotated[int | None, typer.Option("--n-images", help="Only the first N images.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per batch.")] = 8,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the η=1 boosting noise (per image).")] = 1234,
    device: Annotated[str, typer.Option("--device", help="torch device.")] = "cpu",
    ignore_backend_hash: Annotated[bool, typer.Option("--ignore-backend-hash",
                                                      help="Use an editor trained on other backend weights.")] = False,
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir", help="Inversion cache folder.")] = None,
    precision: Annotated[str, typer.Option("--precision", help="fp32 | bf16 | fp16 | auto (bf16 on CUDA, fp32 "
                                           "on CPU); autocasts the frozen U-Net only (docs/performance.md).")
                         ] = "auto",
    compile_: Annotated[bool, typer.Option("--compile", help="torch.compile the U-Net (first batch is slow).")
                        ] = False,
    channels_last: Annotated[bool, typer.Option("--channels-last", help="channels_last memory format.")] = False,
    cudnn_benchmark: Annotated[bool, typer.Option("--cudnn-benchmark", help="cuDNN autotuning (not bit-stable).")
                               ] = False,
) -> None:
    """Edit every image of a folder with trained editors; also write the DDIM reconstructions."""
    from asyrp_bench.asyrp import edit as run_edit
    from asyrp_bench.asyrp import image_generators
    from asyrp_bench.cache import InversionCache
    from asyrp_bench.cli._common import load_cli_backend, load_image_folder, speed_options
    from asyrp_bench.editors.io import check_editor_backend, load_editor
    from asyrp_bench.errors import ConfigError
    from asyrp_bench.images import save_png

    if not editors:
        raise ConfigError("give at least one editor file")
    if batch_size < 1 or n_test_step < 2:
        raise ConfigError("--batch-size must be ≥ 1 and --n-test-step ≥ 2")
    parsed = [parse_editor_arg(text) for text in editors]
    loaded = [(load_editor(path), coef) for path, coef in parsed]
    first = loaded[0][0].metadata
    spec: dict[str, Any] = dict(first.get("backend_spec") or {})
    if backend is None:
        backend = spec.get("name") or (first.get("backend") or {}).get("name")
        if backend is None:
            raise ConfigError(f"{parsed[0][0]} does not record its backend; pass --backend")
        weights = weights if weights is not None else spec.get("weights")
        config = config if config is not None else spec.get("config")
    net = load_cli_backend(backend, weights, config, device)
    precision = speed_options(net, precision, compile_, channels_last, cudnn_benchmark)
    for (path, _), (editor, _) in zip(parsed, loaded, strict=True):
        check_editor_backend(editor, net, check_hash=not ignore_backend_hash, source=str(path))
        editor.to(net.device)
    n_inv = n_inv_step or int(first.get("n_inv_step") or 40)
    ids, x0, resized = load_image_folder(images, net.image_size, limit=n_images)
    cache = InversionCache(cache_dir) if cache_dir is not None else InversionCache()
    x0 = x0.to(net.device)
    terms = loaded[0][0] if len(loaded) == 1 else loaded
    single_strength = loaded[0][1] * strength if len(loaded) == 1 else strength
    out.mkdir(parents=True, exist_ok=True)
    with _progress(len(ids)) as advance:
        for start in range(0, len(ids), batch_size):
            batch_ids = ids[start:start + batch_size]
            x_T = cache.invert(net, x0[start:start + batch_size], n_inv, batch_size=batch_size)
            recon = cache.reconstruct(net, x_T, n_test_step, batch_size=batch_size)
            generators = image_generators(seed, batch_ids)
            edited = run_edit(net, x_T, terms, t_edit, t_boost, n_test_step, strength=single_strength,
                              generator=generators, precision=precision)
            for i, image_id in enumerate(batch_ids):
                save_png(edited[i], out / "edited" / f"{image_id}.png")
                save_png(recon[i], out / "recon" / f"{image_id}.png")
            advance(len(batch_ids))
    record = {
        "editors": [{"path": str(p), "coefficient": c, "variant": e.variant, "metadata": e.metadata}
                    for (p, c), (e, _) in zip(parsed, loaded, strict=True)],
        "images": str(images), "image_ids": ids, "backend": net.describe(), "strength": strength,
        "n_test_step": n_test_step, "n_inv_step": n_inv, "t_edit": t_edit, "t_boost": t_boost, "seed": seed,
        "resized": resized, "precision": precision,
    }
    (out / "edit.json").write_text(json.dumps(record, indent=2, default=str))
    console.print(f"wrote {len(ids)} edited images to {out / 'edited'} and reconstructions to {out / 'recon'}")


class _progress:
    """A rich progress bar over images (a context manager yielding ``advance(n)``)."""

    def __init__(self, total: int) -> None:
        from rich.progress import Progress

        self._progress = Progress(console=console, transient=False)
        self.total = total

    def __enter__(self) -> Any:
        self._progress.__enter__()
        task = self._progress.add_task("edit", total=self.total)
        return lambda n: self._progress.update(task, advance=n)

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)
