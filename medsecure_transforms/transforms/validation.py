"""The one input check of the array transforms and the one way dictionary transforms name the failing key.

Every array transform starts with :func:`check_image`, so a bad input gets the same kind of message everywhere,
e.g. ``"FrequencyRefine: expected a channel-first image [C, H, W] or [C, H, W, D], got shape (16, 16)"``. It
refuses, besides other shapes and NaN/infinite values:

* boolean images (masks are not intensities);
* images without a channel axis: a MetaTensor that ``LoadImage`` read without one (``original_channel_dim`` NaN or
  ``"no_channel"``) and whose shape is still its ``spatial_shape``, or an image of more than :data:`MAX_CHANNELS`
  channels whose channel axis no metadata records (a ``[H, W, D]`` volume would be read as ``H`` channels);
* with ``intensity_range``, intensities outside that range by more than :data:`RANGE_TOLERANCE` of its width
  (the transforms would clip them, e.g. a 0-255 image to a nearly all-white one).

Dictionary transforms wrap each key's work in :func:`naming_key`, which prefixes ``"key 'image': "``.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.data.utils import is_no_channel
from monai.utils import MetaKeys, convert_to_tensor

__all__ = ["MAX_CHANNELS", "RANGE_TOLERANCE", "check_image", "check_range", "layout", "naming_key"]

SPATIAL_AXES = "HWD"
RANGE_TOLERANCE = 1e-3
"""Intensities may leave the declared range by this fraction of its width (rounding of rescaled data)."""
MAX_CHANNELS = 4
"""Most channels of an image whose channel axis no metadata records (RGBA, 4 MR sequences). The project's datasets
have 1 or 3 channels; read without a channel axis (``LoadImage`` without ``EnsureChannelFirst``) they would have 33
(hippocampus-msd) to 512 (fundus, OCT, HVSMR)."""
ADD_CHANNEL = "add EnsureChannelFirstd (or EnsureChannelFirst) after LoadImaged"


def layout(spatial_dims: int) -> str:
    """``"[C, H, W]"`` for 2 spatial dimensions, ``"[C, H, W, D]"`` for 3."""
    return "[" + ", ".join(("C", *SPATIAL_AXES[:spatial_dims])) + "]"


def _no_channel_axis(img: Any, channels: Collection[int] | None) -> tuple[bool, bool]:
    """``(evident, likely)``: whether ``img`` evidently lacks its channel axis (an accepted shape is refused) and
    whether it likely does (a refused shape's message suggests adding one); see the module docstring."""
    recorded = img.meta.get(MetaKeys.ORIGINAL_CHANNEL_DIM) if isinstance(img, MetaTensor) else None
    if recorded is not None and not is_no_channel(recorded):
        return False, False  # the reader found a channel axis: trust its size
    if recorded is not None:
        spatial_shape = img.meta.get(MetaKeys.SPATIAL_SHAPE)
        if spatial_shape is not None and tuple(int(n) for n in np.ravel(spatial_shape)) == tuple(img.shape):
            return True, True
    many = img.ndim > 0 and img.shape[0] > MAX_CHANNELS
    return channels is None and many, many


def check_range(
    x: torch.Tensor, transform: str, intensity_range: tuple[float, float], argument: str | None = "intensity_range"
) -> None:
    """Refuse intensities outside ``intensity_range`` by more than :data:`RANGE_TOLERANCE` of its width.

    Args:
        x: the image (any shape; non-finite extremes are left to the finiteness checks).
        transform: the transform's name, first word of the message.
        intensity_range: ``(low, high)`` the transform assumes.
        argument: the transform's parameter that declares the range (suggested in the message), ``None`` when the
            range is fixed (e.g. by a trained network).

    Raises:
        ValueError: naming the found minimum and maximum, the range and how to fix it.
    """
    if x.numel() == 0:
        return
    found = torch.aminmax(x.detach())
    low, high = float(found.min), float(found.max)
    lo, hi = (float(v) for v in intensity_range)
    tolerance = RANGE_TOLERANCE * (hi - lo)
    if not (np.isfinite(low) and np.isfinite(high)) or (low >= lo - tolerance and high <= hi + tolerance):
        return
    declared = f"{argument}=({lo:g}, {hi:g})" if argument else f"the expected range ({lo:g}, {hi:g})"
    fix = "rescale it first with ScaleIntensityd / ScaleIntensityRanged"
    if argument:
        fix += f", or set {argument} to the image's range"
    raise ValueError(
        f"{transform}: intensities in [{low:.6g}, {high:.6g}] exceed {declared} by more than "
        f"{RANGE_TOLERANCE:g} of its width; {fix}"
    )


def check_image(
    img: Any,
    transform: str,
    spatial_dims: Collection[int] = (2, 3),
    channels: Collection[int] | None = None,
    floating: bool = False,
    finite: bool = True,
    note: str = "",
    intensity_range: tuple[float, float] | None = None,
    range_argument: str | None = "intensity_range",
) -> torch.Tensor:
    """Check a channel-first image; return it as a plain tensor (same memory, device and dtype, no metadata).

    Args:
        img: numpy array, tensor or MetaTensor ``[C, *spatial]``.
        transform: the transform's name, first word of every message.
        spatial_dims: accepted numbers of spatial dimensions.
        channels: accepted channel counts, ``None`` for any (at most :data:`MAX_CHANNELS` when no metadata records
            the channel axis).
        floating: require a floating-point dtype.
        finite: refuse NaN and infinite values (of floating-point images).
        note: appended to the expected layout in shape messages, e.g. ``" (codec levels (3, 3, 3))"``.
        intensity_range: ``(low, high)`` the transform assumes; ``None`` for transforms of any intensities.
        range_argument: see :func:`check_range`.

    Raises:
        TypeError: not an array or tensor, a boolean image, or an integer image where ``floating`` is required.
        ValueError: another number of dimensions or channels, no channel axis, NaN/infinite values or
            intensities outside ``intensity_range``.
    """
    if not isinstance(img, (np.ndarray, torch.Tensor)):
        raise TypeError(f"{transform}: expected a numpy array or torch tensor, got {type(img).__name__}")
    shape = tuple(img.shape)
    expected = " or ".join(layout(dims) for dims in sorted(spatial_dims))
    if channels is not None:
        expected += f" with C in {tuple(channels)}"
    evident, likely = _no_channel_axis(img, channels)
    if img.ndim - 1 not in spatial_dims or (channels is not None and shape[0] not in channels):
        hint = f" (no channel axis? {ADD_CHANNEL})" if likely or img.ndim == min(spatial_dims) else ""
        raise ValueError(f"{transform}: expected a channel-first image {expected}{note}, got shape {shape}{hint}")
    if evident:
        raise ValueError(
            f"{transform}: shape {shape} has no channel axis (read as {shape[0]} channels, at most {MAX_CHANNELS} "
            f"without channel metadata); {ADD_CHANNEL}"
        )
    x = convert_to_tensor(img, track_meta=False)
    if x.dtype == torch.bool:
        raise TypeError(f"{transform}: expected an intensity image, got dtype torch.bool (a mask?)")
    if floating and not x.is_floating_point():
        raise TypeError(f"{transform}: expected a floating-point image, got dtype {x.dtype}")
    if finite and x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{transform}: image of shape {shape} contains NaN or infinite values")
    if intensity_range is not None:
        check_range(x, transform, intensity_range, range_argument)
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
