"""One save/load protocol for every artefact the package writes: each file names its ``format`` and ``version``.

Two layouts:

* JSON artefacts (e.g. quantization tables): one object ``{"format": <name>, "version": <int>, **payload}``,
  written by :func:`save_json` and read by :func:`load_json`.
* Torch artefacts (trained networks): ``torch.save`` of ``{"format", "version", "config", "state"}``, where
  ``config`` is a JSON-like dict (constructor arguments and records) and ``state`` a ``state_dict`` of tensors;
  written by :func:`save_torch` and read by :func:`load_torch` with ``torch.load(weights_only=True)``, so loading
  never unpickles code.

Format names look like ``"medsecure.fft_detector"``; a class bumps its version when its layout changes. Readers
raise ``ValueError`` naming the file, the expected and the found format/version. Writers write a temporary file in
the target folder and rename it into place (``os.replace``), so a crash never leaves a half-written artefact;
:func:`staged_file` and :func:`staged_folder` do the same for writers that need a file name or fill a folder.

Readers take a ``build`` callable, the class's constructor or its ``from_state`` classmethod, so a loaded artefact
is validated exactly like a constructed object; its ``ValueError``, ``TypeError`` or ``KeyError`` comes back as a
``ValueError`` naming the file.
"""

from __future__ import annotations

import json
import os
import pickle
import secrets
import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # torch is imported where used, so the file helpers stay light (`medsecure --help`)
    import torch

__all__ = ["atomic_write", "load_json", "load_torch", "save_json", "save_torch", "staged_file", "staged_folder"]

T = TypeVar("T")
HEADER = ("format", "version")
TORCH_KEYS = {"format", "version", "config", "state"}


def _sibling(path: Path, tag: str) -> Path:
    """A fresh hidden name next to ``path`` keeping its suffixes (``.x.nii.gz`` stays a NIfTI name)."""
    return path.with_name(f".{tag}-{secrets.token_hex(4)}-{path.name}")


@contextmanager
def staged_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; when the block succeeds, rename it to ``path``, else remove it.

    For writers that need a file name (NIfTI through nibabel, MONAI image writers); the parent folder is created
    when missing.
    """
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

    An existing ``path`` is moved aside, the new folder renamed into place and the old one deleted. On an error the
    temporary folder is deleted; on ``KeyboardInterrupt`` with ``keep_on_interrupt`` it is kept (its path is
    printed) so an interrupted long run keeps what it measured.
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


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write`` on a new temporary file next to ``path``, then rename it to ``path``; returns ``path``.

    The parent folder is created when missing. On any error the temporary file is removed and ``path`` is left as
    it was. The file gets the permissions of a normally created one (``0o666`` less the umask).
    """
    with staged_file(path) as temporary, open(temporary, "xb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    return Path(path)


def _check_header(path: str | os.PathLike, found: Mapping[str, Any], format: str, version: int) -> None:
    if found.get("format") != format or found.get("version") != version:
        raise ValueError(
            f"{path}: expected format {format!r} version {version}, "
            f"found format {found.get('format')!r} version {found.get('version')!r}"
        )


def _build(path: str | os.PathLike, format: str, build: Callable[..., T], *args: Any) -> T:
    try:
        return build(*args)
    except (KeyError, TypeError, ValueError) as err:
        detail = f"missing entry {err}" if isinstance(err, KeyError) else str(err)
        raise ValueError(f"{path}: invalid {format!r} artefact: {detail}") from err


def save_json(path: str | os.PathLike, format: str, version: int, payload: Mapping[str, Any]) -> Path:
    """Write ``{"format", "version", **payload}`` as indented JSON; returns the path."""
    clash = set(HEADER) & set(payload)
    if clash:
        raise ValueError(f"payload must not hold the header keys {sorted(clash)}")
    text = json.dumps({"format": format, "version": version, **payload}, indent=2) + "\n"
    return atomic_write(path, lambda handle: handle.write(text.encode()))


def load_json(path: str | os.PathLike, format: str, version: int, build: Callable[[dict[str, Any]], T]) -> T:
    """``build(payload)`` for a JSON artefact of ``format`` / ``version`` (the payload without the header).

    Raises:
        ValueError: unreadable or invalid JSON, another format or version, or ``build`` refused the payload.
    """
    try:
        data = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    _check_header(path, data, format, version)
    return _build(path, format, build, {k: v for k, v in data.items() if k not in HEADER})


def save_torch(
    path: str | os.PathLike, format: str, version: int, config: Mapping[str, Any], state: Mapping[str, torch.Tensor]
) -> Path:
    """``torch.save`` of ``{"format", "version", "config", "state"}``; returns the path.

    ``config`` must be JSON-serialisable; it is stored as its JSON round trip (plain ``dict``/``list``/``str``/
    numbers/``None``, non-finite floats allowed), which ``weights_only`` loading accepts. ``state`` values must be
    tensors; they are stored detached on the CPU.

    Raises:
        TypeError: ``config`` is not JSON-serialisable or a ``state`` value is not a tensor.
    """
    import torch

    plain = json.loads(json.dumps(dict(config)))
    bad = sorted(k for k, v in state.items() if not isinstance(v, torch.Tensor))
    if bad:
        raise TypeError(f"state values must be tensors, got other objects for {bad}")
    blob = {
        "format": format,
        "version": version,
        "config": plain,
        "state": {k: v.detach().cpu() for k, v in state.items()},
    }
    return atomic_write(path, lambda handle: torch.save(blob, handle))


def load_torch(
    path: str | os.PathLike,
    format: str,
    version: int,
    build: Callable[[dict[str, Any], dict[str, torch.Tensor]], T],
) -> T:
    """``build(config, state)`` for a torch artefact of ``format`` / ``version``, read with ``weights_only=True``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not a torch file (or truncated, or holding objects ``weights_only`` refuses), not the
            ``{"format", "version", "config", "state"}`` layout, another format or version, or ``build`` refused it.
    """
    import torch

    try:
        blob = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as err:
        raise ValueError(f"{path}: not a readable torch artefact ({err})") from err
    if not isinstance(blob, dict) or not TORCH_KEYS <= set(blob):
        found = sorted(blob) if isinstance(blob, dict) else type(blob).__name__
        raise ValueError(f"{path}: expected a dict with keys {sorted(TORCH_KEYS)}, found {found}")
    _check_header(path, blob, format, version)
    config, state = blob["config"], blob["state"]
    if not isinstance(config, dict):
        raise ValueError(f"{path}: 'config' must be a dict, found {type(config).__name__}")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: 'state' must map names to tensors")
    return _build(path, format, build, config, state)
