"""MONAI transforms of the learned OCT codec: grayscale conversion, speckle denoising, retina cropping,
its inverse placement, and the codec itself (encode + decode).

Inputs are channel-first 2-D images ``[C, S0, S1]`` with intensities in ``[0, 1]``; the transforms whose output
depends on that scale (grayscale check, denoising, codec) raise ``ValueError`` for intensities outside it (rescale
with ``ScaleIntensityd`` / ``ScaleIntensityRanged``), the geometric ones (crop, place) also take label maps.
B-scans loaded by MONAI's ``PILReader`` are ``[C, W, H]`` (lateral, depth), hence ``depth_axis=1`` by default.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_numpy

from medsecure_transforms.codecs.oct import LearnedOCTCodec
from medsecure_transforms.preprocessing.oct_retina import (
    RetinaBand,
    crop_to_canvas,
    denoise_speckle,
    find_retina_band,
    place_from_canvas,
)

from .keywise import KeywiseMapTransform
from .validation import check_image, naming_key

__all__ = [
    "OCTCodec",
    "OCTCodecD",
    "OCTCodecDict",
    "OCTCodecd",
    "OCTDenoise",
    "OCTDenoiseD",
    "OCTDenoiseDict",
    "OCTDenoised",
    "OCTGrayscale",
    "OCTGrayscaleD",
    "OCTGrayscaleDict",
    "OCTGrayscaled",
    "OCTRetinaCrop",
    "OCTRetinaCropD",
    "OCTRetinaCropDict",
    "OCTRetinaCropd",
    "OCTRetinaPlace",
    "OCTRetinaPlaceD",
    "OCTRetinaPlaceDict",
    "OCTRetinaPlaced",
]

ROI_KEY = "oct_roi"
"""Metadata key of the placement record written by :class:`OCTRetinaCrop`."""
CODEC_KEY = "oct_codec"
"""Metadata key of the compression record written by :class:`OCTCodec`."""

_BT601 = (0.299, 0.587, 0.114)
INTENSITY_RANGE = (0.0, 1.0)
"""Intensities of the B-scans the denoising and the codec networks were tuned and trained on."""


def _check_2d(img: NdarrayOrTensor, name: str, channels: tuple[int, ...] = (1,), in_range: bool = True) -> np.ndarray:
    """``img`` (checked by :func:`check_image` as a 2-D image with ``channels``, intensities in
    :data:`INTENSITY_RANGE` when ``in_range``) as a float32 numpy array."""
    checked = check_image(img, name, (2,), channels, intensity_range=INTENSITY_RANGE if in_range else None)
    return convert_to_numpy(checked, dtype=np.float32)


def _record(out: NdarrayOrTensor, key: str, value: dict) -> NdarrayOrTensor:
    if isinstance(out, MetaTensor):
        out.meta[key] = value
    return out


def _like(array: np.ndarray, dst: NdarrayOrTensor) -> NdarrayOrTensor:
    """``array`` converted to the type/device of ``dst``, keeping ``dst``'s metadata for a MetaTensor."""
    out, *_ = convert_to_dst_type(array, dst, dtype=torch.float32 if isinstance(dst, torch.Tensor) else np.float32)
    return out


class OCTGrayscale(Transform):
    """``[3, S0, S1]`` or ``[1, S0, S1]`` -> ``[1, S0, S1]``.

    OCT B-scans exported as RGB carry the same value in every channel; ``mode="equal"`` (default)
    keeps the first channel and raises ``ValueError`` when the channels differ by more than
    ``atol`` (a colour image is not an OCT B-scan). ``mode="luminance"`` converts any RGB image with
    the ITU-R BT.601 weights.
    """

    backend = [TransformBackends.NUMPY, TransformBackends.TORCH]

    def __init__(self, mode: str = "equal", atol: float = 2.0 / 255.0) -> None:
        if mode not in ("equal", "luminance"):
            raise ValueError(f"mode must be 'equal' or 'luminance', got {mode!r}")
        self.mode, self.atol = mode, atol

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        array = _check_2d(img, type(self).__name__, channels=(1, 3))
        if array.shape[0] == 1:
            return img
        if self.mode == "equal":
            spread = float(np.max(np.ptp(array, axis=0)))
            if spread > self.atol:
                raise ValueError(
                    f"{type(self).__name__}: RGB channels differ by up to {spread:.4f} (> atol {self.atol}); "
                    "OCT B-scans are gray. Use OCTGrayscale(mode='luminance') to convert a colour image."
                )
            gray = array[:1]
        else:
            gray = np.tensordot(np.asarray(_BT601, dtype=np.float32), array, axes=1)[None]
        return _like(gray, img)


class OCTDenoise(Transform):
    """Non-local means speckle reduction of a ``[1, S0, S1]`` image in ``[0, 1]`` (see :func:`denoise_speckle`)."""

    backend = [TransformBackends.NUMPY]

    def __init__(self, h_factor: float = 4.0, patch_size: int = 5, patch_distance: int = 6) -> None:
        self.params = {"h_factor": h_factor, "patch_size": patch_size, "patch_distance": patch_distance}

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        array = _check_2d(img, type(self).__name__)
        out = _like(denoise_speckle(array[0], **self.params)[None], img)
        return _record(out, "oct_denoise", {"method": "skimage.denoise_nl_means", **self.params})


class OCTRetinaCrop(Transform):
    """Crop the retina band (ILM to ``below_bm`` below Bruch's membrane) onto a network-size canvas.

    The output is ``[1, lateral', depth_size]`` for ``depth_axis=1`` (``lateral'`` = lateral size
    rounded up to ``lateral_multiple``), the band centred on a zero canvas; the placement record is
    stored in ``meta["oct_roi"]`` of a MetaTensor and in ``self.last_placement``.

    Args:
        depth_size: canvas size along depth (the paper: 256).
        lateral_multiple: the lateral size is padded up to a multiple of this (256: whole 256x256 tiles).
        depth_axis: spatial axis of depth (1 for MONAI ``PILReader`` B-scans ``[C, W, H]``).
        below_bm, margin: see :func:`find_retina_band`.
        mask_outside: zero the samples outside the per-A-scan boundaries (segmented ROI).
    """

    backend = [TransformBackends.NUMPY]

    def __init__(
        self,
        depth_size: int = 256,
        lateral_multiple: int = 256,
        depth_axis: int = 1,
        below_bm: int = 24,
        margin: int = 8,
        mask_outside: bool = True,
    ) -> None:
        if depth_axis not in (0, 1):
            raise ValueError(f"depth_axis must be 0 or 1 (a spatial axis of [C, S0, S1]), got {depth_axis}")
        self.depth_size, self.lateral_multiple, self.depth_axis = depth_size, lateral_multiple, depth_axis
        self.below_bm, self.margin, self.mask_outside = below_bm, margin, mask_outside
        self.last_placement: dict | None = None

    def placement_of(self, img: NdarrayOrTensor) -> tuple[np.ndarray, dict]:
        """``(band-masked canvas [1, ...], placement)`` of ``img`` (band found on ``img`` itself)."""
        array = _check_2d(img, type(self).__name__, in_range=False)
        band = find_retina_band(array[0], self.depth_axis, self.below_bm, self.margin)
        canvas, placement = crop_to_canvas(
            array[0], band, self.depth_size, self.lateral_multiple, self.depth_axis, self.mask_outside
        )
        return canvas[None], placement

    def apply(self, img: NdarrayOrTensor, placement: dict) -> NdarrayOrTensor:
        """Crop ``img`` (e.g. a label map) with a placement found on another image."""
        array = _check_2d(img, type(self).__name__, in_range=False)
        if list(array.shape[1:]) != placement["spatial_shape"]:
            raise ValueError(
                f"{type(self).__name__}: image shape {array.shape[1:]} differs from the placement's "
                f"{placement['spatial_shape']}"
            )
        return self._wrap(_crop_with(array[0], placement, self.mask_outside)[None], img, placement)

    def _wrap(self, canvas: np.ndarray, img: NdarrayOrTensor, placement: dict) -> NdarrayOrTensor:
        out = _like(canvas, img)
        return _record(out, ROI_KEY, placement)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        canvas, placement = self.placement_of(img)
        self.last_placement = placement
        return self._wrap(canvas, img, placement)


def _crop_with(image: np.ndarray, placement: dict, mask_outside: bool) -> np.ndarray:
    """Crop ``image`` exactly as the image that produced ``placement``."""
    depth_axis = placement["depth_axis"]
    canvas, _ = crop_to_canvas(
        image,
        RetinaBand.from_placement(placement),
        placement["canvas_shape"][depth_axis],
        placement["lateral_multiple"],
        depth_axis,
        mask_outside,
    )
    return canvas


class OCTRetinaPlace(Transform):
    """Inverse of :class:`OCTRetinaCrop`: put a canvas back at its place in a zero image of the original size.

    The placement comes from ``meta["oct_roi"]`` of a MetaTensor input or the ``placement`` argument.
    """

    backend = [TransformBackends.NUMPY]

    def __call__(self, img: NdarrayOrTensor, placement: dict | None = None) -> NdarrayOrTensor:
        array = _check_2d(img, type(self).__name__, in_range=False)
        if placement is None:
            placement = img.meta.get(ROI_KEY) if isinstance(img, MetaTensor) else None
        if placement is None:
            raise ValueError(f"{type(self).__name__}: no placement record (meta[{ROI_KEY!r}] or a placement argument)")
        return _like(place_from_canvas(array[0], placement)[None], img)


class OCTCodec(Transform):
    """Compress and decompress a ``[1, S0, S1]`` image in ``[0, 1]`` with the learned OCT codec.

    The output is the decoded image of the input's shape and type; a MetaTensor gets
    ``meta["oct_codec"]`` with the stream size in bytes, the measured compression ratio (8-bit
    pixels / stream bits) and the nominal ratio of the paper's Eq. (1). RGB inputs go through
    :class:`OCTGrayscale` first (equal channels required).

    Args:
        codec: an :class:`medsecure_transforms.codecs.oct.LearnedOCTCodec` or a model file path.
        device: torch device for a codec loaded from a path.
    """

    backend = [TransformBackends.NUMPY]

    def __init__(self, codec: LearnedOCTCodec | str, device: str = "cpu") -> None:
        self.codec = codec if isinstance(codec, LearnedOCTCodec) else LearnedOCTCodec.load(codec, device=device)
        self.gray = OCTGrayscale()

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        name = type(self).__name__
        _check_2d(img, name, channels=(1, 3))
        array = _check_2d(self.gray(img), name)
        stream = self.codec.compress(np.clip(array[0], *INTENSITY_RANGE))  # within the check's rounding tolerance
        decoded = self.codec.decompress(stream)
        out = _like(decoded[None], img)
        info = {
            "bytes": len(stream),
            "compression_ratio": self.codec.measured_ratio(array.shape[1:], len(stream)),
            "nominal_compression_ratio": self.codec.nominal_ratio(array.shape[1:]),
            "latent_channels": list(self.codec.latent_channels),
        }
        return _record(out, CODEC_KEY, info)


class OCTGrayscaled(KeywiseMapTransform):
    """Dictionary version of :class:`OCTGrayscale`."""

    backend = OCTGrayscale.backend

    def __init__(
        self, keys: KeysCollection, mode: str = "equal", atol: float = 2.0 / 255.0, allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = OCTGrayscale(mode, atol)


class OCTDenoised(KeywiseMapTransform):
    """Dictionary version of :class:`OCTDenoise`."""

    backend = OCTDenoise.backend

    def __init__(
        self,
        keys: KeysCollection,
        h_factor: float = 4.0,
        patch_size: int = 5,
        patch_distance: int = 6,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = OCTDenoise(h_factor, patch_size, patch_distance)


class OCTRetinaCropd(MapTransform):
    """Dictionary version of :class:`OCTRetinaCrop`: the band is found on ``source_key`` and applied to all ``keys``."""

    backend = OCTRetinaCrop.backend

    def __init__(
        self,
        keys: KeysCollection,
        source_key: str = "image",
        depth_size: int = 256,
        lateral_multiple: int = 256,
        depth_axis: int = 1,
        below_bm: int = 24,
        margin: int = 8,
        mask_outside: bool = True,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.source_key = source_key
        self.crop = OCTRetinaCrop(depth_size, lateral_multiple, depth_axis, below_bm, margin, mask_outside)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        if self.source_key not in d:
            raise KeyError(f"OCTRetinaCropd: source key {self.source_key!r} missing; keys are {sorted(map(str, d))}")
        with naming_key(self.source_key):
            _, placement = self.crop.placement_of(d[self.source_key])
        for key in self.key_iterator(d):
            with naming_key(key):
                d[key] = self.crop.apply(d[key], placement)
        d[f"{self.source_key}_{ROI_KEY}"] = placement
        return d


class OCTRetinaPlaced(MapTransform):
    """Dictionary version of :class:`OCTRetinaPlace`; the placement comes from the MetaTensor or ``placement_key``."""

    backend = OCTRetinaPlace.backend

    def __init__(
        self, keys: KeysCollection, placement_key: str = f"image_{ROI_KEY}", allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.placement_key = placement_key
        self.place = OCTRetinaPlace()

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            with naming_key(key):
                d[key] = self.place(d[key], d.get(self.placement_key))
        return d


class OCTCodecd(KeywiseMapTransform):
    """Dictionary version of :class:`OCTCodec`; with ``ratio_key`` the measured ratio is also stored under that key."""

    backend = OCTCodec.backend

    def __init__(
        self,
        keys: KeysCollection,
        codec: LearnedOCTCodec | str,
        device: str = "cpu",
        ratio_key: str | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = OCTCodec(codec, device)
        self.ratio_key = ratio_key

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = super().__call__(data)
        if self.ratio_key is not None:
            key = next(iter(self.key_iterator(d)), None)
            if key is not None and isinstance(d[key], MetaTensor):
                d[self.ratio_key] = d[key].meta[CODEC_KEY]["compression_ratio"]
        return d


OCTGrayscaleD = OCTGrayscaleDict = OCTGrayscaled
OCTDenoiseD = OCTDenoiseDict = OCTDenoised
OCTRetinaCropD = OCTRetinaCropDict = OCTRetinaCropd
OCTRetinaPlaceD = OCTRetinaPlaceDict = OCTRetinaPlaced
OCTCodecD = OCTCodecDict = OCTCodecd
