"""Projected gradient descent (PGD; Madry et al. 2018) and FGSM (Goodfellow et al. 2015) for segmentation.

The loss is the pixel-wise cross-entropy averaged over the voxels of each sample (so the step does not depend on the
image size or the batch). Untargeted attacks ascend it for the true label; targeted ones descend it for the target.
Linf steps use the gradient sign, L2 steps the per-sample L2-normalised gradient; every iterate is projected onto the
epsilon ball around the clean image and then onto the box.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .base import SegmentationAttack, attack_param

__all__ = ["FGSM", "PGD", "project"]

NORMS = ("linf", "l2")


def _per_sample(values: torch.Tensor, ndim: int) -> torch.Tensor:
    return values.view(-1, *([1] * (ndim - 1)))


def project(delta: torch.Tensor, epsilon: float, norm: str) -> torch.Tensor:
    """Project a perturbation ``[B, C, *spatial]`` onto the per-sample ``norm`` ball of radius ``epsilon``."""
    if norm == "linf":
        return delta.clamp(-epsilon, epsilon)
    length = delta.flatten(1).norm(p=2, dim=1)
    factor = (epsilon / length.clamp_min(torch.finfo(delta.dtype).tiny)).clamp(max=1.0)
    return delta * _per_sample(factor, delta.ndim)


@dataclass(eq=False)
class PGD(SegmentationAttack):
    """Linf or L2 PGD, targeted or untargeted.

    Args:
        epsilon: radius of the perturbation ball in image units (> 0; e.g. 8/255 for Linf on [0, 1] images).
        step_size: size of each step (Linf: per-voxel sign step; L2: L2 length of the step).
        steps: number of iterations (>= 1).
        norm: ``"linf"`` or ``"l2"``.
        targeted: descend the cross-entropy to ``target`` instead of ascending it away from the true label.
        random_start: start from a uniform point of the ball (Linf) or a random direction of random length (L2).
        clip: box constraint of valid intensities, ``None`` for none.
        seed: seeds the random start (and any randomness of the model).
    """

    epsilon: float = attack_param(8 / 255, float, lambda v: v > 0, "> 0")
    step_size: float = attack_param(2 / 255, float, lambda v: v > 0, "> 0")
    steps: int = attack_param(10, int, lambda v: v >= 1, ">= 1")
    norm: str = attack_param("linf", str, lambda v: v in NORMS, f"one of {NORMS}")
    targeted: bool = attack_param(False, bool)
    random_start: bool = attack_param(True, bool)

    def _start(self, images: torch.Tensor) -> torch.Tensor:
        if not self.random_start:
            return images.clone()
        if self.norm == "linf":
            delta = (torch.rand_like(images) * 2 - 1) * self.epsilon
        else:
            direction = torch.randn_like(images)
            direction = direction / _per_sample(direction.flatten(1).norm(p=2, dim=1), images.ndim)
            radius = torch.rand(images.shape[0], device=images.device, dtype=images.dtype) * self.epsilon
            delta = direction * _per_sample(radius, images.ndim)
        return self._box(images + delta)

    def _step(self, grad: torch.Tensor) -> torch.Tensor:
        if self.norm == "linf":
            return self.step_size * grad.sign()
        length = grad.flatten(1).norm(p=2, dim=1).clamp_min(torch.finfo(grad.dtype).tiny)
        return self.step_size * grad / _per_sample(length, grad.ndim)

    def _attack(self, model, images, target, logits):
        adversarial = self._start(images)
        direction = -1.0 if self.targeted else 1.0
        with torch.enable_grad():
            for _ in range(self.steps):
                x = adversarial.requires_grad_(True)
                loss = F.cross_entropy(model(x), target[:, 0], reduction="none").flatten(1).mean(dim=1).sum()
                (grad,) = torch.autograd.grad(loss, x)
                moved = x.detach() + direction * self._step(grad)
                adversarial = self._box(images + project(moved - images, self.epsilon, self.norm))
        iterations = torch.full((images.shape[0],), self.steps, dtype=torch.long, device=images.device)
        return adversarial, iterations


class FGSM(PGD):
    """Single-step FGSM (Linf) or fast gradient method (L2): PGD with one step of size ``epsilon``, no random start."""

    def __init__(
        self,
        epsilon: float = 8 / 255,
        norm: str = "linf",
        targeted: bool = False,
        clip: tuple[float, float] | None = (0.0, 1.0),
        seed: int = 0,
    ) -> None:
        super().__init__(
            epsilon=epsilon,
            step_size=epsilon,
            steps=1,
            norm=norm,
            targeted=targeted,
            random_start=False,
            clip=clip,
            seed=seed,
        )
