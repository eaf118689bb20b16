"""``MVCompress3D`` / ``MVCompress3Dd`` (aliases ``MVCompress3DD``, ``MVCompress3DDict``).

The transform simulates transmission through the codec: it encodes a channel-first image
``[C, H, W, D]`` (or ``[C, H, W]`` with 2-level codecs) to ``.mvc`` bytes and decodes them again, so a
pipeline sees exactly what a cloud service would receive. The output keeps the input's type, dtype,
device and metadata; a MetaTensor gains ``meta["mv_compress3d"]`` (see :class:`MVCompress3D`). Put it right
after loading (before intensity scaling), where the image still has its stored range.

Ratios are reported against two sizes of the same voxels: in the dtype the file stores them (``LoadImage``
converts to ``float32`` by default, so a file's ``int16`` voxels take twice the bytes in memory) and in memory.
The stored dtype comes from the reader's metadata (:func:`stored_dtype`).
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
from nibabel import nifti1

from ..codecs.mvc import MVWaveletCodec, encode_to_ratio
from .keywise import KeywiseMapTransform
from .validation import check_image

META_KEY = "mv_compress3d"
RATIO_AGAINST = ("stored", "memory")
PIL_MODE_DTYPES = {"L": "uint8", "P": "uint8", "LA": "uint8", "RGB": "uint8", "RGBA": "uint8"}
PIL_MODE_DTYPES |= {"CMYK": "uint8", "YCbCr": "uint8", "I;16": "uint16", "I;16B": "uint16", "I;16L": "uint16"}
PIL_MODE_DTYPES |= {"I": "int32", "F": "float32"}


def stored_dtype(img: NdarrayOrTensor) -> tuple[np.dtype | None, str]:
    """``(dtype, source)``: the dtype the image's file stores its voxels in, from ``LoadImage``'s metadata.

    Read from a NIfTI header's ``datatype`` code (``NibabelReader`` and ``ITKReader`` both record it, with
    ``bitpix``) or a PIL image ``mode`` (``PILReader``); ``(None, reason)`` when the metadata records neither
    (plain arrays, DICOM series: MONAI's DICOM readers do not record ``BitsAllocated``).
    """
    meta = img.meta if isinstance(img, MetaTensor) else {}
    if "datatype" in meta and "bitpix" in meta:
        code = int(np.asarray(meta["datatype"]).item())
        dtype = np.dtype(nifti1.data_type_codes.dtype[code]) if code in nifti1.data_type_codes.value_set() else None
        if dtype is not None and dtype.fields:  # RGB24 / RGBA32: one byte per channel
            dtype = np.dtype(dtype.fields[dtype.names[0]][0])
        if dtype is not None and dtype.kind in "iuf":
            return dtype, f"NIfTI datatype {code}"
    if meta.get("mode") in PIL_MODE_DTYPES:
        return np.dtype(PIL_MODE_DTYPES[meta["mode"]]), f"PIL mode {meta['mode']!r}"
    return None, "no stored dtype in the metadata"


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

    A MetaTensor output records ``meta["mv_compress3d"]``:

    * ``compressed_bytes``, ``bits_per_voxel``, ``q_min``, ``q_max`` (the steps used);
    * ``stored_dtype`` and ``stored_dtype_source`` (:func:`stored_dtype`; the in-memory dtype, with the reason,
      when the metadata records none), ``original_bytes`` (the voxels in the stored dtype) and
      ``compression_ratio`` = ``original_bytes / compressed_bytes``;
    * ``in_memory_dtype``, ``in_memory_bytes`` and ``in_memory_compression_ratio`` (the same against the array
      the codec received, e.g. ``float32`` after a default ``LoadImage``);
    * ``ratio_against``: which of the two ratios ``target_ratio`` set.

    Args:
        codec: codec parameters: an ``MVCompress3D`` codec, its ``to_dict()`` state, or a JSON file
            (``medsecure calibrate mv3d`` writes one); default the paper's (CDF 9/7, 3-3-3, Q 1..16).
        q_min, q_max, mapping: optional overrides of the codec's parameters.
        target_ratio: when set, the steps are scaled per image until this compression ratio is met.
        ratio_against: ``"stored"`` (default): ``target_ratio`` is the ratio against the stored dtype;
            ``"memory"``: against the in-memory array.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        codec: MVWaveletCodec | Mapping | str | Path | None = None,
        q_min: float | None = None,
        q_max: float | None = None,
        mapping: str | None = None,
        target_ratio: float | None = None,
        ratio_against: str = "stored",
    ) -> None:
        self.codec = _codec(codec, {"q_min": q_min, "q_max": q_max, "mapping": mapping})
        if target_ratio is not None and not target_ratio > 1:
            raise ValueError(f"target_ratio must be > 1, got {target_ratio}")
        if ratio_against not in RATIO_AGAINST:
            raise ValueError(f"ratio_against must be one of {RATIO_AGAINST}, got {ratio_against!r}")
        self.target_ratio, self.ratio_against = target_ratio, ratio_against

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        levels = self.codec.levels
        checked = check_image(img, type(self).__name__, (len(levels),), note=f" (codec levels {levels})")
        x = checked.detach().cpu().numpy()
        affine = np.asarray(img.affine, dtype=np.float64) if isinstance(img, MetaTensor) and get_track_meta() else None
        if affine is not None and affine.shape != (4, 4):
            affine = None
        dtype, source = stored_dtype(img)
        if dtype is None:
            dtype, source = x.dtype, f"in-memory dtype ({source})"
        stored_bytes = x.size * dtype.itemsize
        codec = self.codec
        if self.target_ratio is None:
            blob = codec.encode(x, affine=affine)
        else:  # encode_to_ratio matches the in-memory ratio
            scale = x.nbytes / stored_bytes if self.ratio_against == "stored" else 1.0
            codec, blob = encode_to_ratio(codec, x, self.target_ratio * scale, affine=affine)
        decoded, header = codec.decode(blob)
        result, *_ = convert_to_dst_type(torch.as_tensor(decoded), img, dtype=img.dtype)
        if isinstance(result, MetaTensor):
            result.meta[META_KEY] = {
                "compressed_bytes": header.compressed_bytes,
                "stored_dtype": str(dtype),
                "stored_dtype_source": source,
                "original_bytes": stored_bytes,
                "compression_ratio": stored_bytes / header.compressed_bytes,
                "in_memory_dtype": str(x.dtype),
                "in_memory_bytes": x.nbytes,
                "in_memory_compression_ratio": x.nbytes / header.compressed_bytes,
                "ratio_against": self.ratio_against,
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
        ratio_against: str = "stored",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = MVCompress3D(codec, q_min, q_max, mapping, target_ratio, ratio_against)


MVCompress3DD = MVCompress3DDict = MVCompress3Dd
