"""Slabs of rows: bounded-scratch iteration over large arrays (shared by the wavelet statistics and the codecs)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["row_slabs"]


def row_slabs(shape: Sequence[int], max_elements: int) -> list[slice]:
    """Consecutive slices of the first axis of ``shape``, each covering at most ``max_elements`` elements (or one
    row, when a row alone is larger); together they cover the axis in order. ``shape == ()`` counts as one row."""
    shape = tuple(shape) or (1,)
    rows = max(1, int(max_elements) // max(int(np.prod(shape[1:])), 1))
    return [slice(start, start + rows) for start in range(0, shape[0], rows)]
