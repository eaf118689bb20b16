"""Reconstruction networks shared by the FFTDetect detector and the reformer: architectures, training, artefacts.

Both defenses are an image-to-image network ``D`` trained on clean images to reproduce its input (in a given
domain, see :mod:`medsecure_transforms.frequency.fourier`). Architectures (``arch``), all ``[B, C, H, W] -> same``:

* ``"autoencoder1"`` / ``"autoencoder2"``: MagNet's autoencoders I and II (the baselines);
* ``"unet"``: MONAI ``UNet`` (channels 16-32-64-128, one residual unit per level);
* ``"densenet"``: :class:`~medsecure_transforms.networks.FCDenseNet` (Tiramisu-style).

:class:`ReconstructionDefense` is their common base: the training record and the artefact (one torch artefact of
:mod:`medsecure_transforms.artefacts` whose ``config`` names the architecture and its arguments, so the network is
rebuilt through the constructor before the weights are loaded).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from monai.networks.nets import UNet
from torch import nn
from tqdm import tqdm

from ..artefacts import load_torch, save_torch
from ..frequency.fourier import DOMAINS, to_domain
from ..networks import FCDenseNet, MagNetAutoEncoderI, MagNetAutoEncoderII

D = TypeVar("D", bound="ReconstructionDefense")


def _unet(in_channels: int, channels: tuple[int, ...] = (16, 32, 64, 128), num_res_units: int = 1) -> nn.Module:
    strides = (2,) * (len(channels) - 1)
    return UNet(2, in_channels, in_channels, channels=channels, strides=strides, num_res_units=num_res_units)


def _densenet(in_channels: int, **kwargs: Any) -> nn.Module:
    return FCDenseNet(in_channels, in_channels, **kwargs)


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "autoencoder1": MagNetAutoEncoderI,
    "autoencoder2": MagNetAutoEncoderII,
    "unet": _unet,
    "densenet": _densenet,
}


def build_network(arch: str, in_channels: int, **kwargs: Any) -> nn.Module:
    """Instantiate architecture ``arch`` mapping ``in_channels`` channels to as many (see module docstring)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {sorted(ARCHITECTURES)}, got {arch!r}")
    if in_channels < 1:
        raise ValueError(f"in_channels must be positive, got {in_channels}")
    return ARCHITECTURES[arch](in_channels, **kwargs)


def size_multiple(arch: str, network_kwargs: dict[str, Any]) -> int:
    """The factor ``H`` and ``W`` must be divisible by for ``arch``."""
    if arch == "unet":
        return 2 ** (len(network_kwargs.get("channels", (16, 32, 64, 128))) - 1)
    if arch == "densenet":
        return 2 ** (network_kwargs.get("levels", 3) + 1)
    return 2 if arch == "autoencoder1" else 1


def check_images(x: torch.Tensor | np.ndarray, in_channels: int, multiple: int, name: str = "images") -> torch.Tensor:
    """Validate a ``[B, C, H, W]`` batch (channel count, divisibility, finiteness) and return a float tensor."""
    t = torch.as_tensor(x)
    if t.ndim != 4:
        raise ValueError(f"{name} must be [B, C, H, W], got shape {tuple(t.shape)}")
    if t.shape[1] != in_channels:
        raise ValueError(f"{name} have {t.shape[1]} channels, expected {in_channels} (shape {tuple(t.shape)})")
    if t.shape[-1] % multiple or t.shape[-2] % multiple:
        raise ValueError(f"{name}: H and W must be divisible by {multiple}, got {tuple(t.shape[-2:])}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be floating point in [0, 1], got dtype {t.dtype}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    return t


class ReconstructionModel:
    """An image-to-image network with its architecture description, domain and training recipe.

    Args:
        arch: a key of :data:`ARCHITECTURES`.
        in_channels: image channels ``C``.
        domain: input/output domain of the network (one of ``frequency.fourier.DOMAINS``).
        network_kwargs: extra architecture arguments (JSON-serialisable).
        device: where the network lives.
    """

    def __init__(
        self,
        arch: str,
        in_channels: int,
        domain: str = "spatial",
        network_kwargs: dict[str, Any] | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        if domain not in DOMAINS:
            raise ValueError(f"domain must be one of {DOMAINS}, got {domain!r}")
        self.arch, self.in_channels, self.domain = arch, int(in_channels), domain
        self.network_kwargs = dict(network_kwargs or {})
        self.device = torch.device(device)
        self.network = build_network(arch, self.in_channels, **self.network_kwargs).to(self.device).eval()
        self.size_multiple = size_multiple(arch, self.network_kwargs)

    def check(self, x: torch.Tensor | np.ndarray, name: str = "images") -> torch.Tensor:
        """Validated ``[B, C, H, W]`` float tensor on this model's device."""
        return check_images(x, self.in_channels, self.size_multiple, name).to(self.device)

    def reconstruct(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x', D(x'))`` with ``x' = to_domain(x)`` for a checked batch; differentiable in ``x``."""
        features = to_domain(self.check(x), self.domain)
        return features, self.network(features)

    def fit(
        self,
        images: torch.Tensor | np.ndarray,
        epochs: int = 10,
        batch_size: int = 16,
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
        noise_std: float = 0.0,
        seed: int = 0,
        progress: bool = True,
    ) -> list[float]:
        """Train ``D`` with Adam and MSE to map ``to_domain(x + noise)`` to ``to_domain(x)`` (Park et al. Sec. 3).

        Args:
            images: clean training images ``[N, C, H, W]`` in ``[0, 1]``.
            epochs, batch_size, lr: Adam schedule (the paper: lr 1e-3).
            weight_decay: the paper's L2 regularisation.
            noise_std: std of Gaussian noise added in the spatial domain before the domain map (MagNet's
                denoising training of reformers; 0 disables), result clipped to ``[0, 1]``.
            seed: seeds shuffling, noise and nothing else (weights are initialised at construction).

        Returns:
            Mean training loss per epoch.
        """
        data = self.check(images, "training images").float()
        if epochs < 1 or batch_size < 1:
            raise ValueError(f"epochs and batch_size must be positive, got {epochs}, {batch_size}")
        generator = torch.Generator(device="cpu").manual_seed(seed)
        optimizer = torch.optim.Adam(self.network.parameters(), lr=lr, weight_decay=weight_decay)
        history = []
        self.network.train()
        for _ in tqdm(range(epochs), desc=f"fit {self.arch}/{self.domain}", disable=not progress):
            order = torch.randperm(len(data), generator=generator)
            total = 0.0
            for start in range(0, len(data), batch_size):
                clean = data[order[start : start + batch_size]]
                noisy = clean
                if noise_std > 0:
                    noise = torch.randn(clean.shape, generator=generator).to(clean.device) * noise_std
                    noisy = (clean + noise).clamp(0.0, 1.0)
                target = to_domain(clean, self.domain)
                loss = torch.mean((self.network(to_domain(noisy, self.domain)) - target) ** 2)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(clean)
            history.append(total / len(data))
        self.network.eval()
        return history

    def config(self) -> dict[str, Any]:
        """The constructor arguments except ``device`` (JSON-serialisable)."""
        return {
            "arch": self.arch,
            "in_channels": self.in_channels,
            "domain": self.domain,
            "network_kwargs": self.network_kwargs,
        }

    def load_weights(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load a ``state_dict`` into the network (strict).

        Raises:
            ValueError: the weights do not fit the architecture.
        """
        try:
            self.network.load_state_dict(state)
        except RuntimeError as err:
            raise ValueError(f"weights do not match architecture {self.arch!r}: {err}") from err


class ReconstructionDefense(ABC):
    """Base of the defenses built on one :class:`ReconstructionModel`: training record and artefact save/load.

    An artefact is a torch artefact (:mod:`medsecure_transforms.artefacts`) of format :attr:`FORMAT` whose
    ``config`` is :meth:`config` and whose ``state`` is the network's ``state_dict``; :meth:`load` rebuilds the
    object through :meth:`from_state`, i.e. through the constructor and its checks.
    """

    FORMAT: ClassVar[str]
    VERSION: ClassVar[int] = 1
    NOUN: ClassVar[str]
    """What the defense is called in error messages ("detector", "reformer")."""

    model: ReconstructionModel
    training: dict[str, Any]

    @property
    def in_channels(self) -> int:
        return self.model.in_channels

    def fit(self, images: torch.Tensor | np.ndarray, **kwargs: Any) -> list[float]:
        """Train on clean ``[N, C, H, W]`` images; see :meth:`ReconstructionModel.fit` for ``kwargs``."""
        history = self.model.fit(images, **kwargs)
        self.training = {"n_images": len(images), "final_loss": history[-1], **kwargs}
        self.training.pop("progress", None)
        return history

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """Constructor arguments (without ``device``) and records, JSON-serialisable."""

    @classmethod
    @abstractmethod
    def from_state(
        cls: type[D], config: Mapping[str, Any], state: Mapping[str, torch.Tensor], device: str | torch.device = "cpu"
    ) -> D:
        """Construct from :meth:`config` and network weights (validated like a direct construction)."""

    def save(self, path: str | os.PathLike) -> Path:
        """Write weights and :meth:`config` to one artefact file; returns the path."""
        return save_torch(path, self.FORMAT, self.VERSION, self.config(), self.model.network.state_dict())

    @classmethod
    def load(
        cls: type[D], path: str | os.PathLike, device: str | torch.device = "cpu", in_channels: int | None = None
    ) -> D:
        """Load an artefact; ``in_channels``, when given, must match the stored channel count (else ``ValueError``)."""
        loaded = load_torch(path, cls.FORMAT, cls.VERSION, lambda config, state: cls.from_state(config, state, device))
        if in_channels is not None and loaded.in_channels != in_channels:
            raise ValueError(f"{path}: {cls.NOUN} expects {loaded.in_channels} channels, expected {in_channels}")
        return loaded
