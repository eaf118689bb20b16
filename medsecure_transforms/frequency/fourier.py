"""2D Fourier-magnitude features (Park et al.'s "frequency domain converter") on batched tensors.

The three interchangeable detector input domains:

* ``"spatial"``: the image itself;
* ``"frequency"``: the log-scaled, normalised magnitude of the 2D DFT, zero frequency at index ``(0, 0)``;
* ``"shifted_frequency"``: the same with ``fftshift`` (zero frequency at the centre ``(H // 2, W // 2)``).

The DFT is computed over two axes (default the last two, ``[..., H, W]``) of a tensor of any leading shape
(``[B, C, H, W]``, ``[C, H, W]``, or ``[B, C, H, W, D]`` with ``axes=(-3, -2)`` for per-slice features of a volume),
with the orthonormal scaling ``|F(u, v)| = |sum_xy f(x, y) exp(-2 pi j (ux/H + vy/W))| / sqrt(H W)``. The paper's
``1/(WH)`` scaling differs by a constant factor only. For an image with values in ``[0, 1]`` every magnitude is at
most ``sqrt(H W)`` (reached by the DC term of a constant-one image), so the feature

``m(u, v) = log(1 + |F(u, v)|) / log(1 + sqrt(H W))``

lies in ``[0, 1]`` with a fixed, image-independent normalisation: a perturbation that adds high-frequency energy
raises the feature instead of being renormalised away. The feature is differentiable (adaptive attacks need that).
"""

from __future__ import annotations

import math

import numpy as np
import torch

DOMAINS = ("spatial", "frequency", "shifted_frequency")


def _as_float_tensor(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    t = torch.as_tensor(x)
    if t.is_complex():
        raise TypeError("expected a real image, got a complex array")
    if not t.is_floating_point():
        t = t.to(torch.float32)
    return t


def fourier_magnitude(
    x: torch.Tensor | np.ndarray, shift: bool = True, axes: tuple[int, int] = (-2, -1)
) -> torch.Tensor:
    """Log-scaled, normalised 2D DFT magnitude over ``axes`` (see the module docstring for the formula).

    Args:
        x: real array of any shape with at least two axes; integer input is cast to ``float32``.
        shift: move the zero frequency to the centre (``torch.fft.fftshift`` over ``axes``).
        axes: the two axes transformed; the others are batch axes.

    Returns:
        Tensor of ``x``'s shape, device and floating dtype, values in ``[0, 1]`` when ``x`` is in ``[0, 1]``.
    """
    t = _as_float_tensor(x)
    if t.ndim < 2:
        raise ValueError(f"fourier_magnitude needs at least 2 axes, got shape {tuple(t.shape)}")
    h, w = t.shape[axes[0]], t.shape[axes[1]]
    spectrum = torch.fft.fft2(t, dim=axes, norm="ortho")
    if shift:
        spectrum = torch.fft.fftshift(spectrum, dim=axes)
    return torch.log1p(spectrum.abs()) / math.log1p(math.sqrt(h * w))


def to_domain(x: torch.Tensor | np.ndarray, domain: str, axes: tuple[int, int] = (-2, -1)) -> torch.Tensor:
    """Map an image to one of :data:`DOMAINS` (``"spatial"`` returns ``x`` as a float tensor, unchanged)."""
    if domain not in DOMAINS:
        raise ValueError(f"domain must be one of {DOMAINS}, got {domain!r}")
    if domain == "spatial":
        return _as_float_tensor(x)
    return fourier_magnitude(x, shift=domain == "shifted_frequency", axes=axes)
