"""Issue 17 item 3: transforms refuse what they would clip to garbage (out-of-range intensities, masks, images
without a channel axis) with one MONAI-style message, instead of returning a silently corrupted image."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, ScaleIntensityd
from PIL import Image

from medsecure_transforms.codecs.oct import LearnedOCTCodec
from medsecure_transforms.defenses import FFTDetector, Reformer, jpeg_table
from medsecure_transforms.networks.oct_compression import OCTCodecNet
from medsecure_transforms.transforms import (
    FFTDetect,
    FFTDetectd,
    FrequencyRefine,
    FrequencyRefined,
    JPEGQuantize,
    JPEGQuantized,
    MVCompress3D,
    OCTCodec,
    OCTDenoise,
    OCTGrayscale,
    OCTRetinaCrop,
    OCTRetinaPlace,
    Reform,
    Reformd,
)
from medsecure_transforms.transforms.validation import MAX_CHANNELS, RANGE_TOLERANCE


def detector() -> FFTDetector:
    return FFTDetector("autoencoder2", 1, "spatial", threshold=1.0)


def oct_codec() -> LearnedOCTCodec:
    return LearnedOCTCodec(OCTCodecNet((2, 0, 0, 0), (4, 4, 4, 4, 4, 4)))


# (name, transform, an in-range image [C, H, W] in [0, 1])
RANGED = [
    ("FrequencyRefine", lambda: FrequencyRefine(jpeg_table(50)), (3, 16, 16)),
    ("JPEGQuantize", lambda: JPEGQuantize(85), (3, 16, 16)),
    ("FFTDetect", lambda: FFTDetect(detector()), (1, 16, 16)),
    ("Reform", lambda: Reform(Reformer("autoencoder2", 1)), (1, 16, 16)),
    ("OCTGrayscale", lambda: OCTGrayscale(), (1, 16, 16)),
    ("OCTDenoise", lambda: OCTDenoise(), (1, 16, 16)),
    ("OCTCodec", lambda: OCTCodec(oct_codec()), (1, 64, 64)),
]
ALL = [*RANGED, ("MVCompress3D", lambda: MVCompress3D(), (1, 16, 16, 8))]
ALL += [("OCTRetinaCrop", lambda: OCTRetinaCrop(), (1, 16, 16)), ("OCTRetinaPlace", lambda: OCTRetinaPlace(), None)]


def in_range(shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(0).uniform(0.1, 0.9, shape).astype(np.float32)


@pytest.mark.parametrize(("name", "make", "shape"), RANGED, ids=[r[0] for r in RANGED])
def test_out_of_range_intensities_are_refused(name, make, shape):
    transform = make()
    image = in_range(shape)
    image.flat[0], image.flat[1] = 0.0, 1.0
    transform(image)  # in range: accepted
    edge = image.copy()
    edge.flat[1] = 1.0 + RANGE_TOLERANCE / 2  # rounding of rescaled data: accepted
    transform(edge)
    for bad, found in ((image * 255, r"\[0, 255\]"), (image - 0.01, r"\[-0.01, 0.99\]")):
        with pytest.raises(ValueError, match=rf"^{name}: intensities in {found} exceed .*\(0, 1\).*ScaleIntensityd"):
            transform(bad)
    beyond = image.copy()
    beyond.flat[1] = 1.0 + 2 * RANGE_TOLERANCE
    with pytest.raises(ValueError, match=f"^{name}: intensities in"):
        transform(torch.as_tensor(beyond))


def test_range_messages_name_key_range_and_fix():
    image = {"image": torch.rand(3, 16, 16) * 255}
    with pytest.raises(ValueError) as info:
        FrequencyRefined("image", jpeg_table(50))(image)
    message = str(info.value)
    assert message.startswith("key 'image': FrequencyRefine: intensities in [")
    for part in ("exceed intensity_range=(0, 1)", "ScaleIntensityd / ScaleIntensityRanged", "set intensity_range"):
        assert part in message
    with pytest.raises(ValueError, match="^key 'image': JPEGQuantize: .*intensity_range=\\(0, 1\\)"):
        JPEGQuantized("image", 50)(image)
    with pytest.raises(ValueError, match="^key 'scan': FFTDetect: .*intensity_range=\\(0, 1\\)"):
        FFTDetectd("scan", detector())({"scan": torch.rand(1, 16, 16) * 255})
    with pytest.raises(ValueError, match="^key 'scan': Reform: .*the expected range \\(0, 1\\) .*; rescale it first"):
        Reformd("scan", Reformer("autoencoder2", 1))({"scan": torch.rand(1, 16, 16) + 1})
    # a declared range is honoured
    assert FrequencyRefine(jpeg_table(50), intensity_range=(0, 255))(image["image"]).shape == (3, 16, 16)
    with pytest.raises(ValueError, match=r"FFTDetect: .*exceed intensity_range=\(-1, 1\)"):
        FFTDetect(detector(), intensity_range=(-1, 1))(torch.full((1, 16, 16), 2.0))


def test_load_png_then_frequency_refine_without_scaling_fails(tmp_path):
    """The obvious pipeline on a 0-255 PNG: it turned 97 % of the pixels to 1.0; now it names the fix."""
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)).save(tmp_path / "photo.png")
    load = [LoadImaged("image"), EnsureChannelFirstd("image")]
    defend = FrequencyRefined("image", jpeg_table(50))
    with pytest.raises(RuntimeError, match="applying transform") as info:  # MONAI's Compose wraps the error
        Compose([*load, defend])({"image": str(tmp_path / "photo.png")})
    assert isinstance(info.value.__cause__, ValueError)
    assert str(info.value.__cause__).startswith("key 'image': FrequencyRefine: intensities in [0, 255] exceed")
    out = Compose([*load, ScaleIntensityd("image"), defend])({"image": str(tmp_path / "photo.png")})
    assert out["image"].shape == (3, 40, 32) and float(out["image"].max()) <= 1.0


@pytest.mark.parametrize(("name", "make", "shape"), ALL, ids=[r[0] for r in ALL])
def test_masks_are_refused(name, make, shape):
    mask = np.zeros(shape or (1, 16, 16), bool)
    with pytest.raises(TypeError, match=f"^{name}: expected an intensity image, got dtype torch.bool"):
        make()(mask)


def test_volume_without_channel_axis_is_refused(tmp_path):
    """A [H, W, D] volume is not read as H channels of a 2D image (FrequencyRefine accepts both layouts)."""
    volume = np.random.default_rng(0).uniform(0, 1, (40, 32, 12)).astype(np.float32)
    nib.save(nib.Nifti1Image(volume, np.eye(4)), tmp_path / "volume.nii.gz")
    loaded = LoadImaged("image")({"image": str(tmp_path / "volume.nii.gz")})
    with pytest.raises(ValueError, match=r"^key 'image': FrequencyRefine: shape \(40, 32, 12\) has no channel axis"):
        FrequencyRefined("image", jpeg_table(50))(loaded)
    with pytest.raises(ValueError, match="no channel axis.*add EnsureChannelFirstd"):
        FrequencyRefine(jpeg_table(50))(volume)  # no metadata: more than MAX_CHANNELS channels
    with pytest.raises(ValueError, match=r"got shape \(40, 32, 12\) \(no channel axis\? add EnsureChannelFirstd"):
        MVCompress3D()(volume)  # 3-level codec: a [C, H, W, D] image expected
    with pytest.raises(ValueError, match=r"got shape \(40, 32\) \(no channel axis\? add EnsureChannelFirstd"):
        OCTDenoise()(volume[..., 0])
    with_channel = EnsureChannelFirstd("image")(loaded)["image"]
    assert FrequencyRefine(jpeg_table(50))(with_channel).shape == (1, 40, 32, 12)


def test_channel_rule_trusts_the_reader_and_declared_channels(tmp_path):
    many = np.random.default_rng(0).uniform(0, 1, (MAX_CHANNELS + 2, 16, 16)).astype(np.float32)
    with pytest.raises(ValueError, match=f"read as {MAX_CHANNELS + 2} channels"):
        FrequencyRefine(jpeg_table(50))(many)
    recorded = MetaTensor(torch.as_tensor(many), meta={"original_channel_dim": -1})  # a reader found the axis
    assert FrequencyRefine(jpeg_table(50))(recorded).shape == many.shape
    assert FrequencyRefine(jpeg_table(50))(many[:MAX_CHANNELS]).shape == (MAX_CHANNELS, 16, 16)
