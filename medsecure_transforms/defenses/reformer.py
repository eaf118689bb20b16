"""The reformer (MagNet; Park et al.): a spatial-domain autoencoder that pushes inputs toward the clean manifold.

Trained on clean images to reproduce them (optionally from noisy copies, MagNet's denoising recipe); at inference
the target segmentation network sees ``clip(R(x))`` instead of ``x``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from .reconstruction import ReconstructionModel, load_artefact, save_artefact

REFORMER_KIND = "reformer"


class Reformer:
    """Spatial-domain reconstruction network applied before the target model.

    Args:
        arch: ``"unet"``, ``"densenet"``, ``"autoencoder1"`` or ``"autoencoder2"``.
        in_channels: image channels.
        clip: value range of the reformed image (the target model's input range).
        network_kwargs: extra architecture arguments.
        device: torch device.
    """

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
    def in_channels(self) -> int:
        return self.model.in_channels

    @property
    def name(self) -> str:
        return self.model.arch

    def fit(self, images: torch.Tensor | np.ndarray, **kwargs: Any) -> list[float]:
        """Train on clean ``[N, C, H, W]`` images; see :meth:`ReconstructionModel.fit` (e.g. ``noise_std``)."""
        history = self.model.fit(images, **kwargs)
        self.training = {"n_images": len(images), "final_loss": history[-1], **kwargs}
        self.training.pop("progress", None)
        return history

    def __call__(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Reformed batch ``[B, C, H, W]`` clipped to ``clip``; differentiable (BPDA is not needed to attack it)."""
        _, recon = self.model.reconstruct(x)
        return recon.clamp(*self.clip)

    def save(self, path: str | os.PathLike) -> None:
        """Write weights + JSON state (architecture, clip range, training recipe) to one file."""
        save_artefact(path, self.model, {"kind": REFORMER_KIND, "clip": list(self.clip), "training": self.training})

    @classmethod
    def load(
        cls, path: str | os.PathLike, device: str | torch.device = "cpu", in_channels: int | None = None
    ) -> Reformer:
        """Load an artefact; ``in_channels``, when given, must match the stored channel count (else ``ValueError``)."""
        model, meta = load_artefact(path, REFORMER_KIND, device)
        if in_channels is not None and model.in_channels != in_channels:
            raise ValueError(f"{path}: reformer expects {model.in_channels} channels, expected {in_channels}")
        reformer = cls.__new__(cls)
        reformer.model, reformer.clip, reformer.training = model, tuple(meta["clip"]), meta["training"]
        return reformer
