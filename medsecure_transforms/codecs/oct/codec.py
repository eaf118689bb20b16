"""The learned OCT codec (Guo, Li, Li 2019): image -> quantized CNN maps -> entropy-coded stream, and back.

Compression ratios: :func:`nominal_compression_ratio` is the paper's Eq. (1) (every symbol costs
``log2 L`` bits); :meth:`LearnedOCTCodec.measured_ratio` divides the 8-bit image size by the bytes actually
written (header and entropy coding included).
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from ...artefacts import load_torch, save_torch
from ...networks.oct_compression import DOWNSAMPLING, SKIP_STRIDES, OCTCodecNet
from ..errors import CorruptStreamError
from .stream import StreamHeader, pack_stream, unpack_stream

__all__ = ["RATIO_PRESETS", "LearnedOCTCodec", "nominal_compression_ratio"]

RATIO_PRESETS: dict[int, tuple[int, int, int, int]] = {
    10: (16, 4, 4, 3),
    20: (8, 2, 4, 1),
    40: (8, 4, 3, 0),
    80: (8, 3, 1, 0),
}
"""``(C0, C1, C2, C3)`` per target ratio (Eq. (1) at 256x256, 8 bits, L = 7: 10.1, 20.3, 40.5, 81.1).

At 256x256 one ``C3`` channel (64x64) alone costs ratio 45.6, so ratios 40 and 80 carry no ``C3``.
"""


def nominal_compression_ratio(
    latent_channels: Sequence[int], height: int, width: int, bit_depth: int = 8, levels: int = 7
) -> float:
    """Eq. (1): ``H W S / (sum_i H_i W_i C_i log2 L)`` for a ``height x width`` network input."""
    if height % DOWNSAMPLING or width % DOWNSAMPLING:
        raise ValueError(f"height and width must be multiples of {DOWNSAMPLING}, got {height}x{width}")
    strides = (DOWNSAMPLING, *SKIP_STRIDES)
    symbols = sum(c * (height // s) * (width // s) for c, s in zip(latent_channels, strides, strict=True))
    return height * width * bit_depth / (symbols * math.log2(levels))


def _padded(size: int) -> int:
    return -(-size // DOWNSAMPLING) * DOWNSAMPLING


class LearnedOCTCodec:
    """Encoder/decoder around a trained :class:`OCTCodecNet`.

    Images are 2-D arrays in ``[0, 1]`` of any size up to 65535 per side; they are zero-padded at the
    bottom/right to multiples of 32 and cropped back after decoding.
    """

    FORMAT: ClassVar[str] = "medsecure.oct_codec"
    VERSION: ClassVar[int] = 1

    def __init__(self, net: OCTCodecNet, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.model_id = self.fingerprint(net)

    @property
    def latent_channels(self) -> tuple[int, int, int, int]:
        return self.net.latent_channels  # type: ignore[return-value]

    @property
    def levels(self) -> int:
        return self.net.quantizer.levels

    @staticmethod
    def fingerprint(net: OCTCodecNet) -> int:
        """CRC-32 of the configuration and every weight: the ``model_id`` written into each stream."""
        crc = zlib.crc32(repr((net.latent_channels, net.features, net.quantizer.levels)).encode())
        for name, tensor in sorted(net.state_dict().items()):
            crc = zlib.crc32(name.encode(), crc)
            crc = zlib.crc32(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes(), crc)
        return crc

    def _check_image(self, image: np.ndarray | torch.Tensor) -> np.ndarray:
        array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
        if array.ndim != 2:
            raise ValueError(f"LearnedOCTCodec expects a 2-D grayscale image [H, W], got shape {array.shape}")
        if not np.issubdtype(array.dtype, np.floating):
            raise TypeError(f"LearnedOCTCodec expects a float image in [0, 1], got dtype {array.dtype}")
        if not np.all(np.isfinite(array)):
            raise ValueError("LearnedOCTCodec: image contains NaN or infinite values")
        if array.min() < 0.0 or array.max() > 1.0:
            raise ValueError(
                f"LearnedOCTCodec expects intensities in [0, 1], got [{array.min():.4g}, {array.max():.4g}]"
            )
        if max(array.shape) > 65535 or min(array.shape) < 1:
            raise ValueError(f"LearnedOCTCodec: image sides must be 1..65535, got {array.shape}")
        return array.astype(np.float32)

    @torch.no_grad()
    def compress(self, image: np.ndarray | torch.Tensor) -> bytes:
        """Encode a ``[H, W]`` image in ``[0, 1]`` into a stream (see ``codecs/oct/stream.py``)."""
        array = self._check_image(image)
        h, w = array.shape
        ph, pw = _padded(h), _padded(w)
        x = torch.zeros(1, 1, ph, pw, device=self.device)
        x[0, 0, :h, :w] = torch.from_numpy(array).to(self.device)
        maps = [m.round().to(torch.int32).cpu().numpy() for m in self.net.encode(x)]
        header = StreamHeader(self.levels, self.latent_channels, (h, w), (ph, pw), self.model_id)
        return pack_stream(header, maps)

    @torch.no_grad()
    def decompress(self, stream: bytes) -> np.ndarray:
        """Decode a stream of this model into the ``[H, W]`` ``float32`` image.

        Raises:
            CorruptStreamError: malformed stream, or one written by another model / ratio.
        """
        header, symbols = unpack_stream(stream)
        if header.levels != self.levels or header.latent_channels != self.latent_channels:
            raise CorruptStreamError(
                f"stream written with L={header.levels}, channels {header.latent_channels}; this codec has "
                f"L={self.levels}, channels {self.latent_channels} (a different ratio)"
            )
        if header.model_id != self.model_id:
            raise CorruptStreamError(
                f"stream written by model {header.model_id:#010x}, this codec is {self.model_id:#010x}"
            )
        maps, offset = [], 0
        for c, hh, ww in self.net.latent_shapes(*header.padded_shape):
            n = c * hh * ww
            maps.append(torch.from_numpy(symbols[offset : offset + n].reshape(1, c, hh, ww)).float().to(self.device))
            offset += n
        out = self.net.decode(maps)[0, 0].cpu().numpy()
        h, w = header.image_shape
        return np.ascontiguousarray(out[:h, :w], dtype=np.float32)

    def nominal_ratio(self, shape: Sequence[int]) -> float:
        """Eq. (1) for an image of ``shape`` (its padded network input)."""
        return nominal_compression_ratio(self.latent_channels, _padded(shape[0]), _padded(shape[1]), 8, self.levels)

    @staticmethod
    def measured_ratio(shape: Sequence[int], stream_bytes: int) -> float:
        """8-bit image bytes ``H * W`` over the stream bytes."""
        return float(shape[0] * shape[1]) / stream_bytes

    def config(self) -> dict[str, Any]:
        """Constructor arguments of the network: ``{"latent_channels", "features", "levels"}``."""
        return {
            "latent_channels": list(self.net.latent_channels),
            "features": list(self.net.features),
            "levels": self.levels,
        }

    @classmethod
    def from_state(
        cls, config: Mapping[str, Any], state: Mapping[str, torch.Tensor], device: str | torch.device = "cpu"
    ) -> LearnedOCTCodec:
        """Construct from :meth:`config` and the network's ``state_dict`` (validated like a direct construction)."""
        net = OCTCodecNet(config["latent_channels"], config["features"], config["levels"])
        try:
            net.load_state_dict(state)
        except RuntimeError as err:
            raise ValueError(f"weights do not match the network {config}: {err}") from err
        return cls(net, device)

    def save(self, path: str | os.PathLike, half: bool = False) -> Path:
        """Write a torch artefact (:mod:`medsecure_transforms.artefacts`, format :attr:`FORMAT`); returns the path.

        ``half`` stores floating-point weights as float16 (half the file size); the ``model_id`` of a
        loaded codec is computed from the weights as loaded, so streams stay decodable after reloading.
        """
        state = {k: (v.half() if half and v.is_floating_point() else v) for k, v in self.net.state_dict().items()}
        return save_torch(path, self.FORMAT, self.VERSION, self.config(), state)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> LearnedOCTCodec:
        """Load a file written by :meth:`save` (``torch.load(weights_only=True)``, then :meth:`from_state`).

        Raises:
            ValueError: not an OCT codec artefact of this version, or weights that do not fit its configuration.
        """
        return load_torch(path, cls.FORMAT, cls.VERSION, lambda config, state: cls.from_state(config, state, device))
