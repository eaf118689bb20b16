"""JPEG (JFIF, full-range ITU-R BT.601) RGB <-> YCbCr on channel axis 1 of ``[B, 3, ...]`` tensors.

Values are on the 8-bit scale: RGB in ``[0, 255]`` maps to Y in ``[0, 255]`` and Cb, Cr centred on 128.
"""

from __future__ import annotations

import torch

# Rows: Y, Cb, Cr as weighted sums of R, G, B (JFIF 1.02, section 7).
RGB_TO_YCBCR = ((0.299, 0.587, 0.114), (-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312))
CHROMA_OFFSET = 128.0


def _matrix(x: torch.Tensor, inverse: bool) -> torch.Tensor:
    if x.ndim < 2 or x.shape[1] != 3:
        raise ValueError(f"colour conversion expects [B, 3, ...] tensors, got shape {tuple(x.shape)}")
    m = torch.tensor(RGB_TO_YCBCR, dtype=torch.float64)
    m = torch.linalg.inv(m) if inverse else m
    return m.to(dtype=x.dtype, device=x.device)


def _apply(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.einsum("oc,bc...->bo...", m, x)


def _offset(x: torch.Tensor) -> torch.Tensor:
    shape = (1, 3) + (1,) * (x.ndim - 2)
    return torch.tensor((0.0, CHROMA_OFFSET, CHROMA_OFFSET), dtype=x.dtype, device=x.device).reshape(shape)


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """``[B, 3, ...]`` RGB on the 0-255 scale -> YCbCr (JPEG convention, chroma offset 128)."""
    return _apply(_matrix(rgb, inverse=False), rgb) + _offset(rgb)


def ycbcr_to_rgb(ycbcr: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_ycbcr` (exact up to floating point; no clipping)."""
    return _apply(_matrix(ycbcr, inverse=True), ycbcr - _offset(ycbcr))
