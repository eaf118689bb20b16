"""MONAI loading pipelines per dataset: readers, channel layout, intensity range and label conventions."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import torch
from monai.config import KeysCollection
from monai.transforms import (
    Compose,
    EnsureChannelFirstd,
    EnsureTyped,
    LoadImaged,
    MapLabelValued,
    MapTransform,
    ScaleIntensityRanged,
)

from .registry import DatasetSpec, get_spec


class SafeLoadImaged(LoadImaged):
    """``LoadImaged`` that names the key and file of any image it cannot read."""

    def __call__(self, data, reader=None):
        try:
            return super().__call__(data, reader)
        except Exception:
            for key in self.key_iterator(dict(data)):
                try:
                    self._loader(data[key], reader)
                except Exception as key_err:
                    raise ValueError(f"cannot read {key!r} file {data[key]}: {key_err}") from key_err
            raise


class CheckSameSpatialShaped(MapTransform):
    """Raise ``ValueError`` when the spatial shapes of ``keys`` differ, naming the source files.

    Expects channel-first arrays ``[C, *spatial]``.
    """

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        shapes = {key: tuple(d[key].shape[1:]) for key in self.key_iterator(d)}
        if len(set(shapes.values())) > 1:
            files = {key: getattr(d[key], "meta", {}).get("filename_or_obj", "<in memory>") for key in shapes}
            detail = "; ".join(f"{k}: shape {shapes[k]} from {files[k]}" for k in shapes)
            raise ValueError(f"image/label spatial shapes differ: {detail}")
        return d


def loading_transforms(
    spec: DatasetSpec | str, keys: Sequence[str] = ("image", "label"), image_range: tuple[float, float] | None = None
) -> Compose:
    """Load ``keys`` as channel-first ``float32`` tensors (image in ``[0, 1]``) and labels as ``0..K-1``.

    Args:
        spec: dataset spec or its name.
        keys: ``image`` first, then label-like keys (``label``, ``disc``, ``cup`` ...).
        image_range: stored intensity range mapped to ``[0, 1]``; default ``(0, 255)`` for 2D
            8-bit images, and no rescaling (``None``) for 3D volumes whose range varies by scanner.
    """
    spec = get_spec(spec) if isinstance(spec, str) else spec
    keys = list(keys)
    image_key, label_keys = keys[0], keys[1:]
    reader = "PILReader" if spec.spatial_dims == 2 else "NibabelReader"
    steps = [
        SafeLoadImaged(keys, reader=reader, image_only=True),
        EnsureChannelFirstd(keys),
        EnsureTyped(image_key, dtype=torch.float32),
    ]
    if image_range is None and spec.spatial_dims == 2:
        image_range = (0.0, 255.0)
    if image_range is not None:
        steps.append(ScaleIntensityRanged(image_key, image_range[0], image_range[1], 0.0, 1.0, clip=True))
    for key in label_keys:
        if key == "label" and spec.label_values is not None:
            steps.append(MapLabelValued(key, list(spec.label_values), list(range(len(spec.label_values)))))
        elif key != "label":  # binary 0/255 masks (e.g. Drishti disc/cup)
            steps.append(MapLabelValued(key, [0, 255], [0, 1]))
    if label_keys:
        steps.append(EnsureTyped(label_keys, dtype=torch.float32))
        steps.append(CheckSameSpatialShaped(keys))
    return Compose(steps)
