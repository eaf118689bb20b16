"""Frequency Refinement (Liu et al., MICCAI 2020) and the JPEG(QF) baseline as block-DCT quantizers.

Both are ``x -> IDCT(Q * round(DCT(x) / Q))`` on 8x8 blocks of the image on the 8-bit scale, level-shifted by 128
as in JPEG; they differ only in the table: the defensive DQ-table for FR, the scaled Annex K tables for JPEG
(luminance on Y, chrominance on Cb/Cr when coding in YCbCr). No chroma subsampling or entropy coding is applied:
they do not change the decoded pixels beyond what the quantization does (4:4:4 JPEG).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch

from ..frequency.color import rgb_to_ycbcr, ycbcr_to_rgb
from ..frequency.dct import BLOCK, block_quantize_roundtrip
from .quant_tables import QuantTable, as_quant_table, band_std, defensive_table, jpeg_table

COLOR_MODES = ("rgb", "ycbcr")
LEVEL_SHIFT = 128.0
EIGHT_BIT = 255.0


class BlockDCTQuantizer:
    """Quantize ``[B, C, H, W]`` images (or ``[B, C, H, W, D]`` volumes, slice by slice along ``D``).

    Args:
        table: 8x8 steps (a :class:`QuantTable`, a JSON path or an array) used for every channel, or for Y only
            when ``chroma_table`` is given.
        chroma_table: optional table for Cb and Cr (``color="ycbcr"`` only).
        color: ``"rgb"`` quantizes each channel as stored (the authors' code); ``"ycbcr"`` converts 3-channel RGB
            to JPEG YCbCr first and back afterwards.
        intensity_range: ``(low, high)`` of the input intensities, mapped to ``[0, 255]`` for quantization;
            outputs are clipped to it.
        straight_through: output ``x + (q(x) - x).detach()`` so gradients pass as identity (BPDA).
    """

    def __init__(
        self,
        table: QuantTable | str | Sequence,
        chroma_table: QuantTable | str | Sequence | None = None,
        color: str = "rgb",
        intensity_range: tuple[float, float] = (0.0, 1.0),
        straight_through: bool = False,
    ) -> None:
        if color not in COLOR_MODES:
            raise ValueError(f"color must be one of {COLOR_MODES}, got {color!r}")
        if chroma_table is not None and color != "ycbcr":
            raise ValueError("chroma_table is only used with color='ycbcr'")
        lo, hi = (float(v) for v in intensity_range)
        if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
            raise ValueError(f"intensity_range must be finite (low, high) with high > low, got {intensity_range}")
        self.table = as_quant_table(table)
        self.chroma_table = None if chroma_table is None else as_quant_table(chroma_table)
        self.color = color
        self.intensity_range = (lo, hi)
        self.straight_through = bool(straight_through)

    @property
    def name(self) -> str:
        return self.table.name

    def to_dict(self) -> dict:
        """JSON-serialisable state (tables with provenance, colour mode, range)."""
        return {
            "table": self.table.to_dict(),
            "chroma_table": None if self.chroma_table is None else self.chroma_table.to_dict(),
            "color": self.color,
            "intensity_range": list(self.intensity_range),
            "straight_through": self.straight_through,
        }

    @classmethod
    def from_dict(cls, state: dict) -> BlockDCTQuantizer:
        chroma = state.get("chroma_table")
        return cls(
            QuantTable.from_dict(state["table"]),
            None if chroma is None else QuantTable.from_dict(chroma),
            color=state.get("color", "rgb"),
            intensity_range=tuple(state.get("intensity_range", (0.0, 1.0))),
            straight_through=state.get("straight_through", False),
        )

    def _check(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"expected a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"expected a floating-point tensor in {self.intensity_range}, got {x.dtype}")
        if x.ndim not in (4, 5):
            raise ValueError(f"expected [B, C, H, W] or [B, C, H, W, D], got shape {tuple(x.shape)}")
        if min(x.shape[2:4]) < BLOCK:
            raise ValueError(f"image plane {tuple(x.shape[2:4])} is smaller than one {BLOCK}x{BLOCK} block")
        if self.color == "ycbcr" and x.shape[1] != 3:
            raise ValueError(f"color='ycbcr' needs 3 channels (RGB), got {x.shape[1]} in shape {tuple(x.shape)}")
        if not bool(torch.isfinite(x.detach().sum())):  # one reduction instead of an elementwise pass
            raise ValueError("input contains NaN or Inf (or values so large their sum overflows)")

    def to_coding_space(self, x: torch.Tensor) -> torch.Tensor:
        """Intensities -> 8-bit scale (-> YCbCr), the space where the tables apply (before the level shift)."""
        lo, hi = self.intensity_range
        x = (x - lo) * (EIGHT_BIT / (hi - lo))
        return rgb_to_ycbcr(x) if self.color == "ycbcr" else x

    def _roundtrip_planes(
        self, x: torch.Tensor, gain: float, shift: float, clip: tuple[float, float] | None = None
    ) -> torch.Tensor:
        """Quantize the last two axes of ``[B, C, ..., H, W]``; ``gain * x + shift`` is the level-shifted code."""
        luma = self.table.as_tensor(x.dtype, x.device)
        if self.chroma_table is None:
            return block_quantize_roundtrip(x, luma, gain, shift, clip)
        chroma = self.chroma_table.as_tensor(x.dtype, x.device)
        planes = [
            block_quantize_roundtrip(x[:, :1], luma, gain, shift, clip),
            block_quantize_roundtrip(x[:, 1:], chroma, gain, shift, clip),
        ]
        return torch.cat(planes, 1)

    def _quantize(self, x: torch.Tensor) -> torch.Tensor:
        lo, hi = self.intensity_range
        if self.color == "ycbcr":
            out = self._roundtrip_planes(self.to_coding_space(x), 1.0, -LEVEL_SHIFT)
            return (ycbcr_to_rgb(out) * ((hi - lo) / EIGHT_BIT) + lo).clamp_(lo, hi)
        gain = EIGHT_BIT / (hi - lo)
        return self._roundtrip_planes(x, gain, -gain * lo - LEVEL_SHIFT, (lo, hi))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Quantized ``x`` (same shape, dtype and device), clipped to ``intensity_range``."""
        self._check(x)
        if x.ndim == 5:
            out = self._quantize(x.movedim(-1, 2)).movedim(2, -1)
        else:
            out = self._quantize(x)
        if self.straight_through:
            return x + (out - x).detach()
        return out


def frequency_refine(
    table: QuantTable | str | Sequence,
    color: str = "rgb",
    intensity_range: tuple[float, float] = (0.0, 1.0),
    straight_through: bool = False,
) -> BlockDCTQuantizer:
    """FR with one (defensive) table on every channel."""
    return BlockDCTQuantizer(table, None, color, intensity_range, straight_through)


def jpeg_quantizer(
    quality: int,
    color: str = "ycbcr",
    intensity_range: tuple[float, float] = (0.0, 1.0),
    straight_through: bool = False,
) -> BlockDCTQuantizer:
    """The JPEG(QF) baseline: Annex K tables at ``quality`` (chroma table on Cb/Cr in YCbCr mode)."""
    chroma = jpeg_table(quality, chroma=True) if color == "ycbcr" else None
    return BlockDCTQuantizer(jpeg_table(quality), chroma, color, intensity_range, straight_through)


def coding_space_band_std(
    images: Iterable[torch.Tensor], color: str = "rgb", intensity_range: tuple[float, float] = (0.0, 1.0)
) -> np.ndarray:
    """Std ``[8, 8]`` of each DCT band over ``images`` (``[C, H, W]`` each) in the coding space of ``color``."""
    coder = BlockDCTQuantizer(np.ones((BLOCK, BLOCK)), color=color, intensity_range=intensity_range)
    coded = (coder.to_coding_space(torch.as_tensor(img, dtype=torch.float64)[None])[0] for img in images)
    return band_std(coded, (0.0, EIGHT_BIT))


def fit_defensive_table(
    images: Iterable[torch.Tensor],
    qs: Sequence[float],
    color: str = "rgb",
    intensity_range: tuple[float, float] = (0.0, 1.0),
    pd_count: int = 3,
    ac_count: int = 12,
    dataset: str | None = None,
) -> QuantTable:
    """Calibrate the DQ-table: band std over ``images`` (``[C, H, W]`` each) in the coding space of ``color``."""
    std = coding_space_band_std(images, color, intensity_range)
    table = defensive_table(std, qs, pd_count, ac_count, dataset)
    return QuantTable(table.steps, table.name, {**table.provenance, "color": color})
