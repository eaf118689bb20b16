"""The reformer (MagNet; Park et al.): a spatial-domain autoencoder that pushes inputs toward the clean manifold.

Trained on clean images to reproduce them (optionally from noisy copies, MagNet's denoising recipe); at inference
the target segmentation network sees ``clip(R(x))`` instead of ``x``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from .reconstruction import ReconstructionDefense, ReconstructionModel


class Reformer(ReconstructionDefense):
    """Spatial-domain reconstruction network applied before the target model.

    Args:
        arch: ``"unet"``, ``"densenet"``, ``"autoencoder1"`` or ``"autoencoder2"``.
        in_channels: image channels.
        clip: value range of the reformed image (the target model's input range).
        network_kwargs: extra architecture arguments.
        device: torch device.
    """

    FORMAT = "medsecure.reformer"
    VERSION = 1
    NOUN = "reformer"

    def __init__(
        self,
        arch: str = "unet",
        in_channels: int = 1,
        clip: tuple[float, float] = (0.0, 1.0),
        network_kwargs: dict[str, Any] | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        if not clip[0] < clip[1]:
            raise ValueError(f"clip must be (low, high) with low < high, got {clip}")
        self.model = ReconstructionModel(arch, in_channels, "spatial", network_kwargs, device)
        self.clip = (float(clip[0]), float(clip[1]))
        self.training: dict[str, Any] = {}

    @property
    def name(self) -> str:
        return self.model.arch

    def __call__(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Reformed batch ``[B, C, H, W]`` clipped to ``clip``; differentiable (BPDA is not needed to attack it)."""
        _, recon = self.model.reconstruct(x)
        return recon.clamp(*self.clip)

    def config(self) -> dict[str, Any]:
        """Constructor arguments (network, clip range) and the training record."""
        model = self.model.config()
        del model["domain"]  # always spatial
        return {**model, "clip": list(self.clip), "training": self.training}

    @classmethod
    def from_state(
        cls, config: Mapping[str, Any], state: Mapping[str, torch.Tensor], device: str | torch.device = "cpu"
    ) -> Reformer:
        """A reformer from :meth:`config` and network weights, built (and checked) by the constructor."""
        reformer = cls(config["arch"], config["in_channels"], tuple(config["clip"]), config["network_kwargs"], device)
        reformer.model.load_weights(state)
        reformer.training = dict(config["training"])
        return reformer
