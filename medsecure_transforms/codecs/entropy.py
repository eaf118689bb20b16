"""Self-contained entropy coding of integer arrays (range coding with ``constriction``).

``encode_integers`` turns any integer array into a byte string that carries its own model, one of two. When one
histogram window holds every value the encoder compares their ideal code lengths (histogram entropy plus its
table, Laplace cross-entropy plus two floats) and codes once; otherwise it codes both and keeps the shorter stream:

* ``CATEGORICAL`` -- the empirical histogram of the values over a window ``[lo, hi]`` of at most
  ``MAX_ALPHABET`` symbols (the whole range when it fits), stored zlib-compressed in the header,
  plus one escape symbol; escaped values follow in the same stream under a quantized Laplace model
  fitted to them (or as raw ``int32`` words when the range exceeds ``MAX_LAPLACE_SUPPORT``). On
  many samples this reaches the empirical (zeroth-order) entropy.
* ``LAPLACE`` -- a quantized Laplace distribution (mean, scale) over ``[min, max]``; two floats of
  header, the better choice for short or Laplace-shaped streams whose histogram would cost more
  than it saves. Only offered when ``max - min < MAX_LAPLACE_SUPPORT`` (the fixed-point model
  must give every value of its support a nonzero probability).

Constant arrays (including empty ones) need no payload at all.

Layout (little-endian), see ``docs/mvc_format.md``; magic, version and CRC-32 are the frame of ``codecs.framing``::

    magic b"MSEI" | version u8 | model u8 | count u64 | min i32 | max i32 | model fields | payload | crc32 u32

The CRC-32 covers every byte before it. ``decode_integers`` checks the checksum, every header
field and every size before allocating, and raises ``CorruptStreamError`` otherwise.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

import constriction
import numpy as np

from ..frequency.slabs import row_slabs
from .errors import CorruptStreamError
from .framing import frame, unframe

__all__ = ["MAX_ALPHABET", "MAX_LAPLACE_SUPPORT", "decode_integers", "encode_integers"]

MAGIC = b"MSEI"
VERSION = 1
MAX_ALPHABET = 4096
"""Largest histogram stored in a header (symbols in ``[lo, hi]``, escape symbol excluded)."""
MAX_LAPLACE_SUPPORT = 2**20
"""Widest ``max - min + 1`` range coded with a quantized Laplace model."""

_CONSTANT, _LAPLACE, _CATEGORICAL = 0, 1, 2
_HEAD = struct.Struct("<BQii")  # model, count, min, max (after the frame's magic and version)
_LAPLACE_FIELDS = struct.Struct("<dd")
_CATEGORICAL_FIELDS = struct.Struct("<iiBI")  # lo, hi, escape mode, zlib table bytes
_NO_ESCAPE, _LAPLACE_ESCAPE, _RAW_ESCAPE = 0, 1, 2
_MIN_SCALE = 1e-3
_CHUNK = 1 << 16
"""Symbols per histogram or decoding chunk: bounds the scratch of large streams."""
_MIN_PROBABILITY = 2.0**-24  # about the range coder's finest probability
# constriction is a compiled module: its submodules are attributes, not importable paths
Categorical = constriction.stream.model.Categorical
QuantizedLaplace = constriction.stream.model.QuantizedLaplace
RangeDecoder = constriction.stream.queue.RangeDecoder
RangeEncoder = constriction.stream.queue.RangeEncoder
_INT32 = np.iinfo(np.int32)


def encode_integers(values: np.ndarray) -> bytes:
    """Entropy-code an integer array of any shape (flattened in C order) into a self-contained blob.

    Args:
        values: integer array (any shape); every value must fit in ``int32``.

    Returns:
        bytes decodable by :func:`decode_integers` into the flattened ``int32`` values.

    Raises:
        TypeError: ``values`` is not an integer array.
        ValueError: a value lies outside the ``int32`` range.
    """
    array = np.asarray(values)
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"encode_integers expects an integer array, got dtype {array.dtype}")
    flat = array.reshape(-1)
    if flat.size and (flat.min() < _INT32.min or flat.max() > _INT32.max):
        raise ValueError(
            f"encode_integers: values span [{flat.min()}, {flat.max()}], outside int32 [{_INT32.min}, {_INT32.max}]"
        )
    flat = flat.astype(np.int32, copy=False)
    vmin, vmax = (int(flat.min()), int(flat.max())) if flat.size else (0, 0)
    if vmin == vmax:
        return frame(MAGIC, VERSION, _HEAD.pack(_CONSTANT, flat.size, vmin, vmax))
    if not _laplace_fits(vmin, vmax):
        return _encode_categorical(flat, vmin, vmax)
    if vmax - vmin + 1 <= MAX_ALPHABET:  # one histogram holds every value: pick the model by ideal code length
        symbols = np.subtract(flat, vmin, dtype=np.int32)
        counts = _histogram(symbols, vmax - vmin + 1)
        laplace = _laplace_fit_counts(counts, vmin)
        if _laplace_bits(counts, vmin, *laplace) < _categorical_bits(counts):
            del symbols
            return _encode_laplace(flat, vmin, vmax, laplace)
        return _categorical_stream(symbols, counts, flat.size, vmin, vmax, vmin, flat[:0])
    # wide range (escapes): code both and keep the shorter
    return min(_encode_categorical(flat, vmin, vmax), _encode_laplace(flat, vmin, vmax, _laplace_fit(flat)), key=len)


def decode_integers(blob: bytes, max_count: int, out: np.ndarray | None = None) -> np.ndarray:
    """Decode a blob written by :func:`encode_integers` into a 1-D ``int32`` array (or into ``out``).

    Args:
        blob: the byte string.
        max_count: the largest number of values the caller accepts; larger declared counts are
            refused before anything is allocated.
        out: optional ``int32`` destination of any shape and strides (e.g. a view into a larger buffer) that receives
            the values in C order; the stream must then hold exactly ``out.size`` values. Returned.

    Raises:
        CorruptStreamError: bad magic, version, model, checksum, header field or size, or a payload
            that does not decode to the declared histogram.
    """
    _, body = unframe(blob, MAGIC, (VERSION,), "entropy", min_body=_HEAD.size)
    model, count, vmin, vmax = _HEAD.unpack_from(body, 0)
    if count > max_count:
        raise CorruptStreamError(f"entropy stream declares {count} values, more than max_count={max_count}")
    if vmin > vmax:
        raise CorruptStreamError(f"entropy stream range min={vmin} > max={vmax}")
    if out is not None and out.dtype != np.int32:
        raise TypeError(f"decode_integers: out must be an int32 array, got {out.dtype}")
    if out is not None and out.size != count:
        raise CorruptStreamError(f"entropy stream declares {count} values, the destination holds {out.size}")
    rest = body[_HEAD.size :]
    if model == _CONSTANT:
        if rest or vmin != vmax:
            raise CorruptStreamError("constant entropy stream carries a payload or a non-degenerate range")
        dest = np.empty(count, dtype=np.int32) if out is None else out
        dest[...] = vmin
        return dest
    if vmin == vmax:
        raise CorruptStreamError(f"model {model} declared for a constant range [{vmin}, {vmax}]")
    if model not in (_LAPLACE, _CATEGORICAL):
        raise CorruptStreamError(f"unknown entropy model id {model}")
    dest = np.empty(count, dtype=np.int32) if out is None else out
    if model == _LAPLACE:
        return _decode_laplace(rest, dest, vmin, vmax)
    return _decode_categorical(rest, dest, vmin, vmax)


def _laplace_fit(values: np.ndarray) -> tuple[float, float]:
    """Maximum-likelihood Laplace parameters: median and mean absolute deviation (floored)."""
    mean = float(np.median(values))
    deviation = np.subtract(values, mean, dtype=np.float32)  # float32 scratch: large subbands stay cheap
    return mean, max(float(np.abs(deviation, out=deviation).mean(dtype=np.float64)), _MIN_SCALE)


def _laplace_fit_counts(counts: np.ndarray, vmin: int) -> tuple[float, float]:
    """:func:`_laplace_fit` of the values whose histogram over ``vmin, vmin + 1, ...`` is ``counts``."""
    n = int(counts.sum())
    cumulative = np.cumsum(counts)
    lower, upper = np.searchsorted(cumulative, [(n + 1) // 2, n // 2 + 1])  # the middle one or two order statistics
    median = vmin + (float(lower) + float(upper)) / 2
    values = vmin + np.arange(counts.size, dtype=np.float64)
    return median, max(float((counts * np.abs(values - median)).sum()) / n, _MIN_SCALE)


def _laplace_bits(counts: np.ndarray, vmin: int, mean: float, scale: float) -> float:
    """Ideal code length in bits (payload + parameters) of the histogram ``counts`` under the quantized Laplace."""
    values = vmin + np.arange(counts.size, dtype=np.float64)

    def cdf(x: np.ndarray) -> np.ndarray:
        tail = 0.5 * np.exp(-np.abs(x - mean) / scale)
        return np.where(x < mean, tail, 1.0 - tail)

    p = cdf(values + 0.5) - cdf(values - 0.5)
    p[0] += cdf(values[:1] - 0.5)[0]  # the range's ends absorb the tails
    p[-1] += 1.0 - cdf(values[-1:] + 0.5)[0]
    used = counts > 0
    return float(-(counts[used] * np.log2(np.maximum(p[used], _MIN_PROBABILITY))).sum()) + 8 * _LAPLACE_FIELDS.size


def _categorical_bits(counts: np.ndarray) -> float:
    """Ideal code length in bits (payload + fields + compressed table) of ``counts`` under its own histogram."""
    used = counts[counts > 0].astype(np.float64)
    table = zlib.compress(counts.astype("<u4").tobytes(), 9)
    return float((used * np.log2(used.sum() / used)).sum()) + 8 * (_CATEGORICAL_FIELDS.size + len(table))


def _laplace_fits(vmin: int, vmax: int) -> bool:
    return vmax - vmin + 1 <= MAX_LAPLACE_SUPPORT


def _words_le(encoder: RangeEncoder) -> np.ndarray:
    """The encoder's compressed words as little-endian ``uint32`` (framed without an intermediate ``bytes``)."""
    return encoder.get_compressed().astype("<u4", copy=False)


def _words(payload: bytes) -> np.ndarray:
    if len(payload) % 4:
        raise CorruptStreamError(f"entropy payload of {len(payload)} bytes is not a whole number of 32-bit words")
    return np.frombuffer(payload, dtype="<u4").astype(np.uint32)


def _encode_laplace(flat: np.ndarray, vmin: int, vmax: int, params: tuple[float, float]) -> bytes:
    mean, scale = params
    encoder = RangeEncoder()
    encoder.encode(flat, QuantizedLaplace(vmin, vmax, mean, scale))
    head = _HEAD.pack(_LAPLACE, flat.size, vmin, vmax) + _LAPLACE_FIELDS.pack(mean, scale)
    return frame(MAGIC, VERSION, head, _words_le(encoder))


def _decode_laplace(rest: bytes, dest: np.ndarray, vmin: int, vmax: int) -> np.ndarray:
    if not _laplace_fits(vmin, vmax):
        raise CorruptStreamError(f"laplace model declared for range [{vmin}, {vmax}] wider than {MAX_LAPLACE_SUPPORT}")
    if len(rest) < _LAPLACE_FIELDS.size:
        raise CorruptStreamError("laplace entropy stream truncated before its parameters")
    mean, scale = _LAPLACE_FIELDS.unpack_from(rest, 0)
    if not (np.isfinite(mean) and np.isfinite(scale) and scale >= _MIN_SCALE):
        raise CorruptStreamError(f"laplace parameters invalid: mean={mean}, scale={scale}")
    words = _words(rest[_LAPLACE_FIELDS.size :])
    return _decode_with(_decoder(words), QuantizedLaplace(vmin, vmax, mean, scale), dest)


def _window(flat: np.ndarray, vmin: int, vmax: int) -> tuple[int, int]:
    """The histogram window: the whole range, or ``MAX_ALPHABET`` symbols around the median."""
    if vmax - vmin + 1 <= MAX_ALPHABET:
        return vmin, vmax
    lo = min(max(int(np.median(flat)) - MAX_ALPHABET // 2, vmin), vmax - MAX_ALPHABET + 1)
    return lo, lo + MAX_ALPHABET - 1


def _encode_categorical(flat: np.ndarray, vmin: int, vmax: int) -> bytes:
    lo, hi = _window(flat, vmin, vmax)
    outside = (flat < lo) | (flat > hi)
    escaped = flat[outside]
    symbols = np.subtract(flat, lo, dtype=np.int32)  # exact inside the window; the rest becomes the escape symbol
    symbols[outside] = hi - lo + 1
    del outside
    counts = _histogram(symbols, hi - lo + 1 + int(escaped.size > 0))
    return _categorical_stream(symbols, counts, flat.size, vmin, vmax, lo, escaped)


def _categorical_stream(
    symbols: np.ndarray, counts: np.ndarray, count: int, vmin: int, vmax: int, lo: int, escaped: np.ndarray
) -> bytes:
    """The categorical stream of window symbols (``value - lo``, the last symbol escaping ``escaped``)."""
    has_escape = escaped.size > 0
    escape_mode = _NO_ESCAPE if not has_escape else _LAPLACE_ESCAPE if _laplace_fits(vmin, vmax) else _RAW_ESCAPE
    hi = lo + counts.size - 1 - int(has_escape)
    counts = counts.astype("<u4")
    table = zlib.compress(counts.tobytes(), 9)
    encoder = RangeEncoder()
    encoder.encode(symbols, Categorical(counts.astype(np.float64), perfect=False))
    head = _HEAD.pack(_CATEGORICAL, count, vmin, vmax)
    head += _CATEGORICAL_FIELDS.pack(lo, hi, escape_mode, len(table)) + table
    if escape_mode == _LAPLACE_ESCAPE:
        mean, scale = _laplace_fit(escaped)
        head += _LAPLACE_FIELDS.pack(mean, scale)
        encoder.encode(escaped, QuantizedLaplace(vmin, vmax, mean, scale))
    elif escape_mode == _RAW_ESCAPE:
        head += escaped.astype("<i4").tobytes()
    return frame(MAGIC, VERSION, head, _words_le(encoder))


def _decode_categorical(rest: bytes, dest: np.ndarray, vmin: int, vmax: int) -> np.ndarray:
    count = dest.size
    if len(rest) < _CATEGORICAL_FIELDS.size:
        raise CorruptStreamError("categorical entropy stream truncated before its fields")
    lo, hi, escape_mode, table_bytes = _CATEGORICAL_FIELDS.unpack_from(rest, 0)
    allowed_modes = (_NO_ESCAPE, _LAPLACE_ESCAPE if _laplace_fits(vmin, vmax) else _RAW_ESCAPE)
    if not (vmin <= lo <= hi <= vmax) or hi - lo + 1 > MAX_ALPHABET or escape_mode not in allowed_modes:
        raise CorruptStreamError(
            f"categorical window [{lo}, {hi}] (escape mode {escape_mode}) invalid for range [{vmin}, {vmax}]"
        )
    has_escape = int(escape_mode != _NO_ESCAPE)
    n_symbols = hi - lo + 1 + has_escape
    offset = _CATEGORICAL_FIELDS.size
    if len(rest) < offset + table_bytes:
        raise CorruptStreamError("categorical entropy stream truncated inside its histogram")
    counts = _inflate_table(rest[offset : offset + table_bytes], n_symbols)
    offset += table_bytes
    if int(counts.sum(dtype=np.uint64)) != count:
        raise CorruptStreamError(f"histogram sums to {int(counts.sum(dtype=np.uint64))}, header declares {count}")
    if has_escape and counts[-1] == 0:
        raise CorruptStreamError("escape symbol declared but never used")
    n_escaped = int(counts[-1]) if has_escape else 0
    esc_model = raw_escaped = None
    if escape_mode == _LAPLACE_ESCAPE:
        if len(rest) < offset + _LAPLACE_FIELDS.size:
            raise CorruptStreamError("categorical entropy stream truncated before its escape parameters")
        mean, scale = _LAPLACE_FIELDS.unpack_from(rest, offset)
        if not (np.isfinite(mean) and np.isfinite(scale) and scale >= _MIN_SCALE):
            raise CorruptStreamError(f"escape laplace parameters invalid: mean={mean}, scale={scale}")
        esc_model = QuantizedLaplace(vmin, vmax, mean, scale)
        offset += _LAPLACE_FIELDS.size
    elif escape_mode == _RAW_ESCAPE:
        if len(rest) < offset + 4 * n_escaped:
            raise CorruptStreamError("categorical entropy stream truncated inside its raw escaped values")
        raw_escaped = np.frombuffer(rest, dtype="<i4", count=n_escaped, offset=offset).astype(np.int32)
        if raw_escaped.size and (raw_escaped.min() < vmin or raw_escaped.max() > vmax):
            raise CorruptStreamError(f"raw escaped values leave the declared range [{vmin}, {vmax}]")
        offset += 4 * n_escaped
    decoder = _decoder(_words(rest[offset:]))
    symbols = _decode_with(decoder, Categorical(counts.astype(np.float64), perfect=False), dest)
    if not np.array_equal(_histogram(symbols, n_symbols), counts):
        raise CorruptStreamError("decoded symbols do not match the stored histogram")
    escaped_at = symbols == n_symbols - 1 if has_escape else None
    values = symbols  # shifted in place: the symbols are not needed any more
    values += np.int32(lo)
    if has_escape:
        escaped = np.empty(n_escaped, dtype=np.int32)
        values[escaped_at] = raw_escaped if esc_model is None else _decode_with(decoder, esc_model, escaped)
    return values


def _row_chunks(array: np.ndarray) -> Iterator[np.ndarray]:
    """Views of consecutive rows (first axis) of ``array``, about ``_CHUNK`` elements each: C order, no copies."""
    rows = np.atleast_1d(array)
    for part in row_slabs(rows.shape, _CHUNK):
        yield rows[part]


def _histogram(symbols: np.ndarray, n_symbols: int) -> np.ndarray:
    """``np.bincount`` of ``symbols`` (all in ``0..n_symbols-1``) in chunks: bincount widens its input to int64."""
    counts = np.zeros(n_symbols, dtype=np.int64)
    for part in _row_chunks(symbols):
        counts += np.bincount(part.reshape(-1), minlength=n_symbols)
    return counts


def _inflate_table(data: bytes, n_symbols: int) -> np.ndarray:
    """Decompress the histogram, refusing anything but exactly ``n_symbols`` uint32 counts."""
    expected = 4 * n_symbols
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(data, expected)
    except zlib.error as err:
        raise CorruptStreamError(f"histogram table does not inflate: {err}") from err
    if len(raw) != expected or not inflater.eof or inflater.unconsumed_tail or inflater.unused_data:
        raise CorruptStreamError(f"histogram table is not exactly {n_symbols} uint32 counts")
    return np.frombuffer(raw, dtype="<u4").astype(np.uint32)


def _decoder(words: np.ndarray) -> RangeDecoder:
    try:
        return RangeDecoder(words)
    except Exception as err:  # constriction signals bad words with several exception types
        raise CorruptStreamError(f"range-coded payload rejected: {err}") from err


def _decode_with(decoder: RangeDecoder, model, dest: np.ndarray) -> np.ndarray:
    """Fill the ``int32`` array ``dest`` (C order, any strides) with symbols of ``model``, a chunk at a time."""
    try:
        for part in _row_chunks(dest):
            part[...] = np.asarray(decoder.decode(model, part.size)).reshape(part.shape)
    except Exception as err:
        raise CorruptStreamError(f"range-coded payload does not decode: {err}") from err
    return dest
