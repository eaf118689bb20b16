"""Helpers shared by the test modules: input-type tables, a synthetic volume, dataset skips, the codec CLI, the
model-zoo-style test bundles with data and weights.

Test modules import from here (``from helpers import ...``), never from one another or from ``conftest``.
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import numpy.typing as npt
import pytest
import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor

from medsecure_transforms.cli import codec as codec_cli


def input_types(**meta_kwargs: Any) -> list[tuple[str, Callable[[Any], Any]]]:
    """Named converters to every input type a transform accepts, for ``parameterized.expand``.

    ``[("numpy", ...), ("torch", ...), ("metatensor", ...)]``; the converters share memory with a numpy input
    where they can. ``meta_kwargs`` (e.g. ``meta=...``, ``affine=...``) go to every ``MetaTensor`` built.
    """
    return [
        ("numpy", np.asarray),
        ("torch", torch.as_tensor),
        ("metatensor", lambda array: MetaTensor(torch.as_tensor(array), **meta_kwargs)),
    ]


INPUT_TYPES = input_types()  # MONAI's TEST_NDARRAYS, named for parameterized test ids


def phantom(shape: tuple[int, ...] = (32, 24, 12), dtype: npt.DTypeLike = np.int16, seed: int = 0) -> np.ndarray:
    """A smooth blob with an edge and mild noise in 12-bit grey levels (0..4095), ``shape`` e.g. ``[H, W, D]``."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    radius = np.sqrt(sum(g**2 for g in grids))
    volume = 1500 * (radius < 0.6) + 800 * np.exp(-4 * radius**2) + rng.normal(0, 20, shape)
    return np.clip(volume, 0, 4095).astype(dtype)


def require_dataset(root: Path, name: str) -> Path:
    """``root / name``; skips the test unless that dataset (its ``dataset.json``) exists."""
    if not (root / name / "dataset.json").is_file():
        pytest.skip(f"dataset {name!r} not present under {root}")
    return root / name


def run_codec_cli(*argv: str) -> int:
    """Run ``medsecure compress`` / ``decompress`` in-process with ``argv``; the command's exit status."""
    parser = argparse.ArgumentParser()
    codec_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


ZOO_BUNDLES = Path(__file__).resolve().parent / "zoo_bundles"


def _write_nifti(path: Path, array: np.ndarray, spacing: tuple[float, ...]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    affine = np.diag([*spacing, *[1.0] * (4 - len(spacing))])
    nib.save(nib.Nifti1Image(array, affine), str(path))


def _blob(shape: tuple[int, ...], centre: float, radius: float) -> np.ndarray:
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    return np.sqrt(sum((g - centre) ** 2 for g in grids)) < radius


def _write_cases(folder: Path, split: str, shape, spacing, count: int, hu: bool, classes: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for case in range(count):
        label = np.zeros(shape, np.uint8)
        for c in range(1, classes):
            label[_blob(shape, 0.3 * (c - 1) - 0.1 + 0.05 * case, 0.35)] = c
        base = (-100.0, 120.0) if hu else (50.0, 400.0)
        image = np.where(label > 0, base[1], base[0]) + rng.normal(0, 10, shape)
        _write_nifti(folder / f"images{split}" / f"case_{case}.nii.gz", image.astype(np.float32), spacing)
        _write_nifti(folder / f"labels{split}" / f"case_{case}.nii.gz", label, spacing)


def _save_random_weights(folder: Path, config: str, path: str, wrapped: bool) -> None:
    parser = ConfigParser()
    parser.read_config(str(folder / "configs" / config))
    torch.manual_seed(0)
    state = parser.get_parsed_content("network_def").state_dict()
    (folder / path).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": state} if wrapped else state, folder / path)


def make_zoo_bundles(root: Path) -> dict[str, tuple[Path, dict]]:
    """Copies of ``tests/zoo_bundles`` under ``root/bundles`` with tiny random weights and NIfTI data in each
    bundle's layout: bundle name -> (bundle folder, ``monai.bundle run`` overrides pointing at its data)."""
    shutil.copytree(ZOO_BUNDLES, root / "bundles")
    slice_, ct, overlay = (root / "bundles" / n for n in ("slice_2d_on_3d", "ct_sliding_window", "train_eval_overlay"))
    # slice bundle: data inside the bundle (dataset_dir = bundle_root/data), weights as a plain state dict
    _write_cases(slice_ / "data", "Ts", (32, 32, 6), (1.0, 1.0, 3.0), 2, hu=False, classes=3, seed=1)
    _save_random_weights(slice_, "inference.json", "models/slice_unet.pt", wrapped=False)
    # CT bundle: zoo-style absolute dataset_dir, overridden; 1.5 x 1.5 x 2 mm volumes resampled to 2 mm
    _write_cases(root / "tiny_ct", "Ts", (32, 32, 20), (1.5, 1.5, 2.0), 2, hu=True, classes=2, seed=2)
    _save_random_weights(ct, "inference.json", "models/model.pt", wrapped=True)
    # train/evaluate overlay bundle: 2D images, 4 training (last 2 validate) + 2 test
    _write_cases(root / "tiny_2d", "Tr", (32, 32), (1.0, 1.0), 4, hu=False, classes=2, seed=3)
    _write_cases(root / "tiny_2d", "Ts", (32, 32), (1.0, 1.0), 2, hu=False, classes=2, seed=4)
    _save_random_weights(overlay, "train.json", "models/model.pt", wrapped=False)
    return {
        slice_.name: (slice_, {}),
        ct.name: (ct, {"dataset_dir": str(root / "tiny_ct")}),
        overlay.name: (overlay, {"dataset_dir": str(root / "tiny_2d")}),
    }
