"""The file format of the learned OCT codec: a small header plus one entropy-coded symbol stream.

Layout (little-endian)::

    magic b"MOCT" | version u8 | levels u8 | C0 C1 C2 C3 u16 | height width u16 | padded_height padded_width u16
    | model_id u32 | payload_bytes u32 | payload (codecs.entropy stream) | crc32 u32

``height x width`` is the image size, ``padded_*`` the network input size (multiples of 32);
``model_id`` fingerprints the weights that wrote the stream (a stream from another model or ratio
is refused); the payload holds the quantized maps ``q0, q1, q2, q3`` (absent ones skipped) flattened
in C order and concatenated, as integers in ``[-(L-1)/2, (L-1)/2]``. The CRC-32 covers every byte before it;
magic, version and CRC-32 are the frame of ``codecs.framing``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from ...networks.oct_compression import DOWNSAMPLING, SKIP_STRIDES
from ..entropy import decode_integers, encode_integers
from ..errors import CorruptStreamError
from ..framing import frame, unframe

__all__ = ["MAGIC", "VERSION", "StreamHeader", "pack_stream", "unpack_stream"]

MAGIC = b"MOCT"
VERSION = 1
_HEAD = struct.Struct("<B4H4HII")  # levels, C0..C3, height, width, padded sides, model_id, payload bytes
_STRIDES = (DOWNSAMPLING, *SKIP_STRIDES)


@dataclass(frozen=True)
class StreamHeader:
    """Everything needed to decode a stream besides the network weights."""

    levels: int
    latent_channels: tuple[int, int, int, int]
    image_shape: tuple[int, int]
    padded_shape: tuple[int, int]
    model_id: int

    @property
    def symbol_count(self) -> int:
        """Number of quantized values: ``sum_i C_i * (H / s_i) * (W / s_i)``."""
        h, w = self.padded_shape
        return sum(c * (h // s) * (w // s) for c, s in zip(self.latent_channels, _STRIDES, strict=True))

    def validate(self) -> None:
        """Raise ``CorruptStreamError`` on inconsistent fields."""
        (h, w), (ph, pw) = self.image_shape, self.padded_shape
        if self.levels < 3 or self.levels % 2 == 0:
            raise CorruptStreamError(f"quantizer levels {self.levels} must be odd and >= 3")
        if self.latent_channels[0] < 1:
            raise CorruptStreamError("bottleneck channel count C0 is 0")
        if min(h, w) < 1 or ph % DOWNSAMPLING or pw % DOWNSAMPLING:
            raise CorruptStreamError(f"image {h}x{w} / padded {ph}x{pw}: padded sides must be multiples of 32")
        if not (h <= ph < h + DOWNSAMPLING and w <= pw < w + DOWNSAMPLING):
            raise CorruptStreamError(f"padded size {ph}x{pw} is not the 32-multiple padding of {h}x{w}")


def pack_stream(header: StreamHeader, maps: list[np.ndarray]) -> bytes:
    """Entropy-code the quantized ``maps`` (integer arrays) behind ``header``."""
    header.validate()
    symbols = np.concatenate([np.asarray(m).reshape(-1) for m in maps]).astype(np.int32)
    if symbols.size != header.symbol_count:
        raise ValueError(f"maps hold {symbols.size} values, the header declares {header.symbol_count}")
    payload = encode_integers(symbols)
    head = _HEAD.pack(
        header.levels,
        *header.latent_channels,
        *header.image_shape,
        *header.padded_shape,
        header.model_id,
        len(payload),
    )
    return frame(MAGIC, VERSION, head, payload)


def unpack_stream(blob: bytes) -> tuple[StreamHeader, np.ndarray]:
    """Read a stream: the header and the flat ``int32`` symbols, validated before decoding.

    Raises:
        CorruptStreamError: short stream, checksum, magic, version, header fields, payload size, or
            symbols outside the quantizer range.
    """
    _, body = unframe(blob, MAGIC, (VERSION,), "OCT", min_body=_HEAD.size)
    levels, c0, c1, c2, c3, h, w, ph, pw, model_id, size = _HEAD.unpack_from(body, 0)
    header = StreamHeader(levels, (c0, c1, c2, c3), (h, w), (ph, pw), model_id)
    header.validate()
    if size != len(body) - _HEAD.size:
        raise CorruptStreamError(f"payload declared {size} bytes, stream holds {len(body) - _HEAD.size}")
    symbols = decode_integers(body[_HEAD.size :], max_count=header.symbol_count)
    if symbols.size != header.symbol_count:
        raise CorruptStreamError(f"payload decodes to {symbols.size} values, header needs {header.symbol_count}")
    half = (levels - 1) // 2
    if symbols.size and (symbols.min() < -half or symbols.max() > half):
        raise CorruptStreamError(f"symbols span [{symbols.min()}, {symbols.max()}], outside [-{half}, {half}]")
    return header, symbols
