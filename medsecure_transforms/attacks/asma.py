"""Adaptive Segmentation Mask Attack (ASMA; Ozbulak, Van Messem, De Neve, MICCAI 2019).

Equation (1) of Liu et al. (MICCAI 2020), the attack their frequency-refinement defense is evaluated against::

    X_{i+1} = clip(X_i + alpha_i * sum_c grad_X [ 1{Y_AE = c} * 1{argmax f(X_i) != c} * f_c(X_i) ])
    alpha_i = beta * IoU(Y_AE, Y_i) + tau,   Y_i = argmax f(X_i)

As in the authors' released code the objective also subtracts the squared L2 distance to the original image, so its
gradient pulls the image back by ``-2 (X_i - X_0)``. Defaults are the authors' (``beta=1e-6``, ``tau=1e-7``, 2500
iterations at most). Batched: every sample keeps its own multiplier and stops on its own once its prediction reaches
``target_iou`` with the target mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from monai.networks.utils import one_hot

from .base import SegmentationAttack, active_set_loop, attack_param, foreground_iou

__all__ = ["ASMA", "asma_objective"]


def asma_objective(
    logits: torch.Tensor, target: torch.Tensor, images: torch.Tensor, originals: torch.Tensor
) -> torch.Tensor:
    """Per-sample ASMA objective ``[B]`` whose input gradient is the ASMA step direction.

    ``sum_c sum_pixels 1{target = c} 1{argmax logits != c} logits_c - ||images - originals||_2^2``.

    Args:
        logits: ``[B, K, *spatial]`` model output on ``images``.
        target: ``[B, 1, *spatial]`` adversarial class indices.
        images: ``[B, C, *spatial]`` current iterate (requires grad).
        originals: ``[B, C, *spatial]`` clean images.
    """
    num_classes = logits.shape[1]
    pred = logits.detach().argmax(dim=1, keepdim=True)
    mask = one_hot(target, num_classes) * (1.0 - one_hot(pred, num_classes))
    return (logits * mask).flatten(1).sum(dim=1) - (images - originals).pow(2).flatten(1).sum(dim=1)


@dataclass(eq=False)
class ASMA(SegmentationAttack):
    """Targeted ASMA for 2D/3D segmentation networks returning logits ``[B, K, *spatial]``.

    Args:
        max_iter: the most gradient steps per sample (authors' code: 2501 iterations).
        beta: IoU-proportional part of the step multiplier (authors: 1e-6).
        tau: constant part of the step multiplier (authors: 1e-7).
        target_iou: stop a sample once the foreground IoU of its prediction with the target reaches this (0, 1].
        max_linf: optional Linf budget; when set each iterate is projected onto the ball around the clean image (an
            extension: the original attack is unbounded apart from the box).
        clip: box constraint of valid intensities, ``None`` for none.
        seed: fixes torch's RNG during the attack (ASMA itself draws nothing; matters for randomised models).
    """

    targeted = True

    max_iter: int = attack_param(2500, int, lambda v: v >= 1, ">= 1")
    beta: float = attack_param(1e-6, float, lambda v: v >= 0, ">= 0")
    tau: float = attack_param(1e-7, float, lambda v: v > 0, "> 0")
    target_iou: float = attack_param(0.8, float, lambda v: 0.0 < v <= 1.0, "in (0, 1]")
    max_linf: float | None = attack_param(None, float, lambda v: v > 0, "> 0 (or None)", optional=True)

    def multiplier(self, iou: torch.Tensor) -> torch.Tensor:
        """Adaptive step multiplier ``alpha_i = beta * IoU_i + tau`` (same shape as ``iou``)."""
        return self.beta * iou + self.tau

    def _attack(self, model, images, target, logits):
        num_classes = logits.shape[1]

        def progress(out: torch.Tensor, active: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            iou = foreground_iou(out.detach().argmax(dim=1, keepdim=True), target[active], num_classes)
            return iou < self.target_iou, iou

        def step(x: torch.Tensor, out: torch.Tensor, active: torch.Tensor, iou: torch.Tensor) -> torch.Tensor:
            objective = asma_objective(out, target[active], x, images[active]).sum()
            (grad,) = torch.autograd.grad(objective, x)
            alpha = self.multiplier(iou).to(x.dtype).view(-1, *([1] * (x.ndim - 1)))
            new = self._box(x.detach() + alpha * grad)
            if self.max_linf is not None:
                clean = images[active]
                new = self._box(clean + (new - clean).clamp(-self.max_linf, self.max_linf))
            return new

        return active_set_loop(model, images, self.max_iter, progress, step)
