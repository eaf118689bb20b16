"""Per-sample Dice and IoU of named regions (unions of classes) with MONAI's metric functions.

A region such as the optic disc (classes 1 and 2 of the fundus labels) is scored as one binary structure. An empty
region in both prediction and ground truth scores 1, an empty ground truth with a non-empty prediction 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from monai.metrics import compute_dice, compute_iou

__all__ = ["default_regions", "region_scores"]


def default_regions(num_classes: int) -> dict[str, list[int]]:
    """One region per foreground class: ``{"class_1": [1], ..., "class_{K-1}": [K-1]}``."""
    return {f"class_{k}": [k] for k in range(1, num_classes)}


def region_scores(
    pred: torch.Tensor, label: torch.Tensor, regions: Mapping[str, Sequence[int]]
) -> dict[str, torch.Tensor]:
    """``{"<region>/dice": [B], "<region>/iou": [B]}`` for class-index maps ``pred``, ``label`` ``[B, 1, *spatial]``."""
    if pred.shape != label.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and label {tuple(label.shape)} must have the same shape")
    scores: dict[str, torch.Tensor] = {}
    for name, classes in regions.items():
        members = torch.as_tensor(list(classes), device=pred.device)
        p = torch.isin(pred, members).float()
        y = torch.isin(label.to(pred.device), members).float()
        scores[f"{name}/dice"] = compute_dice(p, y, include_background=True, ignore_empty=False)[:, 0].cpu()
        scores[f"{name}/iou"] = compute_iou(p, y, include_background=True, ignore_empty=False)[:, 0].cpu()
    return scores
