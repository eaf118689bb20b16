"""``MVCompress3D`` / ``MVCompress3Dd`` (aliases ``MVCompress3DD``, ``MVCompress3DDict``).

The transform simulates transmission through the codec: it encodes a channel-first image
``[C, H, W, D]`` (or ``[C, H, W]`` with 2-level codecs) to ``.mvc`` bytes and decodes them again, so a
pipeline sees exactly what a cloud service would receive. The output keeps the input's type, dtype,
device and metadata; a MetaTensor gains ``meta["mv_compress3d"]`` = ``{"compressed_bytes",
"original_bytes", "compression_ratio", "bits_per_voxel", "q_min", "q_max"}``. Put it right after
loading (before intensity scaling), where the image still has its stored dtype and range.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from monai.config import KeysCollection
from monai.config.type_definitions import NdarrayOrTensor
from monai.data import MetaTensor
from monai.data.meta_obj import get_track_meta
from monai.transforms import Transform
from monai.utils import TransformBackends, convert_to_dst_type

from ..codecs.mvc import MVWaveletCodec, encode_to_ratio
from .keywise import KeywiseMapTransform
from .validation import check_image

META_KEY = "mv_compress3d"


def _codec(codec: MVWaveletCodec | Mapping | str | Path | None, overrides: Mapping) -> MVWaveletCodec:
    if isinstance(codec, MVWaveletCodec):
        state = codec.to_dict()
    elif isinstance(codec, (str, Path)):
        state = MVWaveletCodec.load(codec).to_dict()
    else:
        state = dict(codec or {})
    state.update({k: v for k, v in overrides.items() if v is not None})
    return MVWaveletCodec.from_dict(state)


class MVCompress3D(Transform):
    """Compress and decompress a channel-first image with the MVCompress3D codec.

    Args:
        codec: codec parameters: an ``MVCompress3D`` codec, its ``to_dict()`` state, or a JSON file
            (``medsecure calibrate mv3d`` writes one); default the paper's (CDF 9/7, 3-3-3, Q 1..16).
        q_min, q_max, mapping: optional overrides of the codec's parameters.
        target_ratio: when set, the steps are scaled per image until this compression ratio is met.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        codec: MVWaveletCodec | Mapping | str | Path | None = None,
        q_min: float | None = None,
        q_max: float | None = None,
        mapping: str | None = None,
        target_ratio: float | None = None,
    ) -> None:
        self.codec = _codec(codec, {"q_min": q_min, "q_max": q_max, "mapping": mapping})
        if target_ratio is not None and not target_ratio > 1:
            raise ValueError(f"target_ratio must be > 1, got {target_ratio}")
        self.target_ratio = target_ratio

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        levels = self.codec.levels
        checked = check_image(img, type(self).__name__, (len(levels),), note=f" (codec levels {levels})")
        x = checked.detach().cpu().numpy()
        affine = np.asarray(img.affine, dtype=np.float64) if isinstance(img, MetaTensor) and get_track_meta() else None
        if affine is not None and affine.shape != (4, 4):
            affine = None
        codec = self.codec
        if self.target_ratio is None:
            blob = codec.encode(x, affine=affine)
        else:
            codec, blob = encode_to_ratio(codec, x, self.target_ratio, affine=affine)
        decoded, header = codec.decode(blob)
        result, *_ = convert_to_dst_type(torch.as_tensor(decoded), img, dtype=img.dtype)
        if isinstance(result, MetaTensor):
            result.meta[META_KEY] = {
                "compressed_bytes": header.compressed_bytes,
                "original_bytes": header.original_bytes,
                "compression_ratio": header.compression_ratio,
                "bits_per_voxel": header.bits_per_voxel,
                "q_min": codec.q_min,
                "q_max": codec.q_max,
            }
        return result


class MVCompress3Dd(KeywiseMapTransform):
    """Dictionary version of :class:`MVCompress3D` (same arguments after ``keys``)."""

    backend = MVCompress3D.backend

    def __init__(
        self,
        keys: KeysCollection,
        codec: MVWaveletCodec | Mapping | str | Path | None = None,
        q_min: float | None = None,
        q_max: float | None = None,
        mapping: str | None = None,
        target_ratio: float | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = MVCompress3D(codec, q_min, q_max, mapping, target_ratio)


MVCompress3DD = MVCompress3DDict = MVCompress3Dd
