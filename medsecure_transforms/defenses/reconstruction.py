"""Reconstruction networks shared by the FFTDetect detector and the reformer: architectures, training, artefacts.

Both defenses are an image-to-image network ``D`` trained on clean images to reproduce its input (in a given
domain, see :mod:`medsecure_transforms.frequency.fourier`). Architectures (``arch``), all ``[B, C, H, W] -> same``:

* ``"autoencoder1"`` / ``"autoencoder2"``: MagNet's autoencoders I and II (the baselines);
* ``"unet"``: MONAI ``UNet`` (channels 16-32-64-128, one residual unit per level);
* ``"densenet"``: :class:`~medsecure_transforms.networks.FCDenseNet` (Tiramisu-style).

An artefact is ONE file written by ``torch.save`` holding ``{"state_dict": ..., "metadata": <JSON string>}``; it
is read with ``torch.load(weights_only=True)``, so loading never unpickles code. The JSON names the architecture
and its arguments, so the network is rebuilt before the weights are loaded.
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from monai.networks.nets import UNet
from torch import nn
from tqdm import tqdm

from medsecure_transforms.frequency.fourier import DOMAINS, to_domain
from medsecure_transforms.networks import FCDenseNet, MagNetAutoEncoderI, MagNetAutoEncoderII

ARTEFACT_FORMAT = "medsecure-reconstruction"
ARTEFACT_VERSION = 1


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

    def metadata(self) -> dict[str, Any]:
        """JSON-serialisable description of the network (architecture, channels, domain)."""
        return {
            "format": ARTEFACT_FORMAT,
            "version": ARTEFACT_VERSION,
            "arch": self.arch,
            "in_channels": self.in_channels,
            "domain": self.domain,
            "network_kwargs": self.network_kwargs,
        }


def save_artefact(path: str | os.PathLike, model: ReconstructionModel, extra: dict[str, Any]) -> None:
    """Write ``model``'s weights and ``metadata() | extra`` (JSON) to one ``torch.save`` file."""
    meta = {**model.metadata(), **extra}
    text = json.dumps(meta, sort_keys=True, allow_nan=False)
    state = {k: v.detach().cpu() for k, v in model.network.state_dict().items()}
    torch.save({"state_dict": state, "metadata": text}, os.fspath(path))


def load_artefact(
    path: str | os.PathLike, kind: str, device: str | torch.device = "cpu"
) -> tuple[ReconstructionModel, dict[str, Any]]:
    """Read an artefact written by :func:`save_artefact` whose ``kind`` field equals ``kind``.

    Raises:
        ValueError: the file is not such an artefact, has another version or kind, or its weights do not fit.
    """
    try:
        blob = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise ValueError(f"{path}: not a readable torch artefact ({err})") from err
    if not isinstance(blob, dict) or set(blob) != {"state_dict", "metadata"} or not isinstance(blob["metadata"], str):
        raise ValueError(f"{path}: expected a dict with 'state_dict' and a JSON 'metadata' string")
    try:
        meta = json.loads(blob["metadata"])
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: metadata is not valid JSON ({err})") from err
    if meta.get("format") != ARTEFACT_FORMAT or meta.get("version") != ARTEFACT_VERSION:
        raise ValueError(
            f"{path}: format {meta.get('format')!r} version {meta.get('version')!r}, "
            f"expected {ARTEFACT_FORMAT!r} version {ARTEFACT_VERSION}"
        )
    if meta.get("kind") != kind:
        raise ValueError(f"{path}: artefact kind is {meta.get('kind')!r}, expected {kind!r}")
    model = ReconstructionModel(meta["arch"], meta["in_channels"], meta["domain"], meta["network_kwargs"], device)
    try:
        model.network.load_state_dict(blob["state_dict"])
    except RuntimeError as err:
        raise ValueError(f"{path}: weights do not match architecture {meta['arch']!r}: {err}") from err
    return model, meta
