"""Single-frame DICOM image series <-> volume with a NIfTI-style (RAS) affine, using pydicom only.

Array convention: ``volume[i, j, k]`` is column ``i``, row ``j`` of slice ``k`` (``pixel_array[j, i]`` of the
``k``-th slice in order along the slice normal), the ``[X, Y, Z]`` order nibabel and MONAI's readers use, so the
4x4 ``affine`` maps voxel ``(i, j, k)`` to RAS millimetres exactly as a NIfTI affine does.

Writing makes a new series (new Series/SOP Instance UIDs). Patient and study identifiers (:data:`IDENTIFIER_KEYWORDS`)
are copied only when the caller passes them; otherwise the series gets a new Study Instance UID, a new Frame of
Reference UID and empty patient attributes. Reading validates every header field it relies on before touching pixel
data and raises :class:`DicomSeriesError` (a ``ValueError``) naming the file and the problem.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from ..artefacts import staged_folder

IDENTIFIER_KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "StudyDescription",
    "AccessionNumber",
    "ReferringPhysicianName",
    "FrameOfReferenceUID",
)
"""Patient/study keywords carried from a source series only when asked (everything that links to a person)."""

STORAGE_CLASSES = {"MR": "1.2.840.10008.5.1.4.1.1.4", "CT": "1.2.840.10008.5.1.4.1.1.2"}
"""SOP Class UIDs written per modality: MR Image Storage, CT Image Storage."""

LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
GEOMETRY_ATOL = 1e-4  # direction-cosine tolerance (unitless)
SPACING_RTOL = 1e-2  # allowed relative deviation of slice gaps from their mean
UNCOMPRESSED = {pydicom.uid.ExplicitVRLittleEndian, pydicom.uid.ImplicitVRLittleEndian}
MAX_SLICE_PIXELS = 8192 * 8192
"""Largest Rows x Columns accepted per slice (about 128 MiB of float64 per slice once decoded)."""


class DicomSeriesError(ValueError):
    """A DICOM series that cannot be read or written as one volume (the message names file and problem)."""


@dataclass(frozen=True)
class LossyCompression:
    """What a lossy codec did to the pixels of a series (DICOM PS3.3 C.7.6.1.1.5, General Image module).

    Attributes:
        ratio: compression ratio (uncompressed bytes / compressed bytes), written as LossyImageCompressionRatio.
        method: LossyImageCompressionMethod; a defined term (``"ISO_15444_1"`` for JPEG 2000) or, for a codec
            without one, the codec's name (e.g. ``"MEDSECURE_MVC"``).
    """

    ratio: float
    method: str

    def __post_init__(self) -> None:
        if not (np.isfinite(self.ratio) and self.ratio > 0):
            raise DicomSeriesError(f"lossy compression ratio must be a positive finite number, got {self.ratio}")
        if not self.method or len(self.method) > 16 or not self.method.replace("_", "").isalnum():
            raise DicomSeriesError(
                f"lossy compression method must be a DICOM CS value (<= 16 chars), got {self.method!r}"
            )


@dataclass
class DicomVolume:
    """A volume read from one DICOM series.

    Attributes:
        array: ``[X, Y, Z]`` voxel values after Rescale Slope/Intercept: ``int16``/``uint16``/``int32`` (the first
            that holds them) when every value is an integer, else ``float32``.
        affine: 4x4 float64 voxel -> RAS millimetre matrix.
        identifiers: the :data:`IDENTIFIER_KEYWORDS` present in the first slice, as strings.
        series_instance_uid: the source Series Instance UID.
        modality: the source Modality.
        files: source files in slice order.
    """

    array: np.ndarray
    affine: np.ndarray
    identifiers: dict[str, str] = field(default_factory=dict)
    series_instance_uid: str = ""
    modality: str = "MR"
    files: list[Path] = field(default_factory=list)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along ``X, Y, Z``."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))


def _read_headers(directory: Path) -> list[tuple[Path, pydicom.Dataset]]:
    """Every DICOM file under ``directory`` (recursive); non-DICOM files are skipped unless named ``*.dcm``."""
    if not directory.is_dir():
        raise DicomSeriesError(f"DICOM input {directory} is not a directory")
    found = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        try:
            ds = pydicom.dcmread(path)
        except (InvalidDicomError, EOFError, OSError, ValueError) as err:
            if path.suffix.lower() == ".dcm":
                raise DicomSeriesError(f"{path}: not a readable DICOM file ({err})") from err
            continue
        if "SOPClassUID" not in ds or ds.SOPClassUID == "1.2.840.10008.1.3.10":  # skip DICOMDIR / non-instances
            continue
        found.append((path, ds))
    if not found:
        raise DicomSeriesError(f"no DICOM instances found under {directory}")
    return found


def _require(ds: pydicom.Dataset, path: Path, keywords: tuple[str, ...]) -> None:
    missing = [k for k in keywords if k not in ds or ds[k].value in (None, "")]
    if missing:
        raise DicomSeriesError(f"{path}: missing required attribute(s) {', '.join(missing)}")


def _check_pixels(ds: pydicom.Dataset, path: Path) -> None:
    """Validate the pixel-describing header fields (and the raw length for uncompressed data) before decoding."""
    if "PixelData" not in ds:
        raise DicomSeriesError(f"{path}: missing pixel data (7FE0,0010)")
    _require(ds, path, ("Rows", "Columns", "BitsAllocated", "SamplesPerPixel"))
    if int(ds.SamplesPerPixel) != 1:
        raise DicomSeriesError(f"{path}: expected one sample per pixel (grey-scale), got {ds.SamplesPerPixel}")
    if int(getattr(ds, "NumberOfFrames", 1) or 1) != 1:
        raise DicomSeriesError(f"{path}: multi-frame instances are not supported ({ds.NumberOfFrames} frames)")
    if int(ds.BitsAllocated) not in (8, 16, 32):
        raise DicomSeriesError(f"{path}: unsupported BitsAllocated {ds.BitsAllocated}")
    rows, cols = int(ds.Rows), int(ds.Columns)
    if rows < 1 or cols < 1 or rows * cols > MAX_SLICE_PIXELS:
        raise DicomSeriesError(f"{path}: {rows} x {cols} pixels per slice is outside 1 .. {MAX_SLICE_PIXELS} pixels")
    if "RescaleSlope" in ds and ds.RescaleSlope not in (None, ""):
        slope = float(ds.RescaleSlope)
        if not np.isfinite(slope) or slope == 0:
            raise DicomSeriesError(f"{path}: RescaleSlope {ds.RescaleSlope} must be finite and non-zero")
    if "RescaleIntercept" in ds and ds.RescaleIntercept not in (None, ""):
        if not np.isfinite(float(ds.RescaleIntercept)):
            raise DicomSeriesError(f"{path}: RescaleIntercept {ds.RescaleIntercept} must be finite")
    if ds.file_meta.TransferSyntaxUID in UNCOMPRESSED:
        expected = int(ds.Rows) * int(ds.Columns) * int(ds.BitsAllocated) // 8
        actual = len(ds.PixelData)
        if actual not in (expected, expected + 1):  # one pad byte keeps odd lengths even
            raise DicomSeriesError(f"{path}: pixel data has {actual} bytes, header implies {expected}")


def _select_series(found: list[tuple[Path, pydicom.Dataset]], series_instance_uid: str | None):
    by_series: dict[str, list[tuple[Path, pydicom.Dataset]]] = {}
    for path, ds in found:
        by_series.setdefault(str(getattr(ds, "SeriesInstanceUID", "")), []).append((path, ds))
    if series_instance_uid is not None:
        if series_instance_uid not in by_series:
            raise DicomSeriesError(f"series {series_instance_uid} not found; present: {sorted(by_series)}")
        return series_instance_uid, by_series[series_instance_uid]
    if len(by_series) != 1:
        counts = {uid or "<no SeriesInstanceUID>": len(items) for uid, items in by_series.items()}
        raise DicomSeriesError(f"mixed series: {len(by_series)} series found ({counts}); pass series_instance_uid")
    return next(iter(by_series.items()))


def _slice_geometry(items: list[tuple[Path, pydicom.Dataset]]):
    """Shared orientation/spacing checks; returns (row_cos, col_cos, normal, pixel_spacing, items sorted)."""
    path0, ds0 = items[0]
    keys = ("ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing")
    for path, ds in items:
        _require(ds, path, keys)
        _check_pixels(ds, path)
    iop = np.asarray(ds0.ImageOrientationPatient, dtype=np.float64)
    spacing = np.asarray(ds0.PixelSpacing, dtype=np.float64)
    if iop.shape != (6,) or spacing.shape != (2,) or not (np.isfinite(spacing).all() and (spacing > 0).all()):
        raise DicomSeriesError(f"{path0}: malformed ImageOrientationPatient {iop} or PixelSpacing {spacing}")
    row_cos, col_cos = iop[:3], iop[3:]
    if abs(np.linalg.norm(row_cos) - 1) > GEOMETRY_ATOL or abs(np.linalg.norm(col_cos) - 1) > GEOMETRY_ATOL:
        raise DicomSeriesError(f"{path0}: ImageOrientationPatient {iop.tolist()} is not made of unit vectors")
    for path, ds in items[1:]:
        if (int(ds.Rows), int(ds.Columns)) != (int(ds0.Rows), int(ds0.Columns)):
            raise DicomSeriesError(
                f"{path}: mixed series: {ds.Rows}x{ds.Columns} pixels, first slice has {ds0.Rows}x{ds0.Columns}"
            )
        if not np.allclose(np.asarray(ds.ImageOrientationPatient, dtype=np.float64), iop, atol=GEOMETRY_ATOL):
            raise DicomSeriesError(f"{path}: mixed series: ImageOrientationPatient differs from the first slice")
        if not np.allclose(np.asarray(ds.PixelSpacing, dtype=np.float64), spacing, rtol=SPACING_RTOL):
            raise DicomSeriesError(f"{path}: mixed series: PixelSpacing differs from the first slice")
    normal = np.cross(row_cos, col_cos)
    positions = []
    for path, ds in items:
        position = np.asarray(ds.ImagePositionPatient, dtype=np.float64)
        if position.shape != (3,) or not np.isfinite(position).all():
            raise DicomSeriesError(
                f"{path}: ImagePositionPatient {list(ds.ImagePositionPatient)} is not 3 finite numbers"
            )
        positions.append(position)
    order = np.argsort(np.asarray(positions) @ normal, kind="stable")
    distances = (np.asarray(positions) @ normal)[order]
    if len(items) > 1:
        gaps = np.diff(distances)
        if (gaps <= GEOMETRY_ATOL).any():
            raise DicomSeriesError("mixed series: two or more slices share the same position along the slice normal")
        if np.abs(gaps - gaps.mean()).max() > SPACING_RTOL * gaps.mean():
            raise DicomSeriesError(
                f"non-uniform slice spacing (a missing slice doubles a gap): gaps from {gaps.min():.4g} to "
                f"{gaps.max():.4g} mm"
            )
    items = [items[i] for i in order]
    _check_complete(items)
    return row_cos, col_cos, normal, spacing, items, distances


def _check_complete(items: list[tuple[Path, pydicom.Dataset]]) -> None:
    """Refuse a series with missing instances: the InstanceNumbers (when every slice has one) must form a range
    without gaps, and ImagesInAcquisition (when the slices carry it) must equal the slice count."""
    numbers = [ds.get("InstanceNumber") for _, ds in items]
    if all(n not in (None, "") for n in numbers):
        present = sorted({int(n) for n in numbers})
        missing = sorted(set(range(present[0], present[-1] + 1)) - set(present))
        if missing:
            shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
            raise DicomSeriesError(
                f"{items[0][0].parent}: incomplete series: InstanceNumber {present[0]}..{present[-1]} lacks {shown}"
            )
    declared = {int(ds.ImagesInAcquisition) for _, ds in items if ds.get("ImagesInAcquisition") not in (None, "")}
    if len(declared) > 1 or (declared and declared != {len(items)}):
        raise DicomSeriesError(
            f"{items[0][0].parent}: incomplete series: {len(items)} slices found, ImagesInAcquisition says "
            f"{sorted(declared)}"
        )


def validate_dicom_input(directory: str | Path) -> dict[str, int]:
    """Check every series under ``directory`` reads as one volume (headers, pixel sizes, geometry; no decoding).

    Returns:
        slice count per Series Instance UID.

    Raises:
        DicomSeriesError: naming the first offending file and problem.
    """
    by_series: dict[str, list[tuple[Path, pydicom.Dataset]]] = {}
    for path, ds in _read_headers(Path(directory)):
        by_series.setdefault(str(getattr(ds, "SeriesInstanceUID", "")), []).append((path, ds))
    if "" in by_series:
        raise DicomSeriesError(f"{by_series[''][0][0]}: missing SeriesInstanceUID")
    for items in by_series.values():
        _slice_geometry(items)
    return {uid: len(items) for uid, items in by_series.items()}


def read_dicom_series(directory: str | Path, series_instance_uid: str | None = None) -> DicomVolume:
    """Read one single-frame grey-scale series from ``directory`` as a :class:`DicomVolume`.

    Args:
        directory: folder searched recursively; files that are not DICOM are ignored unless named ``*.dcm``.
        series_instance_uid: the series to read when the folder holds several (else several is an error).

    Raises:
        DicomSeriesError: no instances, mixed series, missing pixel data or geometry, inconsistent slices.
    """
    series_uid, items = _select_series(_read_headers(Path(directory)), series_instance_uid)
    row_cos, col_cos, normal, pixel_spacing, items, distances = _slice_geometry(items)
    ds0 = items[0][1]
    rows, cols = int(ds0.Rows), int(ds0.Columns)
    if len(items) > 1:
        slice_gap = float(np.diff(distances).mean())
    else:
        slice_gap = float(getattr(ds0, "SpacingBetweenSlices", None) or getattr(ds0, "SliceThickness", None) or 1.0)
    array = np.empty((cols, rows, len(items)), dtype=np.float64)
    for k, (path, ds) in enumerate(items):
        try:
            pixels = ds.pixel_array
        except Exception as err:  # decoders raise many types; the message names the file either way
            raise DicomSeriesError(f"{path}: pixel data cannot be decoded ({err})") from err
        slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
        intercept = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
        array[:, :, k] = (pixels.astype(np.float64) * slope + intercept).T
    lps = np.eye(4)
    array = _compact(array)
    lps[:3, 0] = row_cos * pixel_spacing[1]
    lps[:3, 1] = col_cos * pixel_spacing[0]
    lps[:3, 2] = normal * slice_gap
    lps[:3, 3] = np.asarray(ds0.ImagePositionPatient, dtype=np.float64)
    identifiers = {k: str(ds0[k].value) for k in IDENTIFIER_KEYWORDS if k in ds0 and ds0[k].value not in (None, "")}
    return DicomVolume(
        array=array,
        affine=LPS_FROM_RAS @ lps,
        identifiers=identifiers,
        series_instance_uid=series_uid,
        modality=str(getattr(ds0, "Modality", "MR")),
        files=[p for p, _ in items],
    )


def _compact(values: np.ndarray) -> np.ndarray:
    """``values`` in the first of int16, uint16, int32 that holds them exactly, else float32."""
    if np.array_equal(values, np.round(values)):
        for dtype in (np.int16, np.uint16, np.int32):
            info = np.iinfo(dtype)
            if values.min() >= info.min and values.max() <= info.max:
                return values.astype(dtype)
    return values.astype(np.float32)


def _pixel_encoding(volume: np.ndarray) -> tuple[np.ndarray, float, float, bool]:
    """Stored integers, slope, intercept, signed: exact for integer-valued volumes, 16-bit linear otherwise."""
    lo, hi = float(volume.min()), float(volume.max())
    if np.array_equal(volume, np.round(volume)) and lo >= -32768 and hi <= 65535:
        signed = lo < 0
        if signed and hi > 32767:
            raise DicomSeriesError(f"integer volume range [{lo}, {hi}] does not fit 16 bits")
        return volume.astype(np.int16 if signed else np.uint16), 1.0, 0.0, signed
    slope = float(f"{(hi - lo) / 65535.0:.10g}") if hi > lo else 1.0  # values as the DS strings will read back
    lo = float(f"{lo:.10g}")
    stored = np.clip(np.round((volume - lo) / slope), 0, 65535).astype(np.uint16)
    return stored, slope, lo, False


def _uid(seed: str | None, *parts: object):
    return generate_uid() if seed is None else generate_uid(entropy_srcs=[seed, *map(str, parts)])


def write_dicom_series(
    volume: np.ndarray,
    affine: np.ndarray,
    directory: str | Path,
    identifiers: Mapping[str, str] | None = None,
    modality: str = "MR",
    series_description: str = "",
    series_number: int = 1,
    uid_seed: str | None = None,
    lossy: LossyCompression | None = None,
) -> list[Path]:
    """Write ``volume`` ``[X, Y, Z]`` with RAS ``affine`` as a new single-frame series; returns the files in order.

    Args:
        volume: real-valued 3D array; integer-valued data within 16 bits are stored exactly, other data as 16-bit
            integers with Rescale Slope/Intercept (error at most half a slope).
        affine: 4x4 voxel -> RAS mm; its first two columns must be orthogonal (DICOM rows and columns).
        directory: output folder, absent or empty (a series never mixes with other files); files are named
            ``slice_0000.dcm`` ... The series is written into a temporary sibling folder and renamed into place,
            so an interrupted write leaves no partial series under ``directory``.
        identifiers: :data:`IDENTIFIER_KEYWORDS` values to carry over; ``None`` writes an unlinked series (new
            Study Instance UID and Frame of Reference UID, empty patient attributes).
        modality: ``"MR"`` or ``"CT"`` (selects the storage SOP class).
        series_description, series_number: written as given.
        uid_seed: makes every generated UID (and so the bytes) a function of the seed; ``None`` draws fresh UIDs.
        lossy: set when the pixels went through a lossy codec: every slice then carries LossyImageCompression "01"
            with the codec's ratio and method (DICOM PS3.3 C.7.6.1.1.5).

    Every slice records the slice count (ImagesInAcquisition) and its InstanceNumber, so a reader can tell a
    complete series from a truncated one.
    """
    volume = np.asarray(volume)
    affine = np.asarray(affine, dtype=np.float64)
    if volume.ndim != 3 or min(volume.shape) < 1:
        raise DicomSeriesError(f"volume must be 3D [X, Y, Z], got shape {volume.shape}")
    if not np.issubdtype(volume.dtype, np.number) or np.iscomplexobj(volume) or not np.isfinite(volume).all():
        raise DicomSeriesError(f"volume must be finite and real-valued, got dtype {volume.dtype} with NaN/inf or worse")
    if affine.shape != (4, 4) or not np.isfinite(affine).all():
        raise DicomSeriesError(f"affine must be a finite 4x4 matrix, got shape {affine.shape}")
    if modality not in STORAGE_CLASSES:
        raise DicomSeriesError(f"modality must be one of {sorted(STORAGE_CLASSES)}, got {modality!r}")
    unknown = set(identifiers or {}) - set(IDENTIFIER_KEYWORDS)
    if unknown:
        raise DicomSeriesError(f"unknown identifier keyword(s) {sorted(unknown)}; allowed: {IDENTIFIER_KEYWORDS}")
    lps = LPS_FROM_RAS @ affine
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    if (spacing <= 0).any():
        raise DicomSeriesError(f"affine has a zero-length axis: voxel sizes {spacing.tolist()}")
    row_cos, col_cos = lps[:3, 0] / spacing[0], lps[:3, 1] / spacing[1]
    if abs(float(row_cos @ col_cos)) > GEOMETRY_ATOL:
        raise DicomSeriesError("affine: the first two axes are not orthogonal, DICOM rows and columns must be")
    stored, slope, intercept, signed = _pixel_encoding(volume)
    ids = dict(identifiers or {})
    study_uid = ids.pop("StudyInstanceUID", None) or _uid(uid_seed, "study")
    frame_uid = ids.pop("FrameOfReferenceUID", None) or _uid(uid_seed, "frame")
    series_uid = _uid(uid_seed, "series")
    out = Path(directory)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DicomSeriesError(f"output {out} must be an empty or new folder")
    with staged_folder(out) as staging:  # replaces an empty ``out`` only once the series is whole
        for k in range(volume.shape[2]):
            ds = _slice_dataset(volume.shape, k, lps, spacing, row_cos, col_cos, modality, uid_seed)
            for keyword in (
                "PatientName",
                "PatientID",
                "PatientBirthDate",
                "PatientSex",
                "StudyID",
                "StudyDate",
                "StudyTime",
                "AccessionNumber",
                "ReferringPhysicianName",
            ):
                setattr(ds, keyword, ids.get(keyword, ""))
            if "StudyDescription" in ids:
                ds.StudyDescription = ids["StudyDescription"]
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
            ds.SeriesNumber, ds.SeriesDescription = int(series_number), series_description
            if lossy is not None:
                ds.LossyImageCompression = "01"
                ds.LossyImageCompressionRatio = [f"{lossy.ratio:.6g}"]
                ds.LossyImageCompressionMethod = [lossy.method]
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, int(signed)
            ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = f"{slope:.10g}", f"{intercept:.10g}", "US"
            ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()
            ds.save_as(staging / f"slice_{k:04d}.dcm", enforce_file_format=True)
    return [out / f"slice_{k:04d}.dcm" for k in range(volume.shape[2])]


def _slice_dataset(
    shape: tuple[int, int, int],
    k: int,
    lps: np.ndarray,
    spacing: np.ndarray,
    row_cos: np.ndarray,
    col_cos: np.ndarray,
    modality: str,
    uid_seed: str | None,
) -> pydicom.Dataset:
    """Header of slice ``k`` of a ``shape`` ``[X, Y, Z]`` series: SOP identity, instance count and geometry."""
    sop_uid = _uid(uid_seed, "instance", k)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = STORAGE_CLASSES[modality]
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = STORAGE_CLASSES[modality], sop_uid
    ds.Modality = modality
    ds.InstanceNumber, ds.ImagesInAcquisition = k + 1, shape[2]
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.PositionReferenceIndicator = ""
    ds.ImageOrientationPatient = [float(v) for v in np.concatenate([row_cos, col_cos])]
    ds.ImagePositionPatient = [float(v) for v in (lps @ np.array([0.0, 0.0, k, 1.0]))[:3]]
    ds.PixelSpacing = [float(spacing[1]), float(spacing[0])]
    ds.SliceThickness = ds.SpacingBetweenSlices = float(spacing[2])
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = shape[1], shape[0]
    return ds


def identifiers_sidecar(compressed: str | Path) -> Path:
    """Path of the identifiers file kept beside a compressed volume: ``<file>.identifiers.json``."""
    return Path(f"{compressed}.identifiers.json")


def save_identifiers(path: str | Path, identifiers: Mapping[str, str]) -> Path:
    """Write :data:`IDENTIFIER_KEYWORDS` values as JSON (the only place a compressed series keeps them)."""
    unknown = set(identifiers) - set(IDENTIFIER_KEYWORDS)
    if unknown:
        raise DicomSeriesError(f"unknown identifier keyword(s) {sorted(unknown)}; allowed: {IDENTIFIER_KEYWORDS}")
    Path(path).write_text(json.dumps(dict(identifiers), indent=2, sort_keys=True))
    return Path(path)


def load_identifiers(path: str | Path) -> dict[str, str]:
    """Read an identifiers JSON written by :func:`save_identifiers`, checking keywords and value types."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise DicomSeriesError(f"{path}: not a readable identifiers JSON ({err})") from err
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise DicomSeriesError(f"{path}: expected a JSON object of strings")
    unknown = set(data) - set(IDENTIFIER_KEYWORDS)
    if unknown:
        raise DicomSeriesError(f"{path}: unknown identifier keyword(s) {sorted(unknown)}")
    return data


def nifti_to_dicom_series(nifti_path: str | Path, directory: str | Path, **kwargs) -> list[Path]:
    """Write a 3D NIfTI file as a DICOM series (keyword arguments as :func:`write_dicom_series`)."""
    import nibabel as nib

    image = nib.load(str(nifti_path))
    if len(image.shape) != 3:
        raise DicomSeriesError(f"{nifti_path}: expected a 3D NIfTI volume, got shape {image.shape}")
    return write_dicom_series(np.asanyarray(image.dataobj), image.affine, directory, **kwargs)
