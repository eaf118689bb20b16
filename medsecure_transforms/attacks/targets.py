"""Adversarial target masks as in the ASMA protocol (Ozbulak et al. 2019): another sample's mask, a shifted or scaled
mask, an erased structure.

Every generator maps label maps ``[B, 1, *spatial]`` (class indices, 2D or 3D, torch) to target maps of the same shape,
dtype and device, so an evaluation can call ``target = generator(labels)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["OtherSampleMask", "erase_classes", "scale_mask", "shift_mask"]


def _check_labels(labels: torch.Tensor) -> None:
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a torch tensor, got {type(labels).__name__}")
    if labels.ndim not in (4, 5) or labels.shape[1] != 1:
        raise ValueError(f"labels must be [B, 1, *spatial] with 2 or 3 spatial dims, got {tuple(labels.shape)}")


def shift_mask(labels: torch.Tensor, offset: Sequence[int]) -> torch.Tensor:
    """Translate the label map by ``offset`` voxels per spatial axis (positive: towards higher indices).

    Voxels shifted in from outside are background (0); structures shifted out are cut.
    """
    _check_labels(labels)
    spatial = labels.shape[2:]
    if len(offset) != len(spatial):
        raise ValueError(f"offset needs one entry per spatial axis ({len(spatial)}), got {tuple(offset)}")
    out = torch.zeros_like(labels)
    src, dst = [slice(None), slice(None)], [slice(None), slice(None)]
    for shift, size in zip(offset, spatial, strict=True):
        shift = int(shift)
        if abs(shift) >= size:
            return out
        src.append(slice(max(0, -shift), size - max(0, shift)))
        dst.append(slice(max(0, shift), size - max(0, -shift)))
    out[tuple(dst)] = labels[tuple(src)]
    return out


def scale_mask(labels: torch.Tensor, factor: float) -> torch.Tensor:
    """Scale the foreground (classes > 0) by ``factor`` about its centroid, nearest-neighbour resampled.

    ``factor > 1`` enlarges the structures, ``factor < 1`` shrinks them; an all-background map is returned unchanged.
    """
    _check_labels(labels)
    if not factor > 0:
        raise ValueError(f"factor must be > 0, got {factor}")
    spatial = labels.shape[2:]
    axes = [torch.arange(n, device=labels.device, dtype=torch.float32) for n in spatial]
    coords = torch.stack(torch.meshgrid(*axes, indexing="ij"))  # [N, *spatial] voxel coordinates
    out = torch.empty_like(labels)
    for i, label in enumerate(labels):
        fg = (label[0] > 0).float()
        if fg.sum() == 0:
            out[i] = label
            continue
        centre = (coords * fg).flatten(1).sum(dim=1) / fg.sum()
        source = centre.view(-1, *([1] * len(spatial))) + (coords - centre.view(-1, *([1] * len(spatial)))) / factor
        size = torch.tensor(spatial, device=labels.device, dtype=torch.float32).view(-1, *([1] * len(spatial)))
        normalised = 2 * source / (size - 1).clamp_min(1) - 1  # align_corners=True convention
        grid = normalised.flip(0).movedim(0, -1).unsqueeze(0)  # grid_sample wants (x, y[, z]) = reversed axes
        resampled = F.grid_sample(label[None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=True)
        out[i] = resampled[0].round().to(labels.dtype)
    return out


def erase_classes(labels: torch.Tensor, classes: Sequence[int] | None = None, fill: int = 0) -> torch.Tensor:
    """Replace ``classes`` (default: every foreground class) by ``fill``: the structure disappears from the target.

    Example: for the fundus labels (0 background, 1 disc rim, 2 cup) ``erase_classes(y, [2], fill=1)`` removes the cup
    into the rim, ``erase_classes(y)`` removes the whole optic disc.
    """
    _check_labels(labels)
    erase = labels > 0 if classes is None else torch.isin(labels, torch.as_tensor(list(classes), device=labels.device))
    return torch.where(erase, torch.as_tensor(fill, dtype=labels.dtype, device=labels.device), labels)


class OtherSampleMask:
    """Target = the mask of another sample, drawn with a seeded generator from ``pool``.

    For each label map in the batch a pool mask that differs from it is chosen uniformly; the draws follow the call
    order, so the same pool, seed and sequence of batches give the same targets.

    Args:
        pool: label maps ``[1, *spatial]`` (e.g. the labels of the evaluated split), all of the evaluated shape.
        seed: seed of the draws.
    """

    def __init__(self, pool: Sequence[torch.Tensor], seed: int = 0) -> None:
        if len(pool) < 2:
            raise ValueError(f"pool needs at least 2 masks to pick another sample's mask, got {len(pool)}")
        self.pool = [torch.as_tensor(mask).as_subclass(torch.Tensor) for mask in pool]
        shapes = {tuple(mask.shape) for mask in self.pool}
        if len(shapes) != 1:
            raise ValueError(f"pool masks must share one shape [1, *spatial], got {sorted(shapes)}")
        self.seed = int(seed)
        self._generator = torch.Generator().manual_seed(self.seed)

    def __call__(self, labels: torch.Tensor) -> torch.Tensor:
        _check_labels(labels)
        if tuple(labels.shape[1:]) != tuple(self.pool[0].shape):
            raise ValueError(f"labels {tuple(labels.shape)} do not match the pool masks {tuple(self.pool[0].shape)}")
        targets = []
        for label in labels:
            candidates = [m for m in self.pool if not torch.equal(m.to(label.device, label.dtype), label)]
            if not candidates:
                raise ValueError("every pool mask equals the label; no other sample's mask to target")
            pick = int(torch.randint(len(candidates), (1,), generator=self._generator))
            targets.append(candidates[pick].to(label.device, label.dtype))
        return torch.stack(targets)
