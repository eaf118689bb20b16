"""Orthonormal block DCT-II / DCT-III (JPEG layout) and table quantization on batched tensors.

Every function works on the last two axes ``[..., H, W]`` of a tensor of any leading shape (``[B, C, H, W]``,
or ``[B, C, D, H, W]`` for per-slice processing of a volume moved to ``[..., H, W]``), on any device and in the
input's floating dtype. Coefficients keep the spatial layout of JPEG: the ``b x b`` tile at block ``(i, j)``
holds that block's coefficients, frequency ``(k, l)`` at ``(i*b + k, j*b + l)``.
:func:`block_dct2` treats a block as a vector of ``b*b`` values and applies ``kron(D, D)`` (``D`` the 1D DCT-II
matrix) in one product; the fused quantization round trip, the hot path of the defenses, is separable and keeps
the pixels in place (see :func:`block_quantize_roundtrip`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .slabs import row_slabs

BLOCK = 8


def dct_matrix(n: int = BLOCK, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None):
    """Orthonormal DCT-II matrix ``D`` of shape ``[n, n]``: ``D[k, i] = a_k cos(pi (2i + 1) k / 2n)``.

    ``D @ x`` is ``scipy.fft.dct(x, norm="ortho")`` and ``D.T`` is its inverse (DCT-III).
    """
    i = torch.arange(n, dtype=torch.float64)
    d = torch.cos(math.pi * (2 * i[None, :] + 1) * i[:, None] / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d.to(dtype=dtype, device=device)


def dct2_basis(n: int = BLOCK, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None):
    """``kron(D, D)`` of shape ``[n*n, n*n]``: maps a row-major flattened block to its flattened 2D DCT-II."""
    d = dct_matrix(n, dtype=torch.float64)
    return torch.kron(d, d).to(dtype=dtype, device=device)


def pad_to_block(x: torch.Tensor, block: int = BLOCK) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad the last two axes at the bottom/right by edge replication (as libjpeg does) to multiples of ``block``.

    Returns the padded tensor and the original ``(H, W)`` for :func:`crop_to_size`.
    """
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % block, (-w) % block
    if pad_h == 0 and pad_w == 0:
        return x, (h, w)
    flat = x.reshape(-1, 1, h, w)
    padded = F.pad(flat, (0, pad_w, 0, pad_h), mode="replicate")
    return padded.reshape(*x.shape[:-2], h + pad_h, w + pad_w), (h, w)


def crop_to_size(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Undo :func:`pad_to_block`: keep the top-left ``size = (H, W)`` of the last two axes."""
    return x[..., : size[0], : size[1]]


def to_blocks(x: torch.Tensor, block: int = BLOCK) -> torch.Tensor:
    """``[..., H, W]`` (multiples of ``block``) -> ``[..., H/b, W/b, b*b]`` row-major flattened blocks."""
    *lead, h, w = x.shape
    if h % block or w % block:
        raise ValueError(f"spatial size {(h, w)} is not a multiple of the block size {block}; pad first")
    tiles = x.reshape(*lead, h // block, block, w // block, block).transpose(-3, -2)
    return tiles.reshape(*lead, h // block, w // block, block * block)


def from_blocks(blocks: torch.Tensor, block: int = BLOCK) -> torch.Tensor:
    """Inverse of :func:`to_blocks`: ``[..., Hb, Wb, b*b]`` -> ``[..., Hb*b, Wb*b]``."""
    *lead, hb, wb, _ = blocks.shape
    tiles = blocks.reshape(*lead, hb, wb, block, block).transpose(-3, -2)
    return tiles.reshape(*lead, hb * block, wb * block)


def _basis_like(x: torch.Tensor, block: int) -> torch.Tensor:
    if not x.is_floating_point():
        raise TypeError(f"block DCT needs a floating-point tensor, got {x.dtype}")
    return dct2_basis(block, dtype=x.dtype, device=x.device)


def block_dct2(x: torch.Tensor, block: int = BLOCK) -> torch.Tensor:
    """Orthonormal 2D DCT-II of every ``block x block`` tile of ``x [..., H, W]`` (H, W multiples of ``block``)."""
    return from_blocks(to_blocks(x, block) @ _basis_like(x, block).T, block)


def block_idct2(coefficients: torch.Tensor, block: int = BLOCK) -> torch.Tensor:
    """Inverse of :func:`block_dct2` (orthonormal 2D DCT-III per tile)."""
    return from_blocks(to_blocks(coefficients, block) @ _basis_like(coefficients, block), block)


def _table_like(table: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    table = torch.as_tensor(table, dtype=x.dtype, device=x.device)
    if table.ndim != 2 or table.shape[0] != table.shape[1]:
        raise ValueError(f"quantization table must be square [b, b], got shape {tuple(table.shape)}")
    if not bool(torch.isfinite(table).all()) or bool((table <= 0).any()):
        raise ValueError("quantization table steps must be finite and > 0")
    return table


def quantize(coefficients: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """``round(C / Q)`` per tile (Q tiled over the JPEG-layout coefficients ``[..., H, W]``); float integers."""
    table = _table_like(table, coefficients)
    b = table.shape[0]
    return from_blocks(torch.round(to_blocks(coefficients, b) / table.reshape(-1)), b)


def dequantize(levels: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """``levels * Q`` per tile: the reconstruction of :func:`quantize`."""
    table = _table_like(table, levels)
    b = table.shape[0]
    return from_blocks(to_blocks(levels, b) * table.reshape(-1), b)


def _row_basis(d: torch.Tensor, width: int) -> torch.Tensor:
    """``kron(I_g, d)`` for the transform along image rows of ``width`` pixels, ``g = 2`` when the row holds an
    even number of blocks: a product with inner size 16 runs several times faster than with 8 on CPU BLAS."""
    b = d.shape[0]
    group = 2 if (width // b) % 2 == 0 else 1
    return torch.kron(torch.eye(group, dtype=d.dtype, device=d.device), d)


def _block_rows_roundtrip(
    rows: torch.Tensor,
    consts: tuple[torch.Tensor, ...],
    scratch: tuple[torch.Tensor, torch.Tensor] | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Quantization round trip of block rows ``[R, b, W]`` (``R`` rows of blocks, ``b`` pixel rows each).

    Separable: the DCT along the ``b`` rows of a block is one batched product ``d @ [b, W]``, the DCT along its
    columns one product with :func:`_row_basis`; the coefficients stay in JPEG layout, where the step tiles
    ``[b, W]`` apply by broadcasting. ``scratch`` (two ``[R, b, W]`` buffers) and ``out`` make the pass
    allocation-free (inference); without them every step allocates and autograd records the graph.
    """
    d, d_t, row_fwd, row_inv, level_scale, level_bias, recon_scale, recon_bias = consts
    buf_a, buf_c = scratch if scratch is not None else (None, None)
    inner = row_fwd.shape[0]  # b or 2b pixels of a row per product

    def in_rows(buf: torch.Tensor | None) -> torch.Tensor | None:
        return None if buf is None else buf.view(-1, inner)

    a = torch.matmul(d, rows, out=buf_a)  # down the columns of every block
    c = torch.mm(a.view(-1, inner), row_fwd, out=in_rows(buf_c)).view(rows.shape)
    levels = torch.addcmul(level_bias, c, level_scale, out=buf_a).round_()
    recon = torch.addcmul(recon_bias, levels, recon_scale, out=buf_c)
    a = torch.mm(recon.view(-1, inner), row_inv, out=in_rows(buf_a))
    return torch.matmul(d_t, a.view(rows.shape), out=out)


def _roundtrip_constants(table: torch.Tensor, gain: float, shift: float, width: int) -> tuple[torch.Tensor, ...]:
    """Operands of :func:`_block_rows_roundtrip` for rows ``width`` pixels wide: the DCT matrix ``d`` and its
    transpose, the row bases, and the ``[b, width]`` tiles ``gain / Q`` and the level shift in steps (DC only)
    for the forward side, ``Q / gain`` and the shift back for the inverse side."""
    b = table.shape[0]
    d = dct_matrix(b, dtype=table.dtype, device=table.device)
    row_fwd = _row_basis(d, width).T.contiguous()
    dc = torch.zeros(b, width // b, b, dtype=table.dtype, device=table.device)
    dc[0, :, 0] = b  # a constant block of 1 has DC coefficient b (orthonormal DCT), every other coefficient 0
    dc = dc.view(b, width)
    steps = table.repeat(1, width // b)
    return (
        d,
        d.T.contiguous(),
        row_fwd,
        row_fwd.T.contiguous(),
        gain / steps,
        dc * (shift / steps),
        steps / gain,
        dc * (-shift / gain),
    )


def block_quantize_roundtrip(
    x: torch.Tensor,
    table: torch.Tensor,
    gain: float = 1.0,
    shift: float = 0.0,
    clip: tuple[float, float] | None = None,
    slab_elements: int = 1 << 18,
) -> torch.Tensor:
    """Quantize ``z = gain * x + shift`` per 8x8 block and return the reconstruction mapped back to ``x`` units.

    Computes ``(IDCT(Q * round(DCT(z) / Q)) - shift) / gain`` on every block of ``x [..., H, W]``, any
    ``H, W >= 1`` (edge-padded, cropped back). Equals ``block_idct2(dequantize(quantize(block_dct2(z), Q), Q))``
    on padded input, computed separably without moving pixels into block order: the affine map folds into
    the step tiles (``gain / Q``, and ``shift`` into the DC level), so e.g. ``[0, 1]`` images are coded on the
    8-bit scale with JPEG's level shift (``gain=255, shift=-128``) at no extra pass. On CPU, without autograd,
    the image goes through in slabs of about ``slab_elements`` values that stay in cache, with reused scratch.
    ``clip = (low, high)`` clamps the result in ``x`` units.
    """
    if gain == 0 or not math.isfinite(gain) or not math.isfinite(shift):
        raise ValueError(f"gain must be finite and non-zero and shift finite, got gain={gain}, shift={shift}")
    table = _table_like(table, x)
    b = table.shape[0]
    padded, size = pad_to_block(x, b)
    width = padded.shape[-1]
    consts = _roundtrip_constants(table, gain, shift, width)
    if torch.is_grad_enabled() and (x.requires_grad or table.requires_grad):
        out = _block_rows_roundtrip(padded.reshape(-1, b, width), consts)
        out = out if clip is None else out.clamp(*clip)
        return crop_to_size(out.reshape(padded.shape), size)
    out = torch.empty(padded.shape, dtype=x.dtype, device=x.device)
    on_cpu = x.device.type == "cpu"
    gather = on_cpu and not padded.is_contiguous()
    if gather:  # strided input (e.g. channels-last): each slab is gathered into its place in ``out``, coded there
        planes = out.view(-1, *padded.shape[-2:])
        pairs = [
            (padded[index].view(-1, b, width), planes[k].view(-1, b, width))
            for k, index in enumerate(np.ndindex(*padded.shape[:-2]))
        ]
    else:
        pairs = [(padded.reshape(-1, b, width), out.view(-1, b, width))]
    block_rows = pairs[0][1]  # every target has this shape
    slabs = row_slabs(block_rows.shape, slab_elements if on_cpu else block_rows.numel())
    scratch = torch.empty(2, *block_rows[slabs[0]].shape, dtype=x.dtype, device=x.device)
    for source, target in pairs:
        for part in slabs:
            dest = target[part]
            rows = dest.copy_(source[part]) if gather else source[part]
            n = dest.shape[0]
            _block_rows_roundtrip(rows, consts, (scratch[0, :n], scratch[1, :n]), dest)
            if clip is not None:
                dest.clamp_(*clip)
    return crop_to_size(out, size)
