"""Fixed image splits: which images a run edits, proven by their sha256 (DESIGN §3, code_style_anchors §8.8).

A split is a named, documented rule over the file names of a folder the user owns (``data.root``), plus a
manifest of image ids and sha256. When the package does not ship the checksums (CelebA-HQ cannot be shipped),
they are recorded on first use in ``$ASYRP_BENCH_HOME/splits/<name>.json`` and every later run checks the same
bytes are read; the split hash (over ids and checksums of the images used) goes into every run manifest so
``compare`` never pairs runs on different images.

``celebahq_test100`` -- the rule and why
    Asyrp (and DiffusionCLIP before it) evaluates on "the first ``n_test_img`` images of the CelebA-HQ LMDB test
    set in loader order" (spec §4.2, §11). That LMDB is built by DiffusionCLIP's ``data_download.sh celeba_hq``
    from StyleMapGAN's CelebA-HQ download (``data/celeba_hq/raw_images/test/images``), keyed in sorted
    file-name order (``utils/prepare_lmdb_data.py`` sorts the paths), so loader order = file-name order. The UvA
    DL2 reproduction took "the first 100 test images by id" from the same folder (metrics_and_peers.md §6).
    Rule: *the first 100 image files of that test folder, ordered by file name (numeric stems compared as
    numbers)*. This is the same set as DiffusionCLIP's LMDB_test keys 0..99 and DL2's images. No public list of
    the ids exists, so ids and checksums are recorded on first use. Point ``data.root`` (or
    ``$ASYRP_BENCH_HOME/weights/celeba_hq/raw_images/test/images``) at that folder. A folder with thousands of
    images (the whole CelebA-HQ, e.g. CelebAMask-HQ's ``CelebA-HQ-img``) is refused: its first 100 files are
    training images of most models.
``celebahq_train100``
    The same rule over the ``train`` folder (Asyrp trains f_t on the first ``n_train_img`` training images).

Images are loaded as RGB and resized to the backend's size by :mod:`asyrp_bench.images` (the documented resize
rule shared with the metrics), then mapped to [-1, 1].
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from asyrp_bench import weights
from asyrp_bench.errors import ConfigError, InputError, WeightsNotFoundError
from asyrp_bench.registry import Registry

MANIFEST_VERSION = 1
# Whole-dataset folders hold 30 000 images; the DiffusionCLIP test folder holds far fewer. Refusing large
# folders keeps "the first 100 files" from silently meaning training images.
MAX_SPLIT_FOLDER = 5000


@dataclasses.dataclass(frozen=True)
class Split:
    """A named image split.

    Attributes:
        name: registry key, used in suites as ``data: {split: <name>}``.
        description: one line for ``asyrp-bench ls splits``.
        rule: how the images are chosen from the folder (documented, printed in run manifests).
        n_images: how many images the rule takes (None: every image in the folder).
        root_artifact: weights-registry key of the folder's default location (``asyrp-bench doctor``).
        prepare: ``"module:function"`` returning the folder, creating it if needed (shipped data, e.g. the
            toy world renders its faces); used when no root is given.
        manifest: a packaged manifest (relative to ``asyrp_bench/assets``) with the known ids and sha256.
    """

    name: str
    description: str
    rule: str
    n_images: int | None = None
    root_artifact: str | None = None
    prepare: str | None = None
    manifest: str | None = None


SPLITS: Registry[Split] = Registry("split")


def register_split(split: Split) -> Split:
    SPLITS.register(split.name)(split)
    return split


_CELEBA_RULE = ("the first {n} image files of the CelebA-HQ {part} folder of the DiffusionCLIP/StyleMapGAN "
                "download (data/celeba_hq/raw_images/{part}/images), ordered by file name with numeric stems "
                "compared as numbers (= DiffusionCLIP LMDB_{part} keys 0..{last})")

register_split(Split(
    name="celebahq_test100",
    description="CelebA-HQ test split, first 100 images (the Asyrp/DiffusionCLIP evaluation images)",
    rule=_CELEBA_RULE.format(n=100, part="test", last=99),
    n_images=100,
    root_artifact="celebahq_test_images",
))
register_split(Split(
    name="celebahq_train100",
    description="CelebA-HQ train split, first 100 images (Asyrp's training images, n_train_img = 100)",
    rule=_CELEBA_RULE.format(n=100, part="train", last=99),
    n_images=100,
    root_artifact="celebahq_train_images",
))


register_split(Split(
    name="world",
    description="the shipped toy world's 64 fixed faces (32 px; rendered on first use)",
    rule="face world-NNN is the world generator's face of seed NNN, NNN = 0..63 (asyrp_bench/world/split.py)",
    prepare="asyrp_bench.data:world_images",
))


def world_images() -> Path:
    """The world split's image folder, rendered into ``$ASYRP_BENCH_HOME/data/world`` on first use."""
    try:
        from asyrp_bench.world.split import write_split  # type: ignore[import-not-found]
    except ImportError as error:
        raise ConfigError(f"the world split needs asyrp_bench.world, which cannot be imported ({error})") from None
    folder = weights.home() / "data" / "world"
    if not (folder / "manifest.json").is_file():
        tmp = folder.with_name(f".tmp-world-{os.getpid()}")
        if tmp.exists():
            import shutil

            shutil.rmtree(tmp)
        write_split(tmp)
        folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(tmp, folder)
        except OSError:  # another process rendered it first; its copy is identical
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return folder / "images"


@dataclasses.dataclass(frozen=True)
class ImageSet:
    """The resolved images of a split or folder, in split order.

    Attributes:
        name: the split name, or ``folder:<folder name>``.
        ids: image ids (file stems), unique.
        files: the image files.
        sha256: the files' checksums.
        split_hash: sha256 over the (id, sha256) pairs in order: the identity of this image set.
        rule: how the images were chosen.
    """

    name: str
    ids: tuple[str, ...]
    files: tuple[Path, ...]
    sha256: tuple[str, ...]
    split_hash: str
    rule: str

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, size: int) -> Any:
        """The images as a float tensor [N, 3, size, size] in [-1, 1] (resized by :mod:`asyrp_bench.images`)."""
        from asyrp_bench import images

        batch, _ = images.load_images(list(self.files), (size, size))
        return images.to_unit_range(batch)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "n": len(self), "split_hash": self.split_hash, "rule": self.rule,
                "ids": list(self.ids)}


def _natural_key(path: Path) -> tuple[int, int | str, str]:
    stem = path.stem
    return (0, int(stem), path.name) if stem.isdigit() else (1, stem, path.name)


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder`` in split order: numeric stems as numbers first, then by name.

    Listing and image ids (file names without suffix, unique per folder) follow :mod:`asyrp_bench.images`.
    """
    from asyrp_bench import images

    return sorted(images.list_images(folder).images.values(), key=_natural_key)


def image_set_hash(ids: Sequence[str], sha256s: Sequence[str]) -> str:
    payload = json.dumps([[i, s] for i, s in zip(ids, sha256s, strict=True)], separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def manifests_dir() -> Path:
    """Where split manifests recorded on first use live (``$ASYRP_BENCH_HOME/splits``)."""
    return weights.home() / "splits"


def split_root(split: Split, root: str | os.PathLike[str] | None) -> Path:
    """The folder a split reads: ``root`` if given, else its registered default, else its ``prepare`` hook."""
    if root is not None:
        path = Path(root).expanduser()
        if not path.is_dir():
            raise WeightsNotFoundError(
                f"data.root {path} for split {split.name!r} does not exist. It should be the folder of "
                f"{split.description}: {split.rule}."
            )
        return path
    if split.root_artifact is not None:
        found = weights.find(split.root_artifact)
        if found is not None:
            return found
    if split.prepare is not None:
        module_name, attr = split.prepare.split(":", 1)
        import importlib

        prepare: Callable[[], Path] = getattr(importlib.import_module(module_name), attr)
        return Path(prepare())
    if split.root_artifact is not None:
        artifact = weights.get_artifact(split.root_artifact)
        raise WeightsNotFoundError(
            f"the images of split {split.name!r} were not found. {weights.missing_message(artifact)} "
            f"A suite can also name the folder: data.root (or --set data.root=FOLDER)."
        )
    raise ConfigError(f"split {split.name!r} needs data.root (a folder of images)")


def _packaged_manifest(split: Split) -> dict[str, Any] | None:
    if split.manifest is None:
        return None
    return json.loads((weights.ASSETS_DIR / split.manifest).read_text())


def _recorded_manifest(split: Split) -> tuple[Path, dict[str, Any] | None]:
    path = manifests_dir() / f"{split.name}.json"
    if not path.is_file():
        return path, None
    try:
        return path, json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"split manifest {path} is unreadable ({error}); delete it to record it anew") from None


def _write_manifest(path: Path, split: Split, root: Path, ids: Sequence[str], files: Sequence[Path],
                    sha256s: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "manifest_version": MANIFEST_VERSION,
        "name": split.name,
        "rule": split.rule,
        "recorded_from": str(root),
        "images": [{"id": i, "file": f.name, "sha256": s} for i, f, s in zip(ids, files, sha256s, strict=True)],
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


def _verify(split: Split, manifest: dict[str, Any], origin: Path | str, ids: Sequence[str],
            files: Sequence[Path], sha256s: Sequence[str]) -> None:
    known = {entry["id"]: entry for entry in manifest.get("images", [])}
    expected_ids = [entry["id"] for entry in manifest.get("images", [])][: len(ids)]
    if list(ids) != expected_ids:
        missing = [i for i in expected_ids if i not in ids][:5]
        extra = [i for i in ids if i not in known][:5]
        raise InputError(
            f"split {split.name!r}: the folder {files[0].parent if files else '?'} does not hold the images the "
            f"manifest {origin} lists (first differences: missing {missing}, unexpected {extra}). Point data.root "
            f"at the right folder, or delete {origin} to record the split anew."
        )
    changed = [f.name for i, f, s in zip(ids, files, sha256s, strict=True) if known[i]["sha256"] != s]
    if changed:
        raise InputError(
            f"split {split.name!r}: {len(changed)} image(s) differ from the manifest {origin} (sha256 mismatch): "
            f"{changed[:5]}. The same ids must hold the same bytes for results to be comparable; restore the "
            f"files, or delete {origin} to record the split anew."
        )


def resolve_split(name: str, root: str | os.PathLike[str] | None = None, limit: int | None = None,
                  offset: int = 0) -> ImageSet:
    """Resolve a named split to its files, checking (or recording) their sha256.

    Args:
        name: a registered split (``asyrp-bench ls splits``).
        root: the folder holding the split's images (default: the split's registered location).
        limit: keep at most ``limit`` images (after ``offset``) of the split's order.
        offset: skip the first ``offset`` images (e.g. to train and evaluate on disjoint parts of one split).

    Raises:
        WeightsNotFoundError: the folder is missing (the message says where it goes).
        InputError: too few images, duplicate ids, or files that differ from the manifest.
    """
    split = SPLITS.get(name)
    folder = split_root(split, root)
    files = list_images(folder)
    if split.n_images is not None and len(files) > MAX_SPLIT_FOLDER:
        raise InputError(
            f"{folder} holds {len(files)} images: that looks like a whole dataset, not the split's folder. "
            f"{split.name} is {split.rule}."
        )
    size = split.n_images if split.n_images is not None else len(files)
    if offset >= size:
        raise ConfigError(f"data.offset {offset} leaves no image of the {size} of split {split.name!r}")
    if limit is not None and offset + limit > size:
        raise ConfigError(f"data.limit {limit} from offset {offset} exceeds the {size} images of split {split.name!r}")
    wanted = size if limit is None else offset + limit
    if len(files) < wanted or not files:
        raise InputError(f"{folder} holds {len(files)} image files; split {split.name!r} needs {wanted} "
                         f"({split.rule})")
    # The manifest covers the split's prefix up to the last image used, so parts of one split check the same file.
    files = files[:wanted]
    ids = [f.stem for f in files]
    sha256s = [weights.sha256_file(f) for f in files]
    packaged = _packaged_manifest(split)
    if packaged is not None:
        _verify(split, packaged, f"asyrp_bench/assets/{split.manifest}", ids, files, sha256s)
    else:
        path, recorded = _recorded_manifest(split)
        if recorded is None or len(recorded.get("images", [])) < len(ids):
            if recorded is not None:
                _verify(split, {"images": recorded["images"]}, path, ids[: len(recorded["images"])],
                        files[: len(recorded["images"])], sha256s[: len(recorded["images"])])
            _write_manifest(path, split, folder, ids, files, sha256s)
        else:
            _verify(split, recorded, path, ids, files, sha256s)
    ids, files, sha256s = ids[offset:], files[offset:], sha256s[offset:]
    rule = split.rule + (f"; images {offset}..{offset + len(ids) - 1} of that order" if offset else "")
    return ImageSet(name=split.name, ids=tuple(ids), files=tuple(files), sha256=tuple(sha256s),
                    split_hash=image_set_hash(ids, sha256s), rule=rule)


def resolve_folder(folder: str | os.PathLike[str], limit: int | None = None, offset: int = 0) -> ImageSet:
    """The image files directly in ``folder`` (ordered by file name, numeric stems as numbers), ``limit`` of
    them from ``offset``."""
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise WeightsNotFoundError(f"data.folder {path} does not exist (a folder of image files is expected)")
    files = list_images(path)
    end = None if limit is None else offset + limit
    files = files[offset:end]
    if not files:
        raise ConfigError(f"data.offset {offset} leaves no image of the folder {path}")
    ids = [f.stem for f in files]
    sha256s = [weights.sha256_file(f) for f in files]
    rule = f"the image files in the folder {path.name!r}, ordered by file name" + (
        f", images {offset}..{offset + len(files) - 1}" if offset or limit is not None else "")
    return ImageSet(name=f"folder:{path.name}", ids=tuple(ids), files=tuple(files), sha256=tuple(sha256s),
                    split_hash=image_set_hash(ids, sha256s), rule=rule)


def resolve_data(spec: Any) -> ImageSet:
    """Resolve a suite ``data:`` block (:class:`asyrp_bench.suite.DataSpec`)."""
    if spec.split is not None:
        return resolve_split(spec.split, spec.root, spec.limit, spec.offset)
    return resolve_folder(spec.folder, spec.limit, spec.offset)
