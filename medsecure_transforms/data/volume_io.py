"""Reading volumes for the codec (NIfTI files, DICOM series folders, ``.npy``) and writing NIfTI.

NIfTI and DICOM go through MONAI's ``LoadImage`` (``NibabelReader`` keeps the file's affine and voxel
order; ``ITKReader`` reads a DICOM series folder and reports a RAS affine). The stored dtype is kept
(``dtype=None``), so an ``int16`` scan is coded as ``int16``; integer DICOM pixels, which ITK widens to
``int32``, get the smallest of ``uint8`` / ``int16`` / ``uint16`` that holds them.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from monai.transforms import LoadImage

__all__ = ["read_volume", "write_nifti"]


def read_volume(path: str | Path) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """Return ``(array [*spatial], affine 4x4 float64, spacing per axis)`` of a NIfTI, DICOM folder or ``.npy``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file cannot be read as a volume.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such volume: {path}")
    if path.suffix == ".npy":
        array = np.load(path, allow_pickle=False)
        return array, np.eye(4), (1.0,) * array.ndim
    reader = "ITKReader" if path.is_dir() else "NibabelReader"
    try:
        image, meta = LoadImage(reader=reader, image_only=False, dtype=None)(str(path))
    except Exception as err:
        raise ValueError(f"cannot read {path} with {reader}: {err}") from err
    array = _smallest_integer_dtype(np.asarray(image)) if reader == "ITKReader" else np.asarray(image)
    affine = np.asarray(meta.get("original_affine", meta["affine"]), dtype=np.float64)
    spacing = tuple(float(s) for s in np.sqrt((affine[:3, : array.ndim] ** 2).sum(axis=0)))
    return array, affine, spacing


def _smallest_integer_dtype(array: np.ndarray) -> np.ndarray:
    """ITK widens 16-bit DICOM pixels to int32; give integer volumes back the 16-bit type that holds them."""
    if array.dtype.kind not in "iu" or array.size == 0:
        return array
    for dtype in (np.uint8, np.int16, np.uint16):
        info = np.iinfo(dtype)
        if info.min <= array.min() and array.max() <= info.max:
            return array.astype(dtype)
    return array


def write_nifti(path: str | Path, array: np.ndarray, affine: np.ndarray) -> None:
    """Write ``array`` with ``affine`` as the sform of a NIfTI file, bit-exactly.

    NIfTI-1 stores the sform in float32, so an affine that float32 cannot hold exactly is written as
    NIfTI-2 (float64 sform); affines read from NIfTI-1 files always fit NIfTI-1.
    """
    affine = np.asarray(affine, dtype=np.float64)
    fits_float32 = np.array_equal(affine.astype(np.float32).astype(np.float64), affine)
    image = (nib.Nifti1Image if fits_float32 else nib.Nifti2Image)(np.asarray(array), affine)
    image.set_sform(affine, code=1)
    nib.save(image, str(path))
