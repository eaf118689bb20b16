"""Scoring decoded volumes with a 3D segmentation bundle (MVCompress3D calibration and study).

The bundle's ``evaluate.json`` must split its preprocessing into ``load_transforms`` (reading the stored volume,
channel first, stored dtype kept) and ``network_transforms`` (intensity scaling, resampling to the network
grid), so a codec can sit between them, where a transmission to the cloud would happen.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import torch
from monai.data import MetaTensor
from monai.metrics import compute_average_surface_distance, compute_dice, compute_hausdorff_distance
from monai.networks.utils import one_hot
from monai.transforms import Compose

from ..bundle import bundle_config, load_bundle_network
from ..data import load_datalist, resolve_data_root

__all__ = ["BundleSegmenter"]


class BundleSegmenter:
    """A bundle's network and preprocessing, scoring raw or decoded volumes against their labels.

    Args:
        bundle: bundle name or folder (``cardiac_seg``, ``hippocampus_seg`` ...).
        split: datalist split of the bundle's dataset.
        data_root: dataset root (default: ``$MEDSECURE_DATA_ROOT`` or ``../shared/data``).
        limit: first ``limit`` cases only.
    """

    def __init__(
        self, bundle: str, split: str = "test", data_root: str | os.PathLike | None = None, limit: int | None = None
    ) -> None:
        parser = bundle_config(bundle, "evaluate.json", data_root=data_root)
        for key in ("load_transforms", "network_transforms", "num_classes", "class_names"):
            if key not in parser.config:
                raise ValueError(f"bundle {bundle!r} evaluate.json lacks {key!r} (needed to insert a codec)")
        self.load = Compose(parser.get_parsed_content("load_transforms", instantiate=True))
        self.network_transforms = Compose(parser.get_parsed_content("network_transforms", instantiate=True))
        self.num_classes = int(parser["num_classes"])
        self.classes = list(parser["class_names"])[1:]
        self.network = load_bundle_network(bundle)
        self.datalist = load_datalist(parser["dataset_name"], split, resolve_data_root(data_root), limit=limit)

    def cases(self) -> Iterator[tuple[str, dict, np.ndarray]]:
        """``(case name, loaded sample, stored volume [*spatial])`` for every case of the split."""
        for item in self.datalist:
            sample = self.load(dict(item))
            image = sample["image"]
            raw = np.asarray(image.as_tensor() if isinstance(image, MetaTensor) else image)[0]
            yield os.path.basename(str(item["image"])).split(".")[0], sample, raw

    def scores(self, sample: dict, volume: np.ndarray) -> dict[str, np.ndarray]:
        """Per foreground class ``dice`` / ``hausdorff`` / ``asd`` (network grid, voxels) with ``volume`` as image."""
        meta = dict(getattr(sample["image"], "meta", {}))
        data = self.network_transforms({**sample, "image": MetaTensor(torch.as_tensor(volume[None]), meta=meta)})
        image = data["image"]
        with torch.no_grad():
            logits = self.network(torch.as_tensor(image.as_tensor() if isinstance(image, MetaTensor) else image)[None])
        pred = one_hot(logits.argmax(1, keepdim=True), self.num_classes)
        label = one_hot(torch.as_tensor(data["label"])[None].long(), self.num_classes)
        return {
            "dice": compute_dice(pred, label, include_background=False)[0].numpy(),
            "hausdorff": compute_hausdorff_distance(pred, label, include_background=False)[0].numpy(),
            "asd": compute_average_surface_distance(pred, label, include_background=False, symmetric=True)[0].numpy(),
        }

    def mean_dice(self, sample: dict, volume: np.ndarray) -> float:
        """Mean foreground Dice (NaN classes, absent in both, ignored)."""
        return float(np.nanmean(self.scores(sample, volume)["dice"]))
