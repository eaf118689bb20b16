"""The shared container frame (``codecs.framing``): layout, and every damage refused with CorruptStreamError."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from medsecure_transforms.codecs import CorruptStreamError
from medsecure_transforms.codecs.framing import FRAME_BYTES, frame, unframe

MAGIC = b"TST1"
BODY = b"header fields" + bytes(range(40))
BLOB = frame(MAGIC, 3, BODY[:13], BODY[13:])


def test_layout_is_magic_version_body_crc():
    head = MAGIC + b"\x03" + BODY
    assert BLOB == head + struct.pack("<I", zlib.crc32(head))
    assert len(BLOB) == len(BODY) + FRAME_BYTES


def test_round_trip_returns_version_and_body_view():
    version, body = unframe(bytearray(BLOB), MAGIC, (1, 3), "test")
    assert version == 3
    assert isinstance(body, memoryview)
    assert body == BODY


def test_numpy_parts_are_framed_as_their_bytes():
    words = np.arange(5, dtype="<u4")
    assert frame(MAGIC, 1, b"ab", words) == frame(MAGIC, 1, b"ab" + words.tobytes())


@pytest.mark.parametrize("keep", [0, 4, FRAME_BYTES - 1])
def test_truncated(keep):
    with pytest.raises(CorruptStreamError, match="shorter"):
        unframe(BLOB[:keep], MAGIC, (3,), "test")


def test_shorter_than_the_declared_header():
    with pytest.raises(CorruptStreamError, match="shorter"):
        unframe(BLOB, MAGIC, (3,), "test", min_body=len(BODY) + 1)
    assert unframe(BLOB, MAGIC, (3,), "test", min_body=len(BODY))[1] == BODY


def test_bad_magic():
    with pytest.raises(CorruptStreamError, match="not a test stream: magic"):
        unframe(b"XXXX" + BLOB[4:], MAGIC, (3,), "test")


def test_bad_version():
    with pytest.raises(CorruptStreamError, match="version 3"):
        unframe(BLOB, MAGIC, (1, 2), "test")


@pytest.mark.parametrize("position", [5, 10, len(BLOB) - 5, len(BLOB) - 1])
def test_flipped_byte(position):
    damaged = bytearray(BLOB)
    damaged[position] ^= 0x01
    with pytest.raises(CorruptStreamError, match="checksum"):
        unframe(bytes(damaged), MAGIC, (3,), "test")


def test_cut_tail_is_refused():
    with pytest.raises(CorruptStreamError, match="checksum"):
        unframe(BLOB[:-1], MAGIC, (3,), "test")


@pytest.mark.parametrize(("magic", "version"), [(b"ABC", 1), (MAGIC, 256), (MAGIC, -1)])
def test_writer_refuses_bad_magic_or_version(magic, version):
    with pytest.raises(ValueError):
        frame(magic, version, BODY)
