"""Dense Adversary Generation (DAG; Xie et al., ICCV 2017) for segmentation.

Each iteration takes the still-correct pixels ``T_m`` (predicted as on the clean image and not yet the target class),
the gradient ``r_m`` of ``sum_{t in T_m} f_{target_t}(X + r)_t - f_{label_t}(X + r)_t`` and adds the normalised step
``gamma / ||r_m||_inf * r_m``. A sample stops when ``T_m`` is empty or after ``max_iter`` iterations (paper: 200).
"""

from __future__ import annotations

import torch

from .base import SegmentationAttack

__all__ = ["DAG", "dag_active_pixels"]


def dag_active_pixels(pred: torch.Tensor, labels: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Boolean ``[B, 1, *spatial]``: pixels still classified as ``labels`` whose target class differs."""
    return (pred == labels) & (target != labels)


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

    def __init__(
        self,
        max_iter: int = 200,
        gamma: float = 0.5 / 255.0,
        clip: tuple[float, float] | None = (0.0, 1.0),
        seed: int = 0,
    ) -> None:
        super().__init__(clip=clip, seed=seed)
        if int(max_iter) < 1:
            raise ValueError(f"max_iter must be >= 1, got {max_iter}")
        if gamma <= 0:
            raise ValueError(f"gamma must be > 0, got {gamma}")
        self.max_iter = int(max_iter)
        self.gamma = float(gamma)

    def params(self) -> dict:
        return {**super().params(), "max_iter": self.max_iter, "gamma": self.gamma}

    def _attack(self, model, images, target, logits):
        labels = logits.argmax(dim=1, keepdim=True)
        adversarial = images.clone()
        iterations = torch.zeros(images.shape[0], dtype=torch.long, device=images.device)
        active = torch.arange(images.shape[0], device=images.device)
        with torch.enable_grad():
            for step in range(self.max_iter + 1):
                x = adversarial[active].requires_grad_(True)
                out = model(x)
                pixels = dag_active_pixels(out.detach().argmax(dim=1, keepdim=True), labels[active], target[active])
                going = pixels.flatten(1).any(dim=1)
                if step == self.max_iter or not bool(going.any()):
                    break
                margin = out.gather(1, target[active]) - out.gather(1, labels[active])
                (grad,) = torch.autograd.grad((margin * pixels).sum(), x)
                scale = grad.flatten(1).abs().amax(dim=1).clamp_min(torch.finfo(grad.dtype).tiny)
                new = self._box(x.detach() + self.gamma * grad / scale.view(-1, *([1] * (x.ndim - 1))))
                active = active[going]
                adversarial[active] = new[going]
                iterations[active] += 1
        return adversarial, iterations
