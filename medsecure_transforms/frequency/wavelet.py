"""Separable n-D discrete wavelet transform (periodization) with stable subband names, torch-first.

The transform acts on the trailing ``len(levels)`` axes of a tensor of any leading shape (``[D, H, W]``,
``[C, D, H, W]``, ``[B, C, D, H, W]`` ...), on any device and in the input's floating dtype. Each 1-D
level is one matrix product with an ``[n, n]`` analysis matrix built from PyWavelets' filter bank
(``mode="periodization"``), so the coefficients equal ``pywt.wavedecn(..., mode="periodization")``
and the transform is differentiable.

``REVERSIBLE_53`` (``"rev5/3"``) is JPEG 2000's reversible LeGall 5/3 integer lifting (ITU-T T.800 Annex F, whole-sample
symmetric extension) on ``int64`` tensors: integers in, integers out, exactly invertible (the lossless mode).

Subband names: ``L{k}/{code}`` with ``k = 1`` the finest level and ``code`` one letter per transformed
axis: ``a`` (low-pass), ``d`` (high-pass) or ``x`` (axis not decomposed at that level, when ``levels``
differ per axis). The last entry of :func:`subband_names` is the coarsest approximation, e.g. ``L3/aaa``
for ``levels=(3, 3, 3)``; the paper's "subband 1" of the lowest resolution level.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Mapping, Sequence

import numpy as np
import pywt
import torch

__all__ = [
    "REVERSIBLE_53",
    "dwt_matrices",
    "subband_names",
    "subband_shapes",
    "subband_std",
    "wavedec_nd",
    "waverec_nd",
]


REVERSIBLE_53 = "rev5/3"


def _lift53_forward(x: torch.Tensor) -> torch.Tensor:
    """One reversible 5/3 level on the last axis (even length): ``[..., n] -> [..., low n/2 | high n/2]``."""
    even, odd = x[..., 0::2], x[..., 1::2]
    even_next = torch.cat([even[..., 1:], even[..., -1:]], -1)  # x[n] mirrors to x[n - 2]
    high = odd - torch.div(even + even_next, 2, rounding_mode="floor")
    high_prev = torch.cat([high[..., :1], high[..., :-1]], -1)  # d[-1] mirrors to d[0]
    low = even + torch.div(high_prev + high + 2, 4, rounding_mode="floor")
    return torch.cat([low, high], -1)


def _lift53_inverse(y: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`_lift53_forward` (the same integer steps undone in reverse order)."""
    half = y.shape[-1] // 2
    low, high = y[..., :half], y[..., half:]
    high_prev = torch.cat([high[..., :1], high[..., :-1]], -1)
    even = low - torch.div(high_prev + high + 2, 4, rounding_mode="floor")
    even_next = torch.cat([even[..., 1:], even[..., -1:]], -1)
    odd = high + torch.div(even + even_next, 2, rounding_mode="floor")
    return torch.stack([even, odd], -1).reshape(y.shape)


def _level_along(x: torch.Tensor, axis: int, wavelet: str, inverse: bool) -> torch.Tensor:
    """One analysis (or synthesis) level of ``wavelet`` along ``axis``: low half first, then high half."""
    if wavelet == REVERSIBLE_53:
        step = _lift53_inverse if inverse else _lift53_forward
        return torch.movedim(step(torch.movedim(x, axis, -1)), -1, axis)
    analysis, synthesis = dwt_matrices(x.shape[axis], wavelet, x.dtype, x.device)
    return _apply(x, axis, synthesis if inverse else analysis)


def _check_input(x: torch.Tensor, wavelet: str, caller: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{caller} expects a torch.Tensor, got {type(x).__name__}")
    if wavelet == REVERSIBLE_53:
        if x.dtype != torch.int64:
            raise TypeError(f"{caller}: the reversible 5/3 transform works on int64 tensors, got {x.dtype}")
    elif not x.is_floating_point():
        raise TypeError(f"{caller}: wavelet {wavelet!r} expects a floating tensor, got {x.dtype}")


@functools.lru_cache(maxsize=64)
def _matrices_np(n: int, wavelet: str) -> tuple[np.ndarray, np.ndarray]:
    if n < 2 or n % 2:
        raise ValueError(f"wavelet level needs an even axis length >= 2, got {n}")
    eye = np.eye(n)
    low, high = pywt.dwt(eye, wavelet, mode="periodization", axis=0)
    analysis = np.concatenate([low, high], axis=0)
    half = n // 2
    synthesis = pywt.idwt(eye[:half], eye[half:], wavelet, mode="periodization", axis=0)
    return analysis, synthesis


def dwt_matrices(
    n: int, wavelet: str, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One periodized 1-D DWT level as matrices ``A, S`` of shape ``[n, n]`` (``n`` even).

    ``A @ x`` stacks the ``n/2`` approximation coefficients over the ``n/2`` detail coefficients of
    ``pywt.dwt(x, wavelet, mode="periodization")``; ``S @ (A @ x) == x``.
    """
    analysis, synthesis = _matrices_np(int(n), str(wavelet))
    return (
        torch.as_tensor(analysis, dtype=dtype, device=device),
        torch.as_tensor(synthesis, dtype=dtype, device=device),
    )


def _check_levels(levels: Sequence[int]) -> tuple[int, ...]:
    levels = tuple(int(v) for v in levels)
    if not levels or min(levels) < 0 or max(levels) < 1:
        raise ValueError(f"levels must be non-negative per axis with at least one >= 1, got {levels}")
    return levels


def _active(levels: tuple[int, ...], k: int) -> tuple[bool, ...]:
    return tuple(level >= k for level in levels)


def subband_names(levels: Sequence[int]) -> list[str]:
    """Names in storage order: finest level first, the coarsest approximation last."""
    levels = _check_levels(levels)
    names = []
    for k in range(1, max(levels) + 1):
        active = _active(levels, k)
        letters = [("a", "d") if on else ("x",) for on in active]
        codes = ["".join(c) for c in itertools.product(*letters)]
        names += [f"L{k}/{code}" for code in codes if "d" in code]
    final = _active(levels, max(levels))
    names.append(f"L{max(levels)}/" + "".join("a" if on else "x" for on in final))
    return names


def _check_shape(shape: Sequence[int], levels: tuple[int, ...]) -> None:
    for axis, (n, level) in enumerate(zip(shape, levels, strict=True)):
        if n % (2**level) or n < 2**level:
            raise ValueError(f"axis {axis} of length {n} is not a positive multiple of 2**{level}; pad first")


def subband_shapes(shape: Sequence[int], levels: Sequence[int]) -> dict[str, tuple[int, ...]]:
    """Spatial shape of every subband of a ``shape`` signal (each axis a multiple of ``2**levels``)."""
    levels = _check_levels(levels)
    shape = tuple(int(n) for n in shape)
    _check_shape(shape, levels)
    out = {}
    for name in subband_names(levels):
        level, code = name.split("/")
        k = int(level[1:])
        # an axis marked 'x' at level k stopped decomposing after its own last level
        out[name] = tuple(n >> (k if c != "x" else depth) for n, c, depth in zip(shape, code, levels, strict=True))
    return out


def _apply(x: torch.Tensor, axis: int, matrix: torch.Tensor) -> torch.Tensor:
    """``matrix`` applied along ``axis``, as one 2-D GEMM on a contiguous copy (fast on CPU)."""
    moved = torch.movedim(x, axis, -1)
    out = moved.reshape(-1, moved.shape[-1]) @ matrix.T
    return torch.movedim(out.reshape(moved.shape), -1, axis)


def wavedec_nd(x: torch.Tensor, wavelet: str, levels: Sequence[int]) -> dict[str, torch.Tensor]:
    """Multi-level separable DWT of the trailing ``len(levels)`` axes of ``x``.

    Args:
        x: floating tensor ``[..., n_1, ..., n_d]`` (``int64`` for ``REVERSIBLE_53``); ``n_i`` a multiple of
            ``2**levels[i]``.
        wavelet: a PyWavelets discrete wavelet name (``"haar"``, ``"db2"``, ``"bior4.4"`` = CDF 9/7 ...) or
            ``REVERSIBLE_53``.
        levels: decomposition levels per trailing axis (``0`` leaves that axis untouched).

    Returns:
        ``{name: coefficients [..., *subband_shape]}`` in :func:`subband_names` order.
    """
    _check_input(x, wavelet, "wavedec_nd")
    levels = _check_levels(levels)
    ndim = len(levels)
    if x.ndim < ndim:
        raise ValueError(f"wavedec_nd: tensor of shape {tuple(x.shape)} has fewer than {ndim} axes")
    _check_shape(x.shape[-ndim:], levels)
    out: dict[str, torch.Tensor] = {}
    approx = x
    for k in range(1, max(levels) + 1):
        active = _active(levels, k)
        for i, on in enumerate(active):
            if on:
                approx = _level_along(approx, i - ndim, wavelet, inverse=False)
        halves = [
            (("a", slice(0, n // 2)), ("d", slice(n // 2, n))) if on else (("x", slice(None)),)
            for n, on in zip(approx.shape[-ndim:], active, strict=True)
        ]
        parts = {}
        for combo in itertools.product(*halves):
            code = "".join(c for c, _ in combo)
            parts[code] = approx[(..., *(s for _, s in combo))]
        approx_code = "".join("a" if on else "x" for on in active)
        for code, part in parts.items():
            if code != approx_code:
                out[f"L{k}/{code}"] = part
        approx = parts[approx_code]
    out[f"L{max(levels)}/{approx_code}"] = approx
    return {name: out[name] for name in subband_names(levels)}


def waverec_nd(subbands: Mapping[str, torch.Tensor], wavelet: str, levels: Sequence[int]) -> torch.Tensor:
    """Inverse of :func:`wavedec_nd`: rebuild ``[..., n_1, ..., n_d]`` from every named subband."""
    levels = _check_levels(levels)
    names = subband_names(levels)
    missing = [n for n in names if n not in subbands]
    if missing:
        raise ValueError(f"waverec_nd: missing subbands {missing[:4]}{'...' if len(missing) > 4 else ''}")
    ndim = len(levels)
    approx = subbands[names[-1]]
    _check_input(approx, wavelet, "waverec_nd")
    for k in range(max(levels), 0, -1):
        active = _active(levels, k)
        approx_code = "".join("a" if on else "x" for on in active)
        # assemble the level's blocks axis by axis: concatenate 'a' and 'd' halves along each active axis
        blocks = {approx_code: approx}
        blocks.update({name.split("/")[1]: subbands[name] for name in names if name.startswith(f"L{k}/")})
        for i, on in enumerate(active):
            if not on:
                continue
            merged = {}
            for code, block in blocks.items():
                if code[i] == "d":
                    continue
                partner = blocks[code[:i] + "d" + code[i + 1 :]]
                merged[code[:i] + "m" + code[i + 1 :]] = torch.cat([block, partner], dim=i - ndim)
            blocks = merged
        (approx,) = blocks.values()
        for i in reversed(range(ndim)):  # undo the axes in reverse order: integer lifting steps do not commute
            if active[i]:
                approx = _level_along(approx, i - ndim, wavelet, inverse=True)
    return approx


def subband_std(subbands: Mapping[str, torch.Tensor], spatial_dims: int) -> dict[str, torch.Tensor]:
    """Per-subband standard deviation over the trailing ``spatial_dims`` axes (the paper's SI, delta_n).

    Returns ``{name: std [...leading]}`` (population std, ``correction=0``; integer subbands in float64).
    """
    dims = tuple(range(-spatial_dims, 0))
    return {
        name: torch.std(c if c.is_floating_point() else c.double(), dim=dims, correction=0)
        for name, c in subbands.items()
    }
