"""Resolution of the data root: ``--data-root`` flag, else ``MEDSECURE_DATA_ROOT``, else ``../shared/data``."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "MEDSECURE_DATA_ROOT"


def default_candidates() -> list[Path]:
    """Places searched when neither a flag nor the environment variable names the root."""
    here = Path(__file__).resolve()
    repo_root = here.parents[2]
    return [Path.cwd().parent / "shared" / "data", repo_root.parent / "shared" / "data"]


def find_data_root(data_root: str | os.PathLike | None = None) -> Path | None:
    """Return the data root, or ``None`` when no candidate exists.

    An explicitly given root (argument or environment variable) that does not exist raises
    ``FileNotFoundError``: a typo must not silently fall back to another folder.
    """
    explicit = data_root if data_root is not None else os.environ.get(ENV_VAR) or None
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_dir():
            source = "data_root argument" if data_root is not None else f"${ENV_VAR}"
            raise FileNotFoundError(f"data root {str(path)!r} given by {source} is not a directory")
        return path.resolve()
    for candidate in default_candidates():
        if candidate.is_dir():
            return candidate.resolve()
    return None


def resolve_data_root(data_root: str | os.PathLike | None = None) -> Path:
    """Like :func:`find_data_root` but raise ``FileNotFoundError`` when nothing is found."""
    root = find_data_root(data_root)
    if root is None:
        tried = ", ".join(str(p) for p in default_candidates())
        raise FileNotFoundError(
            f"no data root found: pass --data-root, set ${ENV_VAR}, or place the datasets in one of: {tried}"
        )
    return root
