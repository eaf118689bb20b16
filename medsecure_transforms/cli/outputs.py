"""How the commands write: never over an existing output without ``--overwrite``, never over their input, and a
failing command leaves nothing behind.

Byte outputs go through :func:`medsecure_transforms.artefacts.atomic_write`. Writers that need a file name (NIfTI
through nibabel) write a temporary name next to the output, renamed into place by
:func:`~medsecure_transforms.artefacts.staged_file`; output folders are filled as a temporary sibling folder that
:func:`~medsecure_transforms.artefacts.staged_folder` renames into place at the end (both re-exported here).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ..artefacts import staged_file, staged_folder

__all__ = ["check_outputs", "staged_file", "staged_folder"]


def _occupied(path: Path) -> bool:
    """``path`` holds something a command would replace: a file, or a folder that is not empty."""
    if path.is_dir() and not path.is_symlink():
        return any(path.iterdir())
    return path.exists() or path.is_symlink()


def _same_or_inside(path: Path, folder: Path) -> bool:
    """``path`` is ``folder`` (same resolved path or same file) or lies inside it."""
    path, folder = path.resolve(), folder.resolve()
    if path == folder or folder in path.parents:
        return True
    return path.exists() and folder.exists() and os.path.samefile(path, folder)


def check_outputs(outputs: Iterable[str | os.PathLike], inputs: Iterable[str | os.PathLike], overwrite: bool) -> None:
    """Refuse outputs that are (or would replace) an input, and existing outputs unless ``overwrite``.

    An empty existing folder counts as free.

    Raises:
        ValueError: an output is an input, or a folder holding one.
        FileExistsError: an output exists and ``overwrite`` is false.
    """
    inputs = [Path(p) for p in inputs]
    for output in map(Path, outputs):
        for source in inputs:
            if _same_or_inside(source, output):
                raise ValueError(f"output {output} is the input {source} or holds it; choose another output")
        if not overwrite and _occupied(output):
            raise FileExistsError(f"output {output} exists; pass --overwrite to replace it")
