"""Dense Adversary Generation (DAG; Xie et al., ICCV 2017) for segmentation.

Each iteration takes the still-correct pixels ``T_m`` (predicted as on the clean image and not yet the target class),
the gradient ``r_m`` of ``sum_{t in T_m} f_{target_t}(X + r)_t - f_{label_t}(X + r)_t`` and adds the normalised step
``gamma / ||r_m||_inf * r_m``. A sample stops when ``T_m`` is empty or after ``max_iter`` iterations (paper: 200).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import SegmentationAttack, active_set_loop, attack_param

__all__ = ["DAG", "dag_active_pixels"]


def dag_active_pixels(pred: torch.Tensor, labels: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Boolean ``[B, 1, *spatial]``: pixels still classified as ``labels`` whose target class differs."""
    return (pred == labels) & (target != labels)


@dataclass(eq=False)
class DAG(SegmentationAttack):
    """Targeted DAG. The "correct" label of a pixel is the model's prediction on the clean image.

    Args:
        max_iter: the most iterations per sample (paper: 200).
        gamma: Linf size of every normalised step, in image units. Xie et al. use 0.5 on 0-255 images; the default
            ``0.5 / 255`` is that step for images in [0, 1].
        clip: box constraint of valid intensities, ``None`` for none.
        seed: fixes torch's RNG during the attack (DAG itself draws nothing).
    """

    targeted = True

    max_iter: int = attack_param(200, int, lambda v: v >= 1, ">= 1")
    gamma: float = attack_param(0.5 / 255.0, float, lambda v: v > 0, "> 0")

    def _attack(self, model, images, target, logits):
        labels = logits.argmax(dim=1, keepdim=True)

        def progress(out: torch.Tensor, active: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            pixels = dag_active_pixels(out.detach().argmax(dim=1, keepdim=True), labels[active], target[active])
            return pixels.flatten(1).any(dim=1), pixels

        def step(x: torch.Tensor, out: torch.Tensor, active: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
            margin = out.gather(1, target[active]) - out.gather(1, labels[active])
            (grad,) = torch.autograd.grad((margin * pixels).sum(), x)
            scale = grad.flatten(1).abs().amax(dim=1).clamp_min(torch.finfo(grad.dtype).tiny)
            return self._box(x.detach() + self.gamma * grad / scale.view(-1, *([1] * (x.ndim - 1))))

        return active_set_loop(model, images, self.max_iter, progress, step)
