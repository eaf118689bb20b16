"""The one input check of the array transforms and the one way dictionary transforms name the failing key.

Every array transform starts with :func:`check_image`, so a bad input gets the same kind of message everywhere,
e.g. ``"FrequencyRefine: expected a channel-first image [C, H, W] or [C, H, W, D], got shape (16, 16)"``; a check
every transform should make (such as a value range) is added there once. Dictionary transforms wrap each key's work
in :func:`naming_key`, which prefixes ``"key 'image': "``.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from monai.utils import convert_to_tensor

__all__ = ["check_image", "layout", "naming_key"]

SPATIAL_AXES = "HWD"


def layout(spatial_dims: int) -> str:
    """``"[C, H, W]"`` for 2 spatial dimensions, ``"[C, H, W, D]"`` for 3."""
    return "[" + ", ".join(("C", *SPATIAL_AXES[:spatial_dims])) + "]"


def check_image(
    img: Any,
    transform: str,
    spatial_dims: Collection[int] = (2, 3),
    channels: Collection[int] | None = None,
    floating: bool = False,
    finite: bool = True,
    note: str = "",
) -> torch.Tensor:
    """Check a channel-first image; return it as a plain tensor (same memory, device and dtype, no metadata).

    Args:
        img: numpy array, tensor or MetaTensor ``[C, *spatial]``.
        transform: the transform's name, first word of every message.
        spatial_dims: accepted numbers of spatial dimensions.
        channels: accepted channel counts, ``None`` for any.
        floating: require a floating-point dtype.
        finite: refuse NaN and infinite values (of floating-point images).
        note: appended to the expected layout in shape messages, e.g. ``" (codec levels (3, 3, 3))"``.

    Raises:
        TypeError: not an array or tensor, or an integer image where ``floating`` is required.
        ValueError: another number of dimensions or channels, or NaN/infinite values.
    """
    if not isinstance(img, (np.ndarray, torch.Tensor)):
        raise TypeError(f"{transform}: expected a numpy array or torch tensor, got {type(img).__name__}")
    shape = tuple(img.shape)
    expected = " or ".join(layout(dims) for dims in sorted(spatial_dims))
    if channels is not None:
        expected += f" with C in {tuple(channels)}"
    if img.ndim - 1 not in spatial_dims or (channels is not None and shape[0] not in channels):
        raise ValueError(f"{transform}: expected a channel-first image {expected}{note}, got shape {shape}")
    x = convert_to_tensor(img, track_meta=False)
    if floating and not x.is_floating_point():
        raise TypeError(f"{transform}: expected a floating-point image, got dtype {x.dtype}")
    if finite and x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{transform}: image of shape {shape} contains NaN or infinite values")
    return x


@contextmanager
def naming_key(key: Hashable) -> Iterator[None]:
    """Re-raise a ``ValueError`` / ``TypeError`` of the body prefixed with ``key '<key>': ``, chained to it.

    The new exception is a plain ``ValueError`` or ``TypeError`` (the original, of whatever subclass, is its
    ``__cause__``), so exceptions whose constructors take other arguments are wrapped safely.
    """
    try:
        yield
    except TypeError as err:
        raise TypeError(f"key {key!r}: {err}") from err
    except ValueError as err:
        raise ValueError(f"key {key!r}: {err}") from err
