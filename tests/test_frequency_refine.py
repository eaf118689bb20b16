"""FR / JPEG quantizers and their MONAI transforms: Pillow JPEG, the authors' per-block loop, metadata, BPDA."""

from __future__ import annotations

import io
import tempfile
import unittest
from pathlib import Path

import numpy as np
import scipy.fft
import torch
from helpers import input_types
from monai.data import MetaTensor
from parameterized import parameterized
from PIL import Image
from scipy.ndimage import gaussian_filter

from medsecure_transforms.defenses import BlockDCTQuantizer, fixed_layout_table, frequency_refine, jpeg_quantizer
from medsecure_transforms.transforms import (
    FrequencyRefine,
    FrequencyRefineD,
    FrequencyRefined,
    FrequencyRefineDict,
    JPEGQuantize,
    JPEGQuantized,
)

FR_TABLE = fixed_layout_table((30, 5, 80))


def smooth_rgb(h=40, w=56, seed=0) -> np.ndarray:
    """A uint8 RGB image with natural-image-like spectrum, [H, W, 3]."""
    noise = np.random.default_rng(seed).random((h, w, 3)) * 255
    return (gaussian_filter(noise, (2, 2, 0)) * 3 - 250).clip(0, 255).astype(np.uint8)


def authors_loop(img: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Per-channel, per-block DCT quantization as described in the paper (level shift 128 as JPEG), [H, W, C]."""
    out = np.empty(img.shape, dtype=np.float64)
    for c in range(img.shape[2]):
        for i in range(0, img.shape[0], 8):
            for j in range(0, img.shape[1], 8):
                block = img[i : i + 8, j : j + 8, c] - 128.0
                coef = scipy.fft.dctn(block, norm="ortho")
                out[i : i + 8, j : j + 8, c] = scipy.fft.idctn(np.round(coef / table) * table, norm="ortho") + 128
    return out.clip(0, 255)


def chw(img: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(img.transpose(2, 0, 1))


class TestQuantizer(unittest.TestCase):
    def test_fr_equals_per_block_reference(self):
        # non-integer intensities: integer blocks can sit exactly on a rounding tie (e.g. DC sum = 120 * odd)
        img = smooth_rgb() + np.random.default_rng(5).uniform(0, 1, size=(40, 56, 3))
        out = frequency_refine(FR_TABLE, intensity_range=(0, 255))(torch.tensor(chw(img), dtype=torch.float64)[None])
        np.testing.assert_allclose(out[0].numpy(), chw(authors_loop(img, np.array(FR_TABLE.steps))), atol=1e-8)

    @parameterized.expand([(85,), (50,)])
    def test_jpeg_matches_pillow_round_trip(self, quality):
        img = smooth_rgb(seed=quality)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=quality, subsampling=0)
        ref = chw(np.asarray(Image.open(buf), dtype=np.float64))
        ours = jpeg_quantizer(quality, intensity_range=(0, 255))(torch.tensor(chw(img), dtype=torch.float64)[None])[0]
        diff_to_ref = np.abs(ours.numpy() - ref).mean()
        jpeg_distortion = np.abs(chw(img) - ref).mean()
        # libjpeg rounds YCbCr and coefficients to integers; what remains must be far below JPEG's own distortion
        self.assertLess(diff_to_ref, 0.5 * jpeg_distortion)
        self.assertLess(diff_to_ref, 1.5)

    def test_huge_steps_flatten_to_mid_grey(self):
        out = BlockDCTQuantizer(np.full((8, 8), 1e6))(torch.rand(1, 3, 16, 16))
        np.testing.assert_allclose(out.numpy(), 128 / 255, atol=1e-6)

    def test_unit_steps_barely_change_8bit_images(self):
        x = torch.tensor(chw(smooth_rgb()), dtype=torch.float64)[None] / 255
        out = BlockDCTQuantizer(np.ones((8, 8)))(x)
        self.assertLess(float((out - x).abs().max()) * 255, 4 * 0.5 + 1e-9)  # 64 coefficients, error <= 0.5 each

    def test_volume_is_processed_slice_by_slice(self):
        vol = torch.rand(1, 2, 16, 24, 3, dtype=torch.float64)
        fr = frequency_refine(FR_TABLE)
        out = fr(vol)
        for k in range(3):
            np.testing.assert_allclose(out[..., k].numpy(), fr(vol[..., k]).numpy(), atol=1e-12)

    def test_straight_through_gradient_is_identity(self):
        x = torch.rand(2, 3, 16, 16, requires_grad=True)
        weights = torch.randn(2, 3, 16, 16)
        (frequency_refine(FR_TABLE, straight_through=True)(x) * weights).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), weights.numpy())

    def test_state_round_trip(self):
        q = jpeg_quantizer(85, intensity_range=(0, 255))
        again = BlockDCTQuantizer.from_dict(q.to_dict())
        x = torch.rand(1, 3, 16, 16) * 255
        np.testing.assert_array_equal(again(x).numpy(), q(x).numpy())

    @parameterized.expand(
        [
            ("nan", torch.full((1, 3, 16, 16), float("nan")), {}, ValueError, "NaN"),
            ("small", torch.rand(1, 3, 7, 16), {}, ValueError, "smaller than one 8x8"),
            ("int", torch.zeros(1, 3, 16, 16, dtype=torch.int64), {}, TypeError, "floating-point"),
            ("ycbcr grey", torch.rand(1, 1, 16, 16), {"color": "ycbcr"}, ValueError, "3 channels"),
            ("rank", torch.rand(3, 16, 16), {}, ValueError, r"\[B, C, H, W\]"),
        ]
    )
    def test_bad_input(self, _, x, kwargs, err, message):
        with self.assertRaisesRegex(err, message):
            BlockDCTQuantizer(FR_TABLE, **kwargs)(x)

    def test_bad_parameters(self):
        with self.assertRaisesRegex(ValueError, "intensity_range"):
            BlockDCTQuantizer(FR_TABLE, intensity_range=(1, 1))
        with self.assertRaisesRegex(ValueError, "color"):
            BlockDCTQuantizer(FR_TABLE, color="lab")
        with self.assertRaisesRegex(ValueError, "8x8"):
            BlockDCTQuantizer(np.ones((8, 7)))


INPUTS = input_types(meta={"filename_or_obj": "img.png"})


class TestTransforms(unittest.TestCase):
    @parameterized.expand(INPUTS)
    def test_array_transform_keeps_type_and_matches_method(self, _, make):
        img = chw(smooth_rgb()).astype(np.float32) / 255
        out = FrequencyRefine(FR_TABLE)(make(img))
        self.assertIs(type(out), type(make(img)))
        self.assertEqual(out.dtype, make(img).dtype)
        expected = frequency_refine(FR_TABLE)(torch.tensor(img)[None])[0].numpy()
        np.testing.assert_allclose(np.asarray(out), expected, atol=1e-6)
        if isinstance(out, MetaTensor):
            self.assertEqual(out.meta["filename_or_obj"], "img.png")
            self.assertEqual(out.meta["defense"], FR_TABLE.name)
            self.assertAlmostEqual(out.meta["defense_mean_abs_change"], float(np.abs(expected - img).mean()), 5)

    @parameterized.expand(INPUTS)
    def test_jpeg_uint8_with_range_stays_uint8(self, _, make):
        img = chw(smooth_rgb())
        out = JPEGQuantize(85, intensity_range=(0, 255))(make(img))
        self.assertEqual(np.asarray(out).dtype, np.uint8)
        self.assertLess(np.abs(np.asarray(out, dtype=float) - img).mean(), 6)

    def test_integer_without_range_is_rejected(self):
        with self.assertRaisesRegex(ValueError, "intensity_range"):
            FrequencyRefine(FR_TABLE)(chw(smooth_rgb()))

    def test_dict_aliases_and_key_in_errors(self):
        self.assertIs(FrequencyRefineD, FrequencyRefined)
        self.assertIs(FrequencyRefineDict, FrequencyRefined)
        data = {"image": torch.rand(3, 16, 16), "label": torch.ones(1, 16, 16)}
        out = FrequencyRefined("image", FR_TABLE.to_dict()["steps"], intensity_range=(0, 1))(data)
        self.assertIs(out["label"], data["label"])
        self.assertFalse(torch.equal(out["image"], data["image"]))
        with self.assertRaisesRegex(ValueError, "key 'image'.*NaN"):
            JPEGQuantized("image", 85)({"image": torch.full((3, 16, 16), float("nan"))})
        with self.assertRaisesRegex(ValueError, r"key 'image'.*\[C, H, W\]"):
            FrequencyRefined("image", FR_TABLE)({"image": torch.rand(16, 16)})

    def test_table_json_path(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = FR_TABLE.save(Path(tmp) / "fr.json")
            x = torch.rand(3, 16, 16)
            np.testing.assert_array_equal(FrequencyRefine(str(path))(x).numpy(), FrequencyRefine(FR_TABLE)(x).numpy())

    def test_straight_through_transform_passes_gradients(self):
        x = torch.rand(3, 16, 16, requires_grad=True)
        FrequencyRefine(FR_TABLE, straight_through=True)(x).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), np.ones((3, 16, 16)))


if __name__ == "__main__":
    unittest.main()
