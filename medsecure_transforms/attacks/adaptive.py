"""Adaptive attacks on defended models: BPDA (Athalye et al. 2018) and EOT (Athalye et al. 2018).

Both wrap ``model`` and a ``defense`` into one ``torch.nn.Module`` that any attack of this package can attack:
``BPDA`` runs ``model(defense(x))`` forwards and differentiates through ``approx`` (identity by default);
``EOT`` averages the logits of ``samples`` draws of a randomised defense, each differentiated the same way.

A defense is a callable on images. With ``per_sample=True`` (default, the MONAI array-transform convention) it is
called on each ``[C, *spatial]`` sample; with ``per_sample=False`` on the whole ``[B, C, *spatial]`` batch. It may
return numpy arrays or MetaTensors; the result is brought back to the input's device and dtype.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from monai.utils import convert_to_tensor

__all__ = ["BPDA", "EOT", "apply_defense"]


def apply_defense(defense: Callable, images: torch.Tensor, per_sample: bool = True) -> torch.Tensor:
    """``defense`` applied to a batch ``[B, C, *spatial]`` without gradient; same shape, device and dtype back.

    Raises:
        ValueError: the defense changed the shape.
    """
    with torch.no_grad():
        if per_sample:
            outputs = [convert_to_tensor(defense(image), track_meta=False) for image in images.detach()]
            defended = torch.stack([o.to(device=images.device, dtype=images.dtype) for o in outputs])
        else:
            defended = convert_to_tensor(defense(images.detach()), track_meta=False)
            defended = defended.to(device=images.device, dtype=images.dtype)
    if defended.shape != images.shape:
        raise ValueError(f"defense must keep the image shape {tuple(images.shape)}, got {tuple(defended.shape)}")
    return defended


def _straight_through(defense: Callable, x: torch.Tensor, approx: Callable | None, per_sample: bool) -> torch.Tensor:
    """Forward value ``defense(x)``, gradient of ``approx(x)`` (of ``x`` when ``approx`` is None)."""
    defended = apply_defense(defense, x, per_sample)
    surrogate = x if approx is None else approx(x)
    return surrogate + (defended - surrogate).detach()


class BPDA(torch.nn.Module):
    """Backward Pass Differentiable Approximation: ``model(defense(x))`` with gradients through ``approx``.

    Args:
        model: segmentation network returning logits ``[B, K, *spatial]``.
        defense: the (possibly non-differentiable) preprocessing defense.
        approx: differentiable batched surrogate ``g(x) ~ defense(x)``; ``None`` means identity (straight-through).
        per_sample: call ``defense`` on each ``[C, *spatial]`` sample (True) or on the batch (False).
    """

    def __init__(
        self, model: torch.nn.Module, defense: Callable, approx: Callable | None = None, per_sample: bool = True
    ) -> None:
        super().__init__()
        self.model = model
        self.defense = defense
        self.approx = approx
        self.per_sample = per_sample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(_straight_through(self.defense, x, self.approx, self.per_sample))


class EOT(torch.nn.Module):
    """Expectation over Transformation: mean logits of ``samples`` draws of a randomised defense.

    Each draw is differentiated like :class:`BPDA` (through ``approx``, identity by default), so the gradient is the
    average gradient over draws. Seed the attack (every attack takes ``seed``) for reproducible draws.

    Args:
        model: segmentation network returning logits ``[B, K, *spatial]``.
        defense: randomised defense; each call draws new randomness.
        samples: number of draws per forward pass (>= 1).
        approx: differentiable surrogate of one draw, ``None`` for identity.
        per_sample: call ``defense`` on each ``[C, *spatial]`` sample (True) or on the batch (False).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        defense: Callable,
        samples: int = 8,
        approx: Callable | None = None,
        per_sample: bool = True,
    ) -> None:
        super().__init__()
        if int(samples) < 1:
            raise ValueError(f"samples must be >= 1, got {samples}")
        self.model = model
        self.defense = defense
        self.samples = int(samples)
        self.approx = approx
        self.per_sample = per_sample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = self.model(_straight_through(self.defense, x, self.approx, self.per_sample))
        for _ in range(self.samples - 1):
            total = total + self.model(_straight_through(self.defense, x, self.approx, self.per_sample))
        return total / self.samples
