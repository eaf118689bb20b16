"""Reading Decathlon-style ``dataset.json`` files with every referenced file checked up front."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .registry import get_spec
from .root import resolve_data_root

SPLITS = ("training", "validation", "test")
FILE_KEYS = ("image", "label")


def dataset_dir(name: str, data_root: str | os.PathLike | None = None) -> Path:
    """Folder of dataset ``name`` inside the resolved data root."""
    get_spec(name)
    folder = resolve_data_root(data_root) / name
    if not (folder / "dataset.json").is_file():
        raise FileNotFoundError(f"dataset {name!r}: {folder / 'dataset.json'} does not exist")
    return folder


def check_inside(folder: Path, entry: str, what: str) -> None:
    """Raise ``ValueError`` unless ``entry`` is a relative path that stays inside ``folder`` (checked lexically, so
    a dataset folder may itself be reached through symbolic links)."""
    relative = Path(entry)
    if relative.is_absolute() or relative.drive:
        raise ValueError(f"{what}: absolute path {entry!r} is not allowed; entries are relative to {folder}")
    inside = Path(os.path.normpath(folder / relative))
    if inside != Path(os.path.normpath(folder)) and Path(os.path.normpath(folder)) not in inside.parents:
        raise ValueError(f"{what}: path {entry!r} leads outside the dataset folder {folder}")


def load_datalist(
    name: str,
    split: str = "training",
    data_root: str | os.PathLike | None = None,
    limit: int | None = None,
    allow_outside: bool = False,
) -> list[dict]:
    """Return the ``split`` list of ``name`` with absolute paths.

    Every ``image``/``label`` path (and the dataset's extra mask keys) is made absolute and checked;
    a missing file raises ``FileNotFoundError`` naming it, so nothing is dropped silently.
    ``limit`` keeps the first ``limit`` entries (deterministic order of the file). Entries must be relative paths
    that stay inside the dataset folder (no absolute paths, no ``..`` leading out of it) unless ``allow_outside``.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    spec = get_spec(name)
    folder = dataset_dir(name, data_root)
    with open(folder / "dataset.json") as f:
        meta = json.load(f)
    entries = meta.get(split)
    if not isinstance(entries, list):
        raise ValueError(f"{folder / 'dataset.json'}: section {split!r} is missing or not a list")
    if limit is not None:
        entries = entries[:limit]
    items = []
    for i, entry in enumerate(entries):
        item = dict(entry)
        for key in FILE_KEYS + spec.extra_keys:
            if key not in item:
                if key in FILE_KEYS:
                    raise ValueError(f"{folder / 'dataset.json'}: {split}[{i}] has no {key!r} entry")
                continue
            if not allow_outside:
                check_inside(folder, item[key], f"{folder / 'dataset.json'}: {split}[{i}] {key!r}")
            path = (folder / item[key]).resolve()
            if not path.is_file():
                raise FileNotFoundError(f"{folder / 'dataset.json'}: {split}[{i}] {key!r} file {path} does not exist")
            item[key] = str(path)
        items.append(item)
    return items
