"""The study metrics, in one place: segmentation overlap (Dice, IoU), image fidelity (PSNR, MS-SSIM), and the
batched class-index prediction loop the studies score.

Region scores: a region such as the optic disc (classes 1 and 2 of the fundus labels) is scored as one binary
structure; an empty region in both prediction and ground truth scores 1, an empty ground truth with a non-empty
prediction 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from monai.metrics import MultiScaleSSIMMetric, PSNRMetric, compute_dice, compute_iou
from monai.networks.utils import one_hot

__all__ = [
    "default_regions",
    "image_fidelity",
    "mean_foreground_dice",
    "pooled_binary_dice",
    "predict_classes",
    "psnr",
    "region_iou",
    "region_scores",
]


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


def region_iou(pred: torch.Tensor, label: torch.Tensor, classes: Sequence[int]) -> np.ndarray:
    """Per-sample IoU ``[N]`` of the structure made of ``classes`` (e.g. optic disc = classes 1 and 2)."""
    return region_scores(pred, label, {"r": list(classes)})["r/iou"].numpy()


def mean_foreground_dice(pred: torch.Tensor, label: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per-sample mean foreground Dice ``[B]`` of class-index maps ``[B, 1, *spatial]`` (MONAI ``compute_dice``).

    Classes absent from the label are skipped (``ignore_empty``); a sample whose label has no foreground is NaN.
    """
    dice = compute_dice(
        one_hot(pred, num_classes), one_hot(label, num_classes), include_background=False, ignore_empty=True
    )
    return torch.nanmean(dice, dim=1)


def pooled_binary_dice(preds: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> tuple[float, float]:
    """``(Dice pooled over every pixel of every image, mean per-image Dice over images with a foreground)``.

    ``preds`` and ``masks`` are binary masks (bool or 0/1 integers) of matching shapes, one pair per image. With no
    foreground anywhere the pooled Dice is 1; with no image holding a foreground the per-image mean is NaN.
    """
    pairs = [(np.asarray(p, dtype=bool), np.asarray(m, dtype=bool)) for p, m in zip(preds, masks, strict=True)]
    overlap = sum(int((p & m).sum()) for p, m in pairs)
    total = sum(int(p.sum() + m.sum()) for p, m in pairs)
    per_image = [2 * (p & m).sum() / (p.sum() + m.sum()) for p, m in pairs if m.any()]
    return (2 * overlap / total if total else 1.0), (float(np.mean(per_image)) if per_image else float("nan"))


def psnr(decoded: np.ndarray, reference: np.ndarray, peak: float | None = None) -> float:
    """PSNR in dB of ``decoded`` against ``reference`` (any shape), computed in float64.

    ``peak`` defaults to the reference's own grey-level span (max - min), the convention for volumes without a fixed
    range; identical arrays give ``inf``.
    """
    ref = np.asarray(reference, dtype=np.float64)
    mse = float(np.mean((np.asarray(decoded, dtype=np.float64) - ref) ** 2))
    span = float(ref.max()) - float(ref.min()) if peak is None else float(peak)
    return float("inf") if mse == 0 else float(10 * np.log10(span**2 / mse))


_MS_SSIM = MultiScaleSSIMMetric(spatial_dims=2, data_range=1.0)
_PSNR = PSNRMetric(max_val=1.0)


def image_fidelity(decoded: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """``(MS-SSIM, PSNR dB)`` of a decoded 2D image ``[H, W]`` in ``[0, 1]`` against its reference (MONAI metrics,
    5 scales, data range 1)."""
    d = torch.as_tensor(np.asarray(decoded, dtype=np.float32))[None, None]
    r = torch.as_tensor(np.asarray(reference, dtype=np.float32))[None, None]
    return float(_MS_SSIM(d, r).mean()), float(_PSNR(d, r).mean())


@torch.no_grad()
def predict_classes(
    model: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    batch_size: int = 8,
) -> torch.Tensor:
    """Class indices ``[N, 1, *spatial]`` of ``model`` (logits ``[B, K, *spatial]``) on ``transform(images)``.

    ``images`` ``[N, C, *spatial]`` go through in batches of ``batch_size``; ``transform`` (e.g. a defense) is
    applied per batch.
    """
    preds = []
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size]
        preds.append(model(x if transform is None else transform(x)).argmax(1, keepdim=True))
    return torch.cat(preds)
