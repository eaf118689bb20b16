"""How the commands write: never over an existing output without ``--overwrite``, never over their input, and a
failing command leaves nothing behind.

Byte outputs go through :func:`medsecure_transforms.artefacts.atomic_write`. Writers that need a file name (NIfTI
through nibabel) write a temporary name next to the output, renamed into place by :func:`staged_file`; output
folders are filled as a temporary sibling folder that :func:`staged_folder` renames into place at the end.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

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


def _sibling(path: Path, tag: str) -> Path:
    """A fresh hidden name next to ``path`` keeping its suffixes (``.x.nii.gz`` stays a NIfTI name)."""
    return path.with_name(f".{tag}-{secrets.token_hex(4)}-{path.name}")


@contextmanager
def staged_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; when the block succeeds, rename it to ``path``, else remove it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _sibling(path, "partial")
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


@contextmanager
def staged_folder(path: str | os.PathLike, keep_on_interrupt: bool = False) -> Iterator[Path]:
    """Yield a new temporary sibling folder of ``path``; when the block succeeds it replaces ``path``.

    An existing ``path`` (allowed by :func:`check_outputs`) is moved aside, the new folder renamed into place and
    the old one deleted. On an error the temporary folder is deleted; on ``KeyboardInterrupt`` with
    ``keep_on_interrupt`` it is kept (its path is printed) so an interrupted long run keeps what it measured.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = _sibling(path, "partial")
    staging.mkdir()
    try:
        yield staging
    except KeyboardInterrupt:
        if keep_on_interrupt:
            print(f"interrupted: partial results kept in {staging}")
        else:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = _sibling(path, "old") if path.exists() or path.is_symlink() else None
    if old is not None:
        os.replace(path, old)
    try:
        os.replace(staging, path)
    except BaseException:
        if old is not None:
            os.replace(old, path)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if old is not None and old.is_dir() and not old.is_symlink():
        shutil.rmtree(old)
    elif old is not None:
        old.unlink()
