"""Download of each dataset's *official* source archive with MONAI's checksum-verifying downloader.

The project's tests and benchmarks use the curated copies in the data root (see its ``SOURCE.md`` files);
this module fetches the original releases they were derived from. Every download is checksum-verified: only MSD
publishes a checksum (MONAI's own ``DecathlonDataset`` table), so for the other sources pass ``hash_value`` once you
have verified an archive; without one the download is refused unless ``allow_unverified=True`` is passed explicitly.
Extraction uses MONAI's archive extraction, which refuses members leading outside the target folder (the floor
``monai>=1.5.2`` in ``pyproject.toml`` carries the fixes of GHSA-x6ww-pf9m-m73m and GHSA-9rg3-9pvr-6p27).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from monai.apps.utils import HashCheckError, download_and_extract, download_url

from .registry import get_spec

logger = logging.getLogger(__name__)

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")


def download_dataset(
    name: str,
    dest_dir: str | os.PathLike,
    url: str | None = None,
    hash_value: str | None = None,
    hash_type: str | None = None,
    extract: bool = True,
    allow_unverified: bool = False,
) -> Path:
    """Download (and extract) the official archive of ``name`` into ``dest_dir``.

    Args:
        name: registry name (e.g. ``"hippocampus-msd"``).
        dest_dir: target folder, created if needed.
        url: override the official URL (a mirror, or a local server in tests).
        hash_value, hash_type: override the registry checksum.
        extract: extract ``.zip``/``.tar`` archives after verification.
        allow_unverified: download even when no checksum is known (logged as a warning).

    Returns:
        The downloaded file path (``extract=False`` or not an archive) or ``dest_dir``.

    Raises:
        ValueError: no checksum is known for the source and ``allow_unverified`` is not set (nothing is fetched).
        RuntimeError: the checksum does not match (the downloaded file is deleted, nothing is extracted).
    """
    spec = get_spec(name)
    url = url or spec.url
    hash_value = hash_value if hash_value is not None else spec.hash_value
    hash_type = hash_type or spec.hash_type
    if hash_value is None and not allow_unverified:
        raise ValueError(
            f"{name}: the source publishes no checksum; pass hash_value= (e.g. the md5 of an archive you verified) "
            "or allow_unverified=True"
        )
    if hash_value is None:
        logger.warning("%s: the source publishes no checksum; the download of %s is not verified", name, url)
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    filename = url.rstrip("/").split("/")[-1].split("?")[0] or f"{name}.bin"
    filepath = dest / filename
    try:
        if extract and filename.endswith(ARCHIVE_SUFFIXES):
            download_and_extract(url, str(filepath), str(dest), hash_val=hash_value, hash_type=hash_type, progress=True)
            return dest
        download_url(url, str(filepath), hash_val=hash_value, hash_type=hash_type, progress=True)
    except HashCheckError as error:
        filepath.unlink(missing_ok=True)  # never leave an unverified archive where a retry would trust it
        raise RuntimeError(
            f"{name}: {hash_type} checksum of {url} does not match {hash_value}; the download was deleted"
        ) from error
    return filepath
