"""The ``.mvc`` container of MVCompress3D: header, per-subband entropy streams, CRC-32.

Layout (little-endian; full field table in ``docs/mvc_format.md``)::

    magic b"MVC3" | version u8 | dtype u8 | wavelet u8 | spatial_dims u8 | channel_axis u8 | channels u16
    shape u32 x d | levels u8 x d | affine f64 x 16 | spacing f64 x d | reconstruction_offset f32
    qform_code u8 | sform_code u8 | xyzt_units u8                                          (version 2 only)
    per channel: intensity offset f64 | intensity scale f64 | steps f32 x S | stream bytes u32 x S
    streams (entropy.encode_integers blobs, channel-major, subband_names order) | crc32 u32

``d`` is the number of spatial axes and ``S`` the number of subbands implied by ``levels``; magic, version and
CRC-32 are the frame of ``codecs.framing``. The reader checks the checksum and every field (ranges, sizes, the
sum of the stream lengths) before allocating. Version 1 files (no NIfTI codes) still decode, with the codes of
:data:`DEFAULT_NIFTI_CODES`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from ...data.volume_io import DEFAULT_NIFTI_CODES, NiftiCodes
from ...frequency.wavelet import REVERSIBLE_53, subband_names
from ..errors import CorruptStreamError
from ..framing import FRAME_BYTES, frame, unframe

__all__ = [
    "DTYPES",
    "MAGIC",
    "MAX_CHANNELS",
    "MAX_VOXELS",
    "VERSION",
    "WAVELETS",
    "DEFAULT_NIFTI_CODES",
    "MVCHeader",
    "NiftiCodes",
    "max_levels",
    "pack_mvc",
    "padded_shape",
    "unpack_mvc",
]

MAGIC = b"MVC3"
VERSION = 2
VERSIONS = (1, 2)
WAVELETS = ("haar", "db2", "bior2.2", "bior4.4", REVERSIBLE_53)
"""Wavelet ids 0..4: ``bior2.2`` is the (real-valued) CDF 5/3 pair, ``bior4.4`` the CDF 9/7 pair of JPEG 2000 lossy
coding, ``rev5/3`` the reversible integer LeGall 5/3 lifting of JPEG 2000 lossless coding (steps 1, offset 0)."""
DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64")
MAX_VOXELS = 2**28
MAX_AXIS = 2**16 - 1
MAX_CHANNELS = 64

_FIXED = struct.Struct("<BBBBH")  # dtype, wavelet, spatial_dims, channel_axis, channels
_CODES = struct.Struct("<BBB")  # qform_code, sform_code, xyzt_units


def max_levels(n: int) -> int:
    """Deepest decomposition of an axis of ``n`` samples: the coarsest band keeps at least 2 samples."""
    return max(0, int(np.floor(np.log2(max(n, 1)))) - 1)


def padded_shape(shape: tuple[int, ...], levels: tuple[int, ...]) -> tuple[int, ...]:
    """``shape`` rounded up per axis to a multiple of ``2**level``."""
    return tuple(-(-n // 2**lv) * 2**lv for n, lv in zip(shape, levels, strict=True))


@dataclass
class MVCHeader:
    """Every field needed to decode an ``.mvc`` stream (``steps`` / ``stream_bytes``: one dict per channel)."""

    shape: tuple[int, ...]
    dtype: str
    wavelet: str
    levels: tuple[int, ...]
    channels: int = 1
    channel_axis: bool = False
    affine: np.ndarray = field(default_factory=lambda: np.eye(4))
    spacing: tuple[float, ...] = ()
    reconstruction_offset: float = 0.5
    nifti_codes: NiftiCodes = DEFAULT_NIFTI_CODES
    intensity: list[tuple[float, float]] = field(default_factory=list)
    steps: list[dict[str, float]] = field(default_factory=list)
    stream_bytes: list[dict[str, int]] = field(default_factory=list)
    compressed_bytes: int = 0

    @property
    def spatial_dims(self) -> int:
        return len(self.shape)

    @property
    def original_bytes(self) -> int:
        """Size of the raw array in its stored dtype."""
        return int(np.prod(self.shape)) * self.channels * np.dtype(self.dtype).itemsize

    @property
    def compression_ratio(self) -> float:
        """``original_bytes / compressed_bytes`` (the paper's compression rate)."""
        return self.original_bytes / self.compressed_bytes if self.compressed_bytes else float("nan")

    @property
    def bits_per_voxel(self) -> float:
        return 8.0 * self.compressed_bytes / (int(np.prod(self.shape)) * self.channels)


def pack_mvc(header: MVCHeader, streams: list[list[bytes]]) -> bytes:
    """Serialise ``header`` and the per-channel, per-subband ``streams`` (``subband_names`` order)."""
    d = header.spatial_dims
    names = subband_names(header.levels)
    parts = [
        _FIXED.pack(
            DTYPES.index(header.dtype),
            WAVELETS.index(header.wavelet),
            d,
            int(header.channel_axis),
            header.channels,
        ),
        struct.pack(f"<{d}I", *header.shape),
        struct.pack(f"<{d}B", *header.levels),
        np.asarray(header.affine, dtype="<f8").reshape(16).tobytes(),
        struct.pack(f"<{d}d", *header.spacing),
        struct.pack("<f", header.reconstruction_offset),
        _CODES.pack(*NiftiCodes(*header.nifti_codes).validate()),
    ]
    for c in range(header.channels):
        parts.append(struct.pack("<dd", *header.intensity[c]))
        parts.append(np.asarray([header.steps[c][n] for n in names], dtype="<f4").tobytes())
        parts.append(np.asarray([len(s) for s in streams[c]], dtype="<u4").tobytes())
    return frame(MAGIC, VERSION, *parts, *(stream for channel in streams for stream in channel))


class _Reader:
    def __init__(self, data: memoryview) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str) -> tuple:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise CorruptStreamError(f"mvc header truncated at body byte {self.pos} (needs {size} more)")
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values


def unpack_mvc(blob: bytes) -> tuple[MVCHeader, list[list[bytes]]]:
    """Parse and validate an ``.mvc`` byte string; raises ``CorruptStreamError`` on any problem."""
    version, body = unframe(blob, MAGIC, VERSIONS, "mvc", min_body=_FIXED.size)
    r = _Reader(body)
    dtype_id, wavelet_id, d, channel_axis, channels = r.take(_FIXED.format)
    if dtype_id >= len(DTYPES) or wavelet_id >= len(WAVELETS):
        raise CorruptStreamError(f"mvc dtype id {dtype_id} or wavelet id {wavelet_id} unknown")
    if d not in (2, 3) or channel_axis not in (0, 1) or not 1 <= channels <= MAX_CHANNELS:
        raise CorruptStreamError(f"mvc spatial_dims={d}, channel_axis={channel_axis}, channels={channels} invalid")
    if not channel_axis and channels != 1:
        raise CorruptStreamError(f"mvc declares {channels} channels without a channel axis")
    shape = r.take(f"<{d}I")
    levels = r.take(f"<{d}B")
    if not all(1 <= n <= MAX_AXIS for n in shape) or int(np.prod(shape)) * channels > MAX_VOXELS:
        raise CorruptStreamError(f"mvc shape {shape} x {channels} channels outside the accepted size")
    if any(lv > max_levels(n) for lv, n in zip(levels, shape, strict=True)) or max(levels) < 1:
        raise CorruptStreamError(f"mvc levels {levels} invalid for shape {shape}")
    affine = np.asarray(r.take("<16d"), dtype=np.float64).reshape(4, 4)
    spacing = r.take(f"<{d}d")
    (offset,) = r.take("<f")
    if not np.isfinite(affine).all() or not all(np.isfinite(s) and s > 0 for s in spacing) or not 0 <= offset < 1:
        raise CorruptStreamError("mvc affine, spacing or reconstruction offset invalid")
    codes = DEFAULT_NIFTI_CODES if version == 1 else NiftiCodes(*r.take(_CODES.format))
    try:
        codes.validate()
    except ValueError as err:
        raise CorruptStreamError(f"mvc {err}") from err
    names = subband_names(levels)
    header = MVCHeader(
        shape=tuple(shape),
        dtype=DTYPES[dtype_id],
        wavelet=WAVELETS[wavelet_id],
        levels=tuple(levels),
        channels=channels,
        channel_axis=bool(channel_axis),
        affine=affine,
        spacing=tuple(spacing),
        reconstruction_offset=float(offset),
        nifti_codes=codes,
        compressed_bytes=len(body) + FRAME_BYTES,
    )
    lengths = []
    for _ in range(channels):
        lo, scale = r.take("<dd")
        steps = r.take(f"<{len(names)}f")
        sizes = r.take(f"<{len(names)}I")
        if not (np.isfinite(lo) and np.isfinite(scale) and scale > 0):
            raise CorruptStreamError(f"mvc intensity mapping offset={lo}, scale={scale} invalid")
        if not all(np.isfinite(s) and s > 0 for s in steps):
            raise CorruptStreamError("mvc quantization steps must be finite and positive")
        if header.wavelet == REVERSIBLE_53 and (any(s != 1 for s in steps) or offset != 0 or (lo, scale) != (0, 1)):
            raise CorruptStreamError("mvc lossless (rev5/3) stream must have steps 1, offset 0 and no intensity map")
        header.intensity.append((lo, scale))
        header.steps.append(dict(zip(names, steps, strict=True)))
        header.stream_bytes.append(dict(zip(names, sizes, strict=True)))
        lengths.append(sizes)
    if r.pos + sum(sum(s) for s in lengths) != len(body):
        raise CorruptStreamError(
            f"mvc stream lengths sum to {sum(sum(s) for s in lengths)} bytes, {len(body) - r.pos} remain"
        )
    streams = []
    for sizes in lengths:
        channel = []
        for size in sizes:
            channel.append(bytes(body[r.pos : r.pos + size]))
            r.pos += size
        streams.append(channel)
    return header, streams
