"""Standard-codec baselines: OpenJPEG (JPEG 2000) per slice and lossless zstd for volumes (the MVCompress3D
study), JPEG (Pillow) and JPEG 2000 for 2-D 8-bit images within a byte budget (the learned OCT codec study).

OpenJPEG (via ``imagecodecs``) has no JP3D volumetric mode: a volume ``[X, Y, Z]`` is one JPEG 2000
codestream whose ``Z`` components are the slices, coded independently with the 2-D CDF 9/7 wavelet and
EBCOT; rate is set through the single quality layer's PSNR target (``level``, dB), searched to hit a
compression ratio (:func:`openjpeg_to_ratio`) or the largest stream within a byte budget (:func:`openjpeg_to_size`).
"""

from __future__ import annotations

import io

import imagecodecs
import numpy as np
import zstandard
from PIL import Image

from .rate_control import largest_within, match_ratio

__all__ = [
    "jpeg_decode",
    "jpeg_encode",
    "jpeg_to_size",
    "openjpeg_decode",
    "openjpeg_encode",
    "openjpeg_round_trip",
    "openjpeg_to_ratio",
    "openjpeg_to_size",
    "zstd_decode",
    "zstd_encode",
]

_OPENJPEG_DTYPES = ("uint8", "int8", "uint16", "int16")
_FLOAT_MAP_BYTES = 16
"""Side information of a float volume coded through uint16: offset and scale as two float64."""


def openjpeg_encode(volume: np.ndarray, psnr_db: float, codestream: bool = False) -> bytes:
    """Lossy JPEG 2000 of ``volume [X, Y]`` or ``[X, Y, Z]`` (slices as components) at a PSNR target in dB.

    The default is a JP2 file; ``codestream`` writes the bare J2K codestream (no JP2 boxes, about 85 bytes less).
    """
    volume = np.ascontiguousarray(volume)
    if volume.ndim not in (2, 3) or volume.dtype.name not in _OPENJPEG_DTYPES:
        raise ValueError(f"openjpeg baseline takes 2-D/3-D {_OPENJPEG_DTYPES}, not {volume.shape} {volume.dtype}")
    container = {"codecformat": "j2k"} if codestream else {}
    return imagecodecs.jpeg2k_encode(volume, level=float(psnr_db), mct=False, reversible=False, **container)


def openjpeg_decode(blob: bytes) -> np.ndarray:
    return imagecodecs.jpeg2k_decode(blob)


def openjpeg_to_ratio(volume: np.ndarray, target_ratio: float, rel_tol: float = 0.03) -> tuple[float, bytes]:
    """``(psnr_db, stream)`` whose compression ratio is ``target_ratio`` (PSNR searched in [20, 140] dB)."""
    return match_ratio(
        lambda db: openjpeg_encode(volume, db),
        volume.nbytes,
        target_ratio,
        bounds=(20.0, 140.0),
        ratio_increases=False,
        start=75.0,
        rel_tol=rel_tol,
    )


def openjpeg_round_trip(volume: np.ndarray, target_ratio: float) -> tuple[np.ndarray, int]:
    """Decoded ``volume`` and coded size in bytes of OpenJPEG at ``target_ratio`` of the volume's raw bytes.

    Integer volumes go straight to :func:`openjpeg_to_ratio`. Floating volumes (OpenJPEG codes integers only) are
    mapped linearly from ``[min, max]`` onto ``[0, 65535]``, coded, and mapped back; the 16 bytes of offset and
    scale count in the size, and the ratio stays relative to the floating volume's bytes.
    """
    if volume.dtype.kind != "f":
        _, blob = openjpeg_to_ratio(volume, target_ratio)
        return openjpeg_decode(blob), len(blob)
    if not np.isfinite(volume).all():
        raise ValueError("openjpeg baseline: volume contains NaN or infinite values")
    lo, hi = float(volume.min()), float(volume.max())
    scale = (hi - lo) / 65535.0 if hi > lo else 1.0
    mapped = np.rint((volume - lo) / scale).astype(np.uint16)
    _, blob = openjpeg_to_ratio(mapped, target_ratio * mapped.nbytes / volume.nbytes)
    decoded = (lo + scale * openjpeg_decode(blob).astype(np.float64)).astype(volume.dtype)
    return decoded, len(blob) + _FLOAT_MAP_BYTES


def openjpeg_to_size(image: np.ndarray, max_bytes: int) -> tuple[float, bytes]:
    """``(psnr_db, codestream)``: the J2K codestream of a 2-D ``uint8`` image closest to, not above, ``max_bytes``.

    The PSNR target is bisected in [5, 90] dB (14 halvings, :func:`largest_within`); 5 dB when nothing fits.
    """
    return largest_within(lambda db: openjpeg_encode(image, db, codestream=True), max_bytes, (5.0, 90.0))


def jpeg_encode(image: np.ndarray, quality: int) -> bytes:
    """Baseline JPEG (Pillow, optimised Huffman tables) of a 2-D ``uint8`` image at ``quality`` (1..95)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=int(quality), optimize=True)
    return buf.getvalue()


def jpeg_decode(blob: bytes) -> np.ndarray:
    """The ``uint8`` image of a JPEG file."""
    return np.asarray(Image.open(io.BytesIO(blob)))


def jpeg_to_size(image: np.ndarray, max_bytes: int) -> tuple[int, bytes]:
    """``(quality, file)``: the highest JPEG quality in 1..95 whose file is not above ``max_bytes`` (1 when none is)."""
    quality, blob = largest_within(lambda q: jpeg_encode(image, q), max_bytes, (1, 95), integer=True)
    return int(quality), blob


def zstd_encode(volume: np.ndarray, level: int = 19) -> bytes:
    """Lossless zstd of the raw array bytes (the lossless reference ratio)."""
    return zstandard.ZstdCompressor(level=level).compress(np.ascontiguousarray(volume).tobytes())


def zstd_decode(blob: bytes, shape: tuple[int, ...], dtype: str, max_bytes: int = 2**31) -> np.ndarray:
    """Inverse of :func:`zstd_encode` given the array's shape and dtype (refuses outputs over ``max_bytes``)."""
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if size > max_bytes:
        raise ValueError(f"zstd output of {size} bytes exceeds max_bytes={max_bytes}")
    try:
        raw = zstandard.ZstdDecompressor().decompress(blob, max_output_size=size)
    except zstandard.ZstdError as err:
        raise ValueError(f"zstd stream does not decode to {size} bytes ({shape} {dtype}): {err}") from err
    if len(raw) != size:
        raise ValueError(f"zstd stream holds {len(raw)} bytes, expected {size} for {shape} {dtype}")
    return np.frombuffer(raw, dtype=dtype).reshape(shape)
