"""A small fully convolutional DenseNet (Jegou et al.'s "Tiramisu", CVPRW 2017) for 2D images.

Park et al. use a DenseNet-style segmentation network as detector and reformer. MONAI's ``DenseNet`` is a
classifier and its ``Quicknat`` (dense blocks with max-unpooling) costs about 10x a ``UNet`` of similar width on
CPU, so this module writes the Tiramisu pattern out at a CPU-friendly size:

* a 3x3 stride-2 stem conv to ``stem_channels`` (MONAI's ``UNet`` also downsamples in its first layer; the dense
  blocks then run at half resolution or less, which keeps the network about as fast as that ``UNet``);
* per level a dense block of ``layers_per_block`` BN-ReLU-conv3x3 layers of ``growth_rate`` new channels each
  (every layer sees the concatenation of all previous ones), kept as a skip, then transition down
  (BN-ReLU-conv1x1-maxpool 2x2);
* a bottleneck dense block;
* per level a 3x3 stride-2 transposed conv of *only the new* feature maps of the block below (the Tiramisu rule that
  keeps the up path thin), concatenated with the skip, then a dense block;
* a 3x3 stride-2 transposed conv back to full resolution and ``out_channels`` (no activation: logits or
  reconstructions).

Input ``[B, in_channels, H, W]`` with ``H`` and ``W`` multiples of ``2 ** (levels + 1)``;
output ``[B, out_channels, H, W]``.
"""

from __future__ import annotations

import torch
from torch import nn


class _DenseBlock(nn.Module):
    """``n`` BN-ReLU-conv layers; returns only the ``n * growth`` new channels (callers concatenate the input)."""

    def __init__(self, in_channels: int, n: int, growth: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(
                nn.BatchNorm2d(in_channels + i * growth),
                nn.ReLU(inplace=True),
                nn.Conv2d(in_channels + i * growth, growth, kernel_size=3, padding=1, bias=False),
            )
            for i in range(n)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        new = []
        for layer in self.layers:
            out = layer(torch.cat([x, *new], dim=1))
            new.append(out)
        return torch.cat(new, dim=1)


class FCDenseNet(nn.Module):
    """Fully convolutional DenseNet encoder-decoder with long (skip) and short (dense) connections."""

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        stem_channels: int = 16,
        growth_rate: int = 8,
        layers_per_block: int = 2,
        levels: int = 3,
    ) -> None:
        super().__init__()
        if levels < 1 or layers_per_block < 1 or growth_rate < 1 or stem_channels < 1:
            raise ValueError("levels, layers_per_block, growth_rate and stem_channels must be positive")
        self.size_multiple = 2 ** (levels + 1)
        new = layers_per_block * growth_rate
        self.stem = nn.Conv2d(in_channels, stem_channels, kernel_size=3, stride=2, padding=1)
        self.down_blocks, self.transitions, skip_channels = nn.ModuleList(), nn.ModuleList(), []
        channels = stem_channels
        for _ in range(levels):
            self.down_blocks.append(_DenseBlock(channels, layers_per_block, growth_rate))
            channels += new
            skip_channels.append(channels)
            self.transitions.append(
                nn.Sequential(
                    nn.BatchNorm2d(channels),
                    nn.ReLU(inplace=True),
                    nn.Conv2d(channels, channels, kernel_size=1, bias=False),
                    nn.MaxPool2d(2),
                )
            )
        self.bottleneck = _DenseBlock(channels, layers_per_block, growth_rate)
        self.ups, self.up_blocks = nn.ModuleList(), nn.ModuleList()
        for skip in reversed(skip_channels):
            self.ups.append(nn.ConvTranspose2d(new, new, kernel_size=3, stride=2, padding=1, output_padding=1))
            self.up_blocks.append(_DenseBlock(skip + new, layers_per_block, growth_rate))
        self.head = nn.ConvTranspose2d(
            skip_channels[0] + 2 * new, out_channels, kernel_size=3, stride=2, padding=1, output_padding=1
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % self.size_multiple or x.shape[-2] % self.size_multiple:
            raise ValueError(f"FCDenseNet needs H and W divisible by {self.size_multiple}, got {tuple(x.shape[-2:])}")
        x = self.stem(x)
        skips = []
        for block, down in zip(self.down_blocks, self.transitions, strict=True):
            x = torch.cat([x, block(x)], dim=1)
            skips.append(x)
            x = down(x)
        new = self.bottleneck(x)
        for up, block, skip in zip(self.ups, self.up_blocks, reversed(skips), strict=True):
            x = torch.cat([up(new), skip], dim=1)
            new = block(x)
        return self.head(torch.cat([x, new], dim=1))
