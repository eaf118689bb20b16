"""MONAI adapters for the JPEG(QF) baseline: ``JPEGQuantize`` / ``JPEGQuantized`` (4:4:4 JPEG, decoded pixels)."""

from __future__ import annotations

from monai.config import KeysCollection

from ..defenses.frequency_refine import jpeg_quantizer
from .frequency_refine import BlockQuantize, BlockQuantized


class JPEGQuantize(BlockQuantize):
    """Quantize with the Annex K tables at ``quality`` (what a JPEG encode + decode does to the pixels, 4:4:4).

    Args:
        quality: JPEG quality factor 1..100 (libjpeg scaling).
        intensity_range: ``(low, high)`` of the input; ``None`` accepts float images in ``[0, 1]`` only. Intensities
            outside it raise ``ValueError``.
        color: ``"ycbcr"`` (JPEG: luminance table on Y, chrominance table on Cb/Cr; 3 channels) or ``"rgb"``
            (luminance table on every channel, e.g. grey or multi-channel images).
        straight_through: identity gradient (BPDA).
    """

    def __init__(
        self,
        quality: int,
        intensity_range: tuple[float, float] | None = None,
        color: str = "ycbcr",
        straight_through: bool = False,
    ) -> None:
        rng = (0.0, 1.0) if intensity_range is None else intensity_range
        super().__init__(jpeg_quantizer(quality, color, rng, straight_through), intensity_range is not None)


class JPEGQuantized(BlockQuantized):
    """Dictionary version of :class:`JPEGQuantize` (same arguments after ``keys``)."""

    def __init__(
        self,
        keys: KeysCollection,
        quality: int,
        intensity_range: tuple[float, float] | None = None,
        color: str = "ycbcr",
        straight_through: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, JPEGQuantize(quality, intensity_range, color, straight_through), allow_missing_keys)


JPEGQuantizeD = JPEGQuantizeDict = JPEGQuantized
