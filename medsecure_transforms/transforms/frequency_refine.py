"""MONAI adapters for block-DCT quantization defenses: ``FrequencyRefine`` / ``FrequencyRefined``.

Inputs are channel-first ``[C, H, W]`` images or ``[C, H, W, D]`` volumes (quantized slice by slice along ``D``) as
numpy arrays, tensors or MetaTensors, with intensities in ``intensity_range`` (default ``[0, 1]``; values outside it
raise ``ValueError`` instead of being clipped); outputs keep type, dtype, device and metadata, and the MetaTensor
metadata records ``defense`` (the table name) and ``defense_mean_abs_change`` (mean |output - input|, intensity
units).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.config import KeysCollection
from monai.config.type_definitions import NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import Transform
from monai.utils import TransformBackends, convert_to_dst_type

from ..defenses.frequency_refine import BlockDCTQuantizer
from ..defenses.quant_tables import QuantTable
from .keywise import KeywiseMapTransform
from .validation import check_image

DEFAULT_COLOR = "rgb"


class BlockQuantize(Transform):
    """Apply a :class:`~medsecure_transforms.defenses.BlockDCTQuantizer` to one channel-first image.

    Args:
        quantizer: the configured method (tables, colour mode, intensity range, straight-through flag).
        range_given: whether the user stated ``intensity_range``; integer images without it are rejected.

    Raises:
        ValueError: intensities outside the quantizer's ``intensity_range`` (which it would clip), see
            :func:`~medsecure_transforms.transforms.validation.check_image`.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, quantizer: BlockDCTQuantizer, range_given: bool) -> None:
        self.quantizer = quantizer
        self.range_given = range_given

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        x = check_image(  # the quantizer checks finiteness in one reduction
            img, type(self).__name__, finite=False, intensity_range=self.quantizer.intensity_range
        )
        if not x.is_floating_point() and not self.range_given:
            raise ValueError(
                f"{type(self).__name__}: integer image ({x.dtype}) needs an explicit intensity_range, e.g. (0, 255)"
            )
        work = x if x.is_floating_point() else x.to(torch.float32)
        out = self.quantizer(work[None])[0]
        if not x.is_floating_point():
            out = out.round()
        result, *_ = convert_to_dst_type(out, img, dtype=img.dtype)
        if isinstance(result, MetaTensor):
            result.meta["defense"] = self.quantizer.name
            result.meta["defense_mean_abs_change"] = float((out.detach() - work.detach()).abs().mean())
        return result


def _quantizer(table, intensity_range, color, straight_through) -> BlockDCTQuantizer:
    return BlockDCTQuantizer(
        table,
        color=color,
        intensity_range=(0.0, 1.0) if intensity_range is None else intensity_range,
        straight_through=straight_through,
    )


class FrequencyRefine(BlockQuantize):
    """Frequency Refinement: quantize 8x8 block DCT coefficients with a defensive table (Liu et al., 2020).

    Args:
        table: 8x8 steps on the 8-bit scale: a :class:`QuantTable`, a JSON file written by
            ``medsecure calibrate fr``, or a nested list.
        intensity_range: ``(low, high)`` of the input; default ``None`` accepts float images in ``[0, 1]`` and
            rejects integer images. Intensities outside it raise ``ValueError`` (rescale them with
            ``ScaleIntensityd`` / ``ScaleIntensityRanged`` or declare their range here).
        color: ``"rgb"`` (each channel as stored) or ``"ycbcr"`` (JPEG colour transform first; 3 channels).
        straight_through: identity gradient (BPDA) for adaptive attacks through the defense.
    """

    def __init__(
        self,
        table: QuantTable | str | Sequence,
        intensity_range: tuple[float, float] | None = None,
        color: str = DEFAULT_COLOR,
        straight_through: bool = False,
    ) -> None:
        super().__init__(_quantizer(table, intensity_range, color, straight_through), intensity_range is not None)


class BlockQuantized(KeywiseMapTransform):
    """Dictionary wrapper applying an array transform to ``keys``."""

    backend = BlockQuantize.backend

    def __init__(self, keys: KeysCollection, transform: BlockQuantize, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = transform


class FrequencyRefined(BlockQuantized):
    """Dictionary version of :class:`FrequencyRefine` (same arguments after ``keys``)."""

    def __init__(
        self,
        keys: KeysCollection,
        table: QuantTable | str | Sequence,
        intensity_range: tuple[float, float] | None = None,
        color: str = DEFAULT_COLOR,
        straight_through: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, FrequencyRefine(table, intensity_range, color, straight_through), allow_missing_keys)


FrequencyRefineD = FrequencyRefineDict = FrequencyRefined
