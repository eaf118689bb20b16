"""The MagNet autoencoders (Meng & Chen, CCS 2017, Table 1), the baselines of Park et al.'s detector/reformer study.

MONAI's ``AutoEncoder`` downsamples with strided convolutions and has no sigmoid layers; MagNet's shallow
sigmoid autoencoders are written out here as published (``filters`` = 3 in the paper), for any channel count:

* Autoencoder I (MagNet's MNIST detector I / reformer): conv-sigmoid, 2x2 average pooling, two conv-sigmoid,
  2x upsampling, conv-sigmoid, conv-sigmoid to ``in_channels``.
* Autoencoder II (MagNet's MNIST detector II and CIFAR autoencoders): three conv-sigmoid layers, no resampling.

Inputs ``[B, C, H, W]`` in ``[0, 1]``; outputs the same shape in ``(0, 1)``. Autoencoder I needs even ``H, W``.
"""

from __future__ import annotations

from torch import nn


def _conv_sigmoid(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1), nn.Sigmoid()]


class MagNetAutoEncoderI(nn.Sequential):
    """MagNet autoencoder with one 2x down/upsampling stage (``H`` and ``W`` must be even)."""

    size_multiple = 2

    def __init__(self, in_channels: int = 1, filters: int = 3) -> None:
        super().__init__(
            *_conv_sigmoid(in_channels, filters),
            nn.AvgPool2d(2),
            *_conv_sigmoid(filters, filters),
            *_conv_sigmoid(filters, filters),
            nn.Upsample(scale_factor=2, mode="nearest"),
            *_conv_sigmoid(filters, filters),
            *_conv_sigmoid(filters, in_channels),
        )


class MagNetAutoEncoderII(nn.Sequential):
    """MagNet autoencoder of three 3x3 conv-sigmoid layers at full resolution."""

    size_multiple = 1

    def __init__(self, in_channels: int = 1, filters: int = 3) -> None:
        super().__init__(
            *_conv_sigmoid(in_channels, filters),
            *_conv_sigmoid(filters, filters),
            *_conv_sigmoid(filters, in_channels),
        )
