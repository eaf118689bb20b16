"""``JPEGQuantize`` colour handling: ``"auto"`` (default) codes RGB in YCbCr and any other channel count per channel,
so grey-level bundles work unchanged; explicit choices are kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from medsecure_transforms.defenses import jpeg_quantizer
from medsecure_transforms.transforms import JPEGQuantize, JPEGQuantized


@pytest.mark.parametrize("shape", [(1, 16, 16), (1, 16, 16, 3), (2, 16, 24)])
def test_auto_on_grey_and_multichannel_is_per_channel_luminance(shape):
    image = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    expected = jpeg_quantizer(50, color="rgb")(image[None])[0]
    out = JPEGQuantize(50)(image)
    torch.testing.assert_close(out, expected)
    assert not torch.equal(out, image)


def test_auto_on_rgb_is_ycbcr_and_explicit_choices_are_kept():
    image = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(1))
    ycbcr = JPEGQuantize(50, color="ycbcr")(image)
    torch.testing.assert_close(JPEGQuantize(50)(image), ycbcr)
    assert not torch.allclose(JPEGQuantize(50, color="rgb")(image), ycbcr)
    with pytest.raises(ValueError, match="needs 3 channels"):
        JPEGQuantize(50, color="ycbcr")(image[:1])
    with pytest.raises(ValueError, match="color must be one of"):
        JPEGQuantize(50, color="yuv")


def test_dictionary_version_on_a_grey_volume_keeps_type_and_metadata():
    volume = MetaTensor(np.full((1, 16, 16, 2), 1200, np.int16), meta={"filename_or_obj": "ct.nii.gz"})
    out = JPEGQuantized("image", 30, intensity_range=(0, 4095))({"image": volume})["image"]
    assert isinstance(out, MetaTensor) and out.dtype == torch.int16 and out.shape == volume.shape
    assert out.meta["filename_or_obj"] == "ct.nii.gz" and "defense" in out.meta
