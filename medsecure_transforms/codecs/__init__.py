"""Codecs: the shared entropy layer, framing, rate control and baselines; the ``mvc`` and ``oct`` codecs."""

from .entropy import MAX_ALPHABET, decode_integers, encode_integers
from .errors import CorruptStreamError

__all__ = ["MAX_ALPHABET", "CorruptStreamError", "decode_integers", "encode_integers"]
