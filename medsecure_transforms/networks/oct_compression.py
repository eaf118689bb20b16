"""Compression and reconstruction CNNs of the learned OCT codec (Guo, Li, Li 2019, Fig. 2).

The compression CNN has six convolution stages: a 7x7 stage at full resolution followed by five
stride-2 stages, so a ``H x W`` input gives a bottleneck of ``H/32 x W/32 x C0``; stages 3, 4 and 5
(``H/4``, ``H/8``, ``H/16``) send ``C3``, ``C2``, ``C1`` channels through the same scalar quantizer
to the reconstruction CNN, which mirrors the compression CNN with ReLU instead of LeakyReLU(0.2).

Every quantized map holds integers in ``[-(L-1)/2, (L-1)/2]`` (``L = 7``: ``-3..3``); during
training the quantizer passes gradients straight through (``round`` in the forward pass, identity
in the backward pass) of a ``tanh`` that bounds the values to the quantizer range.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import Convolution
from torch import nn

__all__ = ["DOWNSAMPLING", "OCTCodecNet", "ScalarQuantizer", "SKIP_STRIDES"]

DOWNSAMPLING = 32
"""Spatial reduction of the bottleneck: inputs must have sides divisible by this."""

SKIP_STRIDES = (16, 8, 4)
"""Reduction of the skip maps carrying ``C1``, ``C2``, ``C3`` channels (stages 5, 4, 3)."""


class ScalarQuantizer(nn.Module):
    """Bounded scalar quantizer with ``levels`` integer levels centred on 0 (odd ``levels``).

    ``forward`` maps real features ``x`` to ``round(h * tanh(x))`` with ``h = (levels - 1) / 2``; in
    training mode the rounding uses a straight-through estimator so gradients flow.
    """

    def __init__(self, levels: int = 7) -> None:
        super().__init__()
        if levels < 2 or levels % 2 == 0:
            raise ValueError(f"levels must be an odd integer >= 3, got {levels}")
        self.levels = levels
        self.half = (levels - 1) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        soft = self.half * torch.tanh(x)
        hard = torch.round(soft)
        return soft + (hard - soft).detach()


def _down(in_ch: int, out_ch: int, kernel: int, stride: int, norm: str | tuple, act: tuple | None) -> Convolution:
    return Convolution(
        2,
        in_ch,
        out_ch,
        strides=stride,
        kernel_size=kernel,
        act=act,
        norm=norm if act else None,
        padding=(kernel - stride + 1) // 2,
        conv_only=act is None,
        bias=act is None,
    )


def _up(in_ch: int, out_ch: int, norm: str | tuple) -> Convolution:
    return Convolution(
        2,
        in_ch,
        out_ch,
        strides=2,
        kernel_size=4,
        act="RELU",
        norm=norm,
        padding=1,
        output_padding=0,
        is_transposed=True,
        bias=False,
    )


class OCTCodecNet(nn.Module):
    """Compression CNN + quantizer + reconstruction CNN for 1-channel images in ``[0, 1]``.

    Args:
        latent_channels: ``(C0, C1, C2, C3)``: channels of the bottleneck (``H/32``) and of the
            skips from stages 5 (``H/16``), 4 (``H/8``) and 3 (``H/4``); a skip with 0 channels is
            absent (``C1 = C2 = C3 = 0`` is the "without skips" ablation). ``C0`` must be >= 1.
        features: channels of the six compression stages (the paper: 64 in the first stage);
            the reconstruction CNN uses them in reverse.
        levels: quantizer levels ``L`` (odd; the paper: 7).
        norm: MONAI normalisation name for every hidden stage.

    ``forward(x)`` returns the reconstruction ``[B, 1, H, W]`` in ``[0, 1]``; ``encode`` returns the
    list of integer-valued maps ``[q0, q1, q2, q3]`` (absent skips omitted) and ``decode`` inverts it.
    """

    def __init__(
        self,
        latent_channels: Sequence[int] = (8, 4, 3, 0),
        features: Sequence[int] = (64, 128, 256, 512, 512, 512),
        levels: int = 7,
        norm: str | tuple = "BATCH",
    ) -> None:
        super().__init__()
        if len(latent_channels) != 4 or latent_channels[0] < 1 or min(latent_channels) < 0:
            raise ValueError(f"latent_channels must be (C0>=1, C1>=0, C2>=0, C3>=0), got {tuple(latent_channels)}")
        if len(features) != 6 or min(features) < 1:
            raise ValueError(f"features must list 6 positive channel counts, got {tuple(features)}")
        self.latent_channels = tuple(int(c) for c in latent_channels)
        self.features = tuple(int(f) for f in features)
        leaky = ("LEAKYRELU", {"negative_slope": 0.2})
        f = self.features
        c0, c1, c2, c3 = self.latent_channels
        self.stages = nn.ModuleList(
            [_down(1, f[0], 7, 1, norm, leaky)] + [_down(f[i - 1], f[i], 4, 2, norm, leaky) for i in range(1, 5)]
        )
        self.bottleneck = _down(f[4], c0, 4, 2, norm, None)
        # skip projections from stages 5, 4, 3 (indices 4, 3, 2) -> C1, C2, C3 channels
        self.skip_in = nn.ModuleList(
            [nn.Conv2d(f[i], c, 1) if c else nn.Identity() for i, c in zip((4, 3, 2), (c1, c2, c3), strict=True)]
        )
        self.quantizer = ScalarQuantizer(levels)
        self.ups = nn.ModuleList(
            [
                _up(c0, f[4], norm),  # H/32 -> H/16
                _up(f[4] + c1, f[3], norm),  # H/16 -> H/8
                _up(f[3] + c2, f[2], norm),  # H/8 -> H/4
                _up(f[2] + c3, f[1], norm),  # H/4 -> H/2
                _up(f[1], f[0], norm),  # H/2 -> H
            ]
        )
        self.head = nn.Sequential(nn.Conv2d(f[0], 1, 7, padding=3), nn.Sigmoid())

    @property
    def skip_channels(self) -> tuple[int, int, int]:
        """``(C1, C2, C3)``."""
        return self.latent_channels[1:]  # type: ignore[return-value]

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``x`` is ``[B, 1, H, W]`` with ``H, W`` divisible by 32."""
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"OCTCodecNet expects [B, 1, H, W] grayscale input, got shape {tuple(x.shape)}")
        if x.shape[2] % DOWNSAMPLING or x.shape[3] % DOWNSAMPLING:
            raise ValueError(
                f"OCTCodecNet needs H and W divisible by {DOWNSAMPLING}, got {tuple(x.shape[2:])}; pad the image first"
            )

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Quantized maps ``[q0 (H/32), q1 (H/16), q2 (H/8), q3 (H/4)]`` of the present connections."""
        self.check_input(x)
        feats = []
        h = x
        for stage in self.stages:
            h = stage(h)
            feats.append(h)
        maps = [self.quantizer(self.bottleneck(h))]
        for proj, idx, c in zip(self.skip_in, (4, 3, 2), self.skip_channels, strict=True):
            if c:
                maps.append(self.quantizer(proj(feats[idx])))
        return maps

    def decode(self, maps: Sequence[torch.Tensor]) -> torch.Tensor:
        """Reconstruction ``[B, 1, H, W]`` from the maps returned by :meth:`encode`."""
        expected = 1 + sum(1 for c in self.skip_channels if c)
        if len(maps) != expected:
            raise ValueError(f"decode expects {expected} quantized maps, got {len(maps)}")
        it = iter(maps)
        h = self.ups[0](next(it))
        for i, c in enumerate(self.skip_channels, start=1):
            if c:
                h = torch.cat([h, next(it)], dim=1)
            h = self.ups[i](h)
        return self.head(self.ups[4](h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def latent_shapes(self, height: int, width: int) -> list[tuple[int, int, int]]:
        """``(C, H_i, W_i)`` of every quantized map for a ``height x width`` input."""
        shapes = [(self.latent_channels[0], height // DOWNSAMPLING, width // DOWNSAMPLING)]
        for c, s in zip(self.skip_channels, SKIP_STRIDES, strict=True):
            if c:
                shapes.append((c, height // s, width // s))
        return shapes
