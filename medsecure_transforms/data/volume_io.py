"""Reading volumes for the codec (NIfTI files, DICOM series folders, ``.npy``) and writing NIfTI.

NIfTI and DICOM go through MONAI's ``LoadImage`` (``NibabelReader`` keeps the file's affine and voxel
order; ``ITKReader`` reads a DICOM series folder and reports a RAS affine). The stored dtype is kept
(``dtype=None``), so an ``int16`` scan is coded as ``int16``; integer DICOM pixels, which ITK widens to
``int32``, get the smallest of ``uint8`` / ``int16`` / ``uint16`` that holds them.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import nibabel as nib
import numpy as np
from monai.transforms import LoadImage

__all__ = ["DEFAULT_NIFTI_CODES", "NiftiCodes", "nifti_codes", "read_volume", "write_nifti"]


class NiftiCodes(NamedTuple):
    """The NIfTI-1 header fields that say how to read the affine: ``qform_code`` and ``sform_code`` (0 unknown,
    1 scanner, 2 aligned, 3 Talairach, 4 MNI, 5 template) and ``xyzt_units`` (spatial unit code in bits 0-2: 0
    unknown, 1 m, 2 mm, 3 um; time unit code in bits 3-5: 0 unknown, 8 s, 16 ms, 24 us, 32 Hz, 40 ppm, 48 rad/s)."""

    qform_code: int
    sform_code: int
    xyzt_units: int

    def validate(self) -> NiftiCodes:
        """``self`` if every code is one the NIfTI-1 standard defines, else ``ValueError``."""
        units = self.xyzt_units
        if not (0 <= self.qform_code <= 5 and 0 <= self.sform_code <= 5):
            raise ValueError(f"qform_code {self.qform_code} / sform_code {self.sform_code} must be NIfTI codes 0..5")
        if not (0 <= units <= 0x3F and (units & 0x07) <= 3 and (units & 0x38) <= 48):
            raise ValueError(f"xyzt_units {units} is not a NIfTI unit code")
        return self


DEFAULT_NIFTI_CODES = NiftiCodes(qform_code=0, sform_code=1, xyzt_units=0)
"""Codes written for a source without NIfTI header codes (and read from version-1 files): the affine as sform."""


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


def nifti_codes(path: str | Path) -> NiftiCodes | None:
    """The qform/sform codes and units of a NIfTI file's header; ``None`` for anything that is not NIfTI."""
    if Path(path).is_dir() or not str(path).endswith((".nii", ".nii.gz")):
        return None
    header = nib.load(str(path)).header
    return NiftiCodes(int(header["qform_code"]), int(header["sform_code"]), int(header["xyzt_units"])).validate()


def write_nifti(
    path: str | Path, array: np.ndarray, affine: np.ndarray, codes: NiftiCodes = DEFAULT_NIFTI_CODES
) -> None:
    """Write ``array`` with ``affine`` as a NIfTI file, bit-exactly, with the source's header ``codes``.

    The affine goes into the sform (``codes.sform_code``) and, when ``codes.qform_code`` is set, also into the
    qform; ``xyzt_units`` is written as given. NIfTI-1 stores the sform in float32, so an affine that float32
    cannot hold exactly is written as NIfTI-2 (float64 sform); affines read from NIfTI-1 files always fit NIfTI-1.
    """
    codes = NiftiCodes(*codes).validate()
    affine = np.asarray(affine, dtype=np.float64)
    fits_float32 = np.array_equal(affine.astype(np.float32).astype(np.float64), affine)
    image = (nib.Nifti1Image if fits_float32 else nib.Nifti2Image)(np.asarray(array), affine)
    image.set_sform(affine, code=codes.sform_code)
    image.set_qform(affine if codes.qform_code else None, code=codes.qform_code)
    image.header["xyzt_units"] = codes.xyzt_units
    nib.save(image, str(path))
