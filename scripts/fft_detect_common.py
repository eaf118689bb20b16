"""Shared by ``train_detectors.py``, ``reproduce_fft_detect.py`` and ``bench_detect.py``: a bundle's split as 2D slices.

A 2D bundle's preprocessing gives ``image`` ``[C, H, W]``; a 3D one (``cardiac_slice_seg``) gives ``[C, H, W, D]``,
cut here into ``D`` slices ``[C, H, W]`` (the detector and the study work per slice, like the paper's 2D OASIS slices).
"""

from __future__ import annotations

import torch
from monai.utils import convert_to_tensor
from tqdm import tqdm

from medsecure_transforms.bundle import bundle_preprocessing


def bundle_slices(
    bundle: str, split: str, limit: int | None = None, data_root: str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images [N, C, H, W] float32 in [0, 1], labels [N, 1, H, W] int64)`` of ``split``, cases in datalist order.

    ``limit`` keeps the first ``limit`` cases (volumes for a 3D bundle, images for a 2D one).
    """
    datalist, preprocessing = bundle_preprocessing(bundle, split, data_root=data_root, limit=limit)
    images, labels = [], []
    for item in tqdm(datalist, desc=f"{bundle}/{split}", leave=False):
        sample = preprocessing(item)
        image = convert_to_tensor(sample["image"], dtype=torch.float32, track_meta=False)
        label = convert_to_tensor(sample["label"], dtype=torch.int64, track_meta=False)
        if image.ndim == 4:  # [C, H, W, D] -> D slices
            images.extend(image.permute(3, 0, 1, 2).unbind(0))
            labels.extend(label.permute(3, 0, 1, 2).unbind(0))
        else:
            images.append(image)
            labels.append(label)
    return torch.stack(images).contiguous(), torch.stack(labels).contiguous()
