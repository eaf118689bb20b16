"""MONAI ``Dataset`` / ``CacheDataset`` factories over the datasets in the data root."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from monai.data import CacheDataset, Dataset

from .datalist import load_datalist
from .loading import loading_transforms
from .registry import get_spec


def make_dataset(
    name: str,
    split: str = "training",
    transform: Callable | None = None,
    keys: Sequence[str] = ("image", "label"),
    cache: bool = False,
    data_root: str | os.PathLike | None = None,
    limit: int | None = None,
    num_workers: int = 0,
) -> Dataset:
    """Dataset of ``split`` of ``name``; ``transform`` defaults to :func:`loading_transforms`.

    ``cache=True`` returns a ``CacheDataset`` (deterministic transforms cached in memory).
    """
    spec = get_spec(name)
    items = load_datalist(name, split, data_root, limit=limit)
    transform = transform if transform is not None else loading_transforms(spec, keys)
    if cache:
        return CacheDataset(items, transform, num_workers=num_workers, progress=False)
    return Dataset(items, transform)
