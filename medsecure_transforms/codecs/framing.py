"""The frame shared by every container of the codecs: ``magic | version | body | crc32``.

Layout (little-endian)::

    magic 4 bytes | version u8 | body (container-specific header fields and payload) | crc32 u32

The CRC-32 covers every byte before it. Used by the entropy blobs (``b"MSEI"``), the ``.mvc`` files
(``b"MVC3"``) and the OCT codec streams (``b"MOCT"``); each container parses its own body.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Collection

from .errors import CorruptStreamError

__all__ = ["FRAME_BYTES", "MAGIC_BYTES", "frame", "unframe"]

MAGIC_BYTES = 4
_VERSION = struct.Struct("<B")
_CRC = struct.Struct("<I")
FRAME_BYTES = MAGIC_BYTES + _VERSION.size + _CRC.size
"""Bytes the frame adds around a body (9)."""


def frame(magic: bytes, version: int, *parts: bytes | memoryview) -> bytes:
    """``magic | version u8 | parts... | crc32 u32``: the body is the concatenation of ``parts``.

    Args:
        magic: the container's 4-byte signature.
        version: format version, ``0..255``.
        parts: the body in pieces (any C-contiguous buffer: bytes, memoryview, little-endian numpy array),
            joined without an intermediate copy.

    Raises:
        ValueError: ``magic`` is not 4 bytes or ``version`` does not fit in a byte.
    """
    if len(magic) != MAGIC_BYTES:
        raise ValueError(f"magic must be {MAGIC_BYTES} bytes, got {magic!r}")
    if not 0 <= version <= 255:
        raise ValueError(f"version must lie in 0..255, got {version}")
    head = bytes(magic) + _VERSION.pack(version)
    crc = zlib.crc32(head)
    for part in parts:
        crc = zlib.crc32(part, crc)
    return b"".join([head, *parts, _CRC.pack(crc)])


def unframe(
    blob: bytes | bytearray | memoryview, magic: bytes, versions: Collection[int], what: str, min_body: int = 0
) -> tuple[int, memoryview]:
    """Check a frame written by :func:`frame` and return ``(version, body)`` (a view, no copy).

    Checks in order: length (at least ``FRAME_BYTES + min_body``), magic, version, CRC-32.

    Args:
        blob: the framed byte string.
        magic: the expected 4-byte signature.
        versions: the versions this reader accepts.
        what: the container's name in error messages (e.g. ``"mvc"``).
        min_body: the smallest valid body (the container's fixed header), in bytes.

    Raises:
        CorruptStreamError: too short, wrong magic, unsupported version or checksum mismatch.
    """
    view = memoryview(blob).cast("B")
    if len(view) < FRAME_BYTES + min_body:
        raise CorruptStreamError(
            f"{what} stream of {len(view)} bytes is shorter than its {FRAME_BYTES + min_body}-byte frame and header"
        )
    found = bytes(view[:MAGIC_BYTES])
    if found != magic:
        raise CorruptStreamError(f"not a {what} stream: magic {found!r} != {magic!r}")
    (version,) = _VERSION.unpack_from(view, MAGIC_BYTES)
    if version not in versions:
        raise CorruptStreamError(f"unsupported {what} stream version {version} (this reader knows {sorted(versions)})")
    (crc,) = _CRC.unpack_from(view, len(view) - _CRC.size)
    if zlib.crc32(view[: -_CRC.size]) != crc:
        raise CorruptStreamError(f"{what} stream checksum mismatch (CRC-32): the data is damaged or truncated")
    return version, view[MAGIC_BYTES + _VERSION.size : -_CRC.size]
