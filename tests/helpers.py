"""Helpers shared by the test modules: input-type tables, a synthetic volume, dataset skips, the codec CLI.

Test modules import from here (``from helpers import ...``), never from one another or from ``conftest``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import torch
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
