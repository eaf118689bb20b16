"""Rate control shared by the codecs and their baselines: find the codec parameter that gives a target ratio
(:func:`match_ratio`) or the best stream within a byte budget (:func:`largest_within`)."""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = ["largest_within", "match_ratio"]


def match_ratio(
    encode: Callable[[float], bytes],
    original_bytes: int,
    target_ratio: float,
    bounds: tuple[float, float],
    ratio_increases: bool = True,
    start: float | None = None,
    rel_tol: float = 0.03,
    max_iter: int = 20,
) -> tuple[float, bytes]:
    """Search a scalar codec parameter until ``original_bytes / len(encode(p))`` is ``target_ratio``.

    Regula falsi (Illinois variant) on ``log(ratio)`` inside ``bounds``, which must bracket the
    target for an exact match; otherwise the closest stream found is returned.

    Args:
        encode: parameter -> compressed bytes.
        original_bytes: size of the uncompressed data.
        target_ratio: wanted compression ratio (> 0).
        bounds: ``(low, high)`` parameter range.
        ratio_increases: whether the ratio grows with the parameter (a step scale: yes; a PSNR target: no).
        start: first parameter tried (default the middle of ``bounds``).
        rel_tol: accepted relative ratio error.

    Returns:
        ``(parameter, stream)`` of the best match.
    """
    if not target_ratio > 0:
        raise ValueError(f"target_ratio must be positive, got {target_ratio}")
    sign = 1.0 if ratio_increases else -1.0

    def error(p: float) -> tuple[float, bytes]:
        blob = encode(p)
        return sign * (math.log(original_bytes / len(blob)) - math.log(target_ratio)), blob

    best: tuple[float, float, bytes] | None = None

    def keep(p: float, e: float, blob: bytes) -> None:
        nonlocal best
        if best is None or abs(e) < abs(best[1]):
            best = (p, e, blob)

    lo, hi = bounds
    p0 = (lo + hi) / 2 if start is None else start
    e0, b0 = error(p0)
    keep(p0, e0, b0)
    if abs(e0) <= math.log1p(rel_tol):
        return p0, b0
    # bracket: [a, b] with error(a) < 0 < error(b)
    a, b = (p0, hi) if e0 < 0 else (lo, p0)
    ea, blob_a = (e0, b0) if e0 < 0 else error(a)
    eb, blob_b = (e0, b0) if e0 > 0 else error(b)
    keep(a, ea, blob_a)
    keep(b, eb, blob_b)
    if ea > 0 or eb < 0:
        return best[0], best[2]
    side = 0
    for _ in range(max_iter):
        p = b - eb * (b - a) / (eb - ea) if eb != ea else (a + b) / 2
        e, blob = error(p)
        keep(p, e, blob)
        if abs(e) <= math.log1p(rel_tol):
            break
        if e < 0:
            a, ea = p, e
            if side == -1:
                eb /= 2
            side = -1
        else:
            b, eb = p, e
            if side == 1:
                ea /= 2
            side = 1
    return best[0], best[2]


def largest_within(
    encode: Callable[[float], bytes],
    max_bytes: int,
    bounds: tuple[float, float],
    integer: bool = False,
    iterations: int = 14,
) -> tuple[float, bytes]:
    """Bisect for the largest parameter in ``bounds`` whose stream is not above ``max_bytes`` bytes.

    The stream is assumed to grow with the parameter (a quality or PSNR target). An ``integer`` parameter (e.g. a
    JPEG quality) is bisected exactly over ``low..high``; a continuous one (e.g. an OpenJPEG PSNR target in dB) by
    ``iterations`` halvings of ``bounds``, the result kept on the fitting side. When nothing fits, ``low`` is returned.

    Returns:
        ``(parameter, stream)``.
    """
    low, high = bounds
    best, stream = low, None
    if integer:
        lo, hi = int(low), int(high)
        while lo <= hi:
            mid = (lo + hi) // 2
            blob = encode(mid)
            if len(blob) <= max_bytes:
                best, stream, lo = mid, blob, mid + 1
            else:
                hi = mid - 1
    else:
        lo, hi = float(low), float(high)
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            blob = encode(mid)
            if len(blob) <= max_bytes:
                best, stream, lo = mid, blob, mid
            else:
                hi = mid
    return best, (encode(best) if stream is None else stream)
