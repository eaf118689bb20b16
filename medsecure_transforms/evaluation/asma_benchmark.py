"""Batched :class:`~medsecure_transforms.attacks.ASMA` against a one-image-at-a-time loop written as the paper does.

The loop follows the authors' structure (Ozbulak et al., released code): per image and iteration one forward/backward
pass for the gradient with the class masks built in a Python loop over classes, then a second forward pass of the
updated image to get the IoU that sets the next multiplier and the stopping test. :class:`ASMA` runs the whole batch
at once, builds the masks in one one-hot product and reuses the gradient pass's forward for the IoU. Both apply
equation (1) with the same multiplier schedule (box only, no Linf budget), so their adversarial images agree to
float tolerance.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..attacks import ASMA
from .benchmarking import machine_info

__all__ = ["compare_with_paper_loop", "paper_loop_asma"]


def paper_loop_asma(
    model: torch.nn.Module, image: torch.Tensor, target: torch.Tensor, attack: ASMA
) -> tuple[torch.Tensor, int]:
    """ASMA on one image ``[1, C, *spatial]`` with a per-class mask loop and a separate IoU forward pass; returns the
    adversarial image and the number of steps."""
    original = image.clone()
    target_np = target[0, 0].numpy()
    classes = list(range(model(image).shape[1]))

    def iou_with_target(x: torch.Tensor) -> float:
        with torch.no_grad():
            pred = model(x).argmax(dim=1)[0].numpy()
        per_class = []
        for c in classes[1:]:
            p, t = pred == c, target_np == c
            union = np.logical_or(p, t).sum()
            per_class.append(1.0 if union == 0 else np.logical_and(p, t).sum() / union)
        return float(np.mean(per_class))

    x = image.clone()
    iou = iou_with_target(x)
    steps = 0
    while steps < attack.max_iter and iou < attack.target_iou:
        x.requires_grad_(True)
        out = model(x)
        pred = out.argmax(dim=1)[0]
        loss = 0
        for c in classes:
            optimisation_mask = (target[0, 0] == c).float()
            prediction_mask = (pred != c).float()
            loss = loss + torch.sum(out[0, c] * optimisation_mask * prediction_mask)
        loss = loss - torch.sum((x - original) ** 2)
        loss.backward()
        alpha = attack.beta * iou + attack.tau
        x = (x.detach() + alpha * x.grad).clamp(*attack.clip)
        iou = iou_with_target(x)
        steps += 1
    return x.detach(), steps


def compare_with_paper_loop(model: torch.nn.Module, images: torch.Tensor, target: torch.Tensor, attack: ASMA) -> dict:
    """Time ``attack`` on the batch ``images`` ``[B, C, *spatial]`` (``target`` ``[B, 1, *spatial]``) and
    :func:`paper_loop_asma` image by image; check they agree. Returns times (s), speed-up, the largest absolute
    difference of the adversarial images, whether the iteration counts agree, the attack's success and the machine."""
    if attack.max_linf is not None:
        raise ValueError("the paper's loop has no Linf budget: compare an ASMA with max_linf=None")
    start = time.perf_counter()
    batched = attack(model, images, target)
    batched_seconds = time.perf_counter() - start

    start = time.perf_counter()
    looped = [paper_loop_asma(model, images[i : i + 1], target[i : i + 1], attack) for i in range(len(images))]
    loop_seconds = time.perf_counter() - start

    loop_adversarial = torch.cat([x for x, _ in looped])
    return {
        "images": len(images),
        "image_shape": list(images.shape[1:]),
        "attack": attack.params(),
        "batched_seconds": batched_seconds,
        "loop_seconds": loop_seconds,
        "speedup": loop_seconds / batched_seconds,
        "max_abs_difference": float((loop_adversarial - batched.adversarial).abs().max()),
        "iterations_equal": [s for _, s in looped] == batched.iterations.tolist(),
        "iterations": batched.iterations.tolist(),
        "target_iou": batched.target_iou.tolist(),
        "success_rate": float((batched.target_iou >= attack.target_iou).float().mean()),
        "linf_x255": (batched.linf * 255).tolist(),
        "machine": machine_info(load_average=True),
    }
