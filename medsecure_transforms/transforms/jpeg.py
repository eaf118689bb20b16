"""MONAI adapters for the JPEG(QF) baseline: ``JPEGQuantize`` / ``JPEGQuantized`` (4:4:4 JPEG, decoded pixels)."""

from __future__ import annotations

from monai.config import KeysCollection
from monai.config.type_definitions import NdarrayOrTensor

from ..defenses.frequency_refine import COLOR_MODES, jpeg_quantizer
from .frequency_refine import BlockQuantize, BlockQuantized

JPEG_COLORS = ("auto", *COLOR_MODES)


class JPEGQuantize(BlockQuantize):
    """Quantize with the Annex K tables at ``quality`` (what a JPEG encode + decode does to the pixels, 4:4:4).

    Args:
        quality: JPEG quality factor 1..100 (libjpeg scaling).
        intensity_range: ``(low, high)`` of the input; ``None`` accepts float images in ``[0, 1]`` only. Intensities
            outside it raise ``ValueError``.
        color: ``"auto"`` (``"ycbcr"`` for 3-channel images, ``"rgb"`` for any other channel count, e.g. grey
            levels), ``"ycbcr"`` (JPEG: luminance table on Y, chrominance table on Cb/Cr; 3 channels only) or
            ``"rgb"`` (luminance table on every channel).
        straight_through: identity gradient (BPDA).
    """

    def __init__(
        self,
        quality: int,
        intensity_range: tuple[float, float] | None = None,
        color: str = "auto",
        straight_through: bool = False,
    ) -> None:
        if color not in JPEG_COLORS:
            raise ValueError(f"color must be one of {JPEG_COLORS}, got {color!r}")
        rng = (0.0, 1.0) if intensity_range is None else intensity_range
        mode = "rgb" if color == "rgb" else "ycbcr"
        super().__init__(jpeg_quantizer(quality, mode, rng, straight_through), intensity_range is not None)
        self.color = color
        self.per_channel: JPEGQuantize | None = None  # what "auto" runs on images without 3 channels
        if color == "auto":
            self.per_channel = JPEGQuantize(quality, intensity_range, "rgb", straight_through)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        shape = getattr(img, "shape", ())
        if self.per_channel is not None and len(shape) > 0 and shape[0] != 3:
            return self.per_channel(img)
        return super().__call__(img)


class JPEGQuantized(BlockQuantized):
    """Dictionary version of :class:`JPEGQuantize` (same arguments after ``keys``)."""

    def __init__(
        self,
        keys: KeysCollection,
        quality: int,
        intensity_range: tuple[float, float] | None = None,
        color: str = "auto",
        straight_through: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, JPEGQuantize(quality, intensity_range, color, straight_through), allow_missing_keys)


JPEGQuantizeD = JPEGQuantizeDict = JPEGQuantized
