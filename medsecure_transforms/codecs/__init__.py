"""Codecs: the shared entropy layer and the MVCompress3D wavelet codec."""

from .entropy import MAX_ALPHABET, decode_integers, encode_integers
from .errors import CorruptStreamError

__all__ = ["MAX_ALPHABET", "CorruptStreamError", "decode_integers", "encode_integers"]
