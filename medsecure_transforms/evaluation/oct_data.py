"""oct-kermany B-scans as learned-codec canvases (and lesion masks), cached by the content they were computed from.

A canvas is a loaded B-scan ``[W, H]`` (MONAI ``PILReader`` layout: lateral, depth) turned into the codec's input
``[W', depth_size]`` in ``[0, 1]``: with ``preprocess`` (the paper's pipeline) gray -> NLM speckle reduction ->
retina band crop onto a zero canvas, ``W'`` the lateral size rounded up to ``lateral_multiple``; without (the Fig. 4
ablation) the gray image symmetrically zero-padded / centre-cropped to the canvas. Lesion masks are cropped with the
band found on their image and binarised (any lesion class).

Caches are ``.npz`` files whose name carries a key (:func:`~.study_cache.content_key`) of everything the arrays
were computed from: the resolved dataset folder, every input file's relative path, size and modification time, the
canvas parameters, the keys, and the source of the preprocessing code; the key is stored in the file and checked on
reading.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from monai.data import Dataset
from monai.transforms import Compose, DivisiblePadd, ResizeWithPadOrCropd
from tqdm import tqdm

from ..artefacts import atomic_write
from ..data import dataset_dir, get_spec, load_datalist, loading_transforms
from ..preprocessing import oct_retina
from ..transforms import oct as oct_transforms
from ..transforms.oct import OCTDenoised, OCTGrayscaled, OCTRetinaCropd
from .study_cache import content_key

__all__ = [
    "CACHE_VERSION",
    "DATASET",
    "CanvasParams",
    "cache_key",
    "canvas_transforms",
    "default_cache_dir",
    "load_canvases",
    "load_lesion_canvases",
    "to_uint8",
]

DATASET = "oct-kermany"
CACHE_VERSION = 1
"""Bumped when the cache layout or the meaning of its arrays changes."""


@dataclass(frozen=True)
class CanvasParams:
    """Every parameter of the canvas pipeline (defaults: the paper's 256-deep canvas, whole 256x256 tiles)."""

    preprocess: bool = True
    depth_size: int = 256
    lateral_multiple: int = 256
    h_factor: float = 4.0
    patch_size: int = 5
    patch_distance: int = 6
    below_bm: int = 24
    margin: int = 8


def default_cache_dir() -> Path:
    """``~/.cache/medsecure/oct_codec``."""
    return Path.home() / ".cache" / "medsecure" / "oct_codec"


def to_uint8(image: np.ndarray) -> np.ndarray:
    """``image`` in ``[0, 1]`` rounded to 8 bits (``uint8``, clipped): the reference every codec is scored on."""
    return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)


def canvas_transforms(params: CanvasParams, keys: Sequence[str] = ("image",)) -> Compose:
    """Loaded ``{"image": [3, W, H], ...}`` -> canvases ``[1, W', depth_size]`` for ``keys`` (the band, or the raw
    canvas geometry, is taken from ``"image"``)."""
    keys = list(keys)
    if params.preprocess:
        crop = OCTRetinaCropd(
            keys,
            source_key="image",
            depth_size=params.depth_size,
            lateral_multiple=params.lateral_multiple,
            depth_axis=1,
            below_bm=params.below_bm,
            margin=params.margin,
        )
        denoise = OCTDenoised("image", params.h_factor, params.patch_size, params.patch_distance)
        return Compose([OCTGrayscaled("image"), denoise, crop])
    return Compose(
        [
            OCTGrayscaled("image"),
            DivisiblePadd(keys, k=(params.lateral_multiple, 1)),
            ResizeWithPadOrCropd(keys, spatial_size=(-1, params.depth_size)),
        ]
    )


def cache_key(split: str, items: Sequence[dict], keys: Sequence[str], params: CanvasParams, folder: Path) -> dict:
    """What the canvases of ``items`` (a datalist with absolute paths) are computed from, as a JSON-able dict."""
    files = []
    for item in items:
        for key in keys:
            stat = os.stat(item[key])
            files.append([key, os.path.relpath(item[key], folder), stat.st_size, stat.st_mtime_ns])
    code = hashlib.sha256()
    for module in (oct_retina, oct_transforms):
        code.update(Path(module.__file__).read_bytes())
    return {
        "cache_version": CACHE_VERSION,
        "dataset": DATASET,
        "folder": str(folder.resolve()),
        "split": split,
        "keys": list(keys),
        "params": asdict(params),
        "files": files,
        "code_sha256": code.hexdigest(),
    }


def _cached_canvases(
    split: str,
    keys: Sequence[str],
    params: CanvasParams,
    cache_dir: str | os.PathLike | None,
    data_root: str | os.PathLike | None,
    limit: int | None,
    progress: bool,
) -> dict[str, list[np.ndarray]]:
    """``{key: [canvas [W', depth_size] float32, ...]}`` of the first ``limit`` entries of ``split``."""
    items = load_datalist(DATASET, split, data_root, limit=limit)
    key = cache_key(split, items, keys, params, dataset_dir(DATASET, data_root))
    text, digest = json.dumps(key, sort_keys=True), content_key(key)
    tag = ("pre" if params.preprocess else "raw") + "".join(f"_{k}" for k in keys if k != "image")
    cache = Path(cache_dir if cache_dir is not None else default_cache_dir()) / f"{DATASET}_{split}_{tag}_{digest}.npz"
    if cache.is_file():
        with np.load(cache) as data:
            if str(data["key"]) == text:
                return {k: [data[f"{k}_{i}"] for i in range(len(items))] for k in keys}
    pipeline = Compose([loading_transforms(get_spec(DATASET), keys), canvas_transforms(params, keys)])
    out: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for item in tqdm(Dataset(items, pipeline), desc=f"preprocess {split}", file=sys.stdout, disable=not progress):
        for k in keys:
            out[k].append(np.asarray(item[k])[0].astype(np.float32))
    arrays = {f"{k}_{i}": a for k, values in out.items() for i, a in enumerate(values)}
    atomic_write(cache, lambda handle: np.savez_compressed(handle, key=np.array(text), **arrays))
    return out


def load_canvases(
    split: str,
    preprocess: bool = True,
    cache_dir: str | os.PathLike | None = None,
    data_root: str | os.PathLike | None = None,
    limit: int | None = None,
    progress: bool = True,
) -> list[np.ndarray]:
    """Canvases ``[W', 256]`` (``float32`` in ``[0, 1]``) of the first ``limit`` B-scans of ``split``."""
    return _cached_canvases(split, ("image",), CanvasParams(preprocess), cache_dir, data_root, limit, progress)["image"]


def load_lesion_canvases(
    split: str,
    cache_dir: str | os.PathLike | None = None,
    data_root: str | os.PathLike | None = None,
    limit: int | None = None,
    progress: bool = True,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Preprocessed canvases ``[W', 256]`` and their binary lesion masks (``uint8`` 0/1, any lesion class)."""
    out = _cached_canvases(split, ("image", "label"), CanvasParams(), cache_dir, data_root, limit, progress)
    return out["image"], [(m > 0).astype(np.uint8) for m in out["label"]]
