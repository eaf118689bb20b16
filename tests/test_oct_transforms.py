"""OCT preprocessing (retina band, canvas placement, NLM) and the MONAI transforms of the OCT codec."""

from __future__ import annotations

import unittest

import numpy as np
import torch
from helpers import input_types
from monai.data import MetaTensor
from parameterized import parameterized

from medsecure_transforms.codecs.oct import LearnedOCTCodec
from medsecure_transforms.networks.oct_compression import OCTCodecNet
from medsecure_transforms.preprocessing.oct_retina import (
    crop_to_canvas,
    denoise_speckle,
    find_retina_band,
    place_from_canvas,
)
from medsecure_transforms.transforms import (
    OCTCodec,
    OCTCodecd,
    OCTDenoise,
    OCTGrayscale,
    OCTRetinaCrop,
    OCTRetinaCropd,
    OCTRetinaPlace,
    OCTRetinaPlaced,
)

ILM, BM = 40, 90


def synthetic_bscan(depth: int = 160, lateral: int = 120, seed: int = 0) -> np.ndarray:
    """``[depth, lateral]``: dark background, retina rows ILM..BM, brightest line at BM (Bruch's membrane)."""
    rng = np.random.default_rng(seed)
    img = 0.05 + 0.02 * rng.random((depth, lateral))
    img[ILM:BM] = 0.5
    img[BM - 2 : BM + 2] = 0.9
    return img.astype(np.float32)


SCAN_TYPES = dict(input_types(meta={"filename_or_obj": "scan.png"}))
KINDS = [(kind,) for kind in SCAN_TYPES]


def as_type(kind: str, array: np.ndarray):
    return SCAN_TYPES[kind](array)


class TestRetinaBand(unittest.TestCase):
    @parameterized.expand([(0,), (1,)])
    def test_boundaries_found(self, depth_axis):
        img = synthetic_bscan()
        band = find_retina_band(img if depth_axis == 0 else img.T, depth_axis, below_bm=10, margin=4)
        # smoothing (sigma 3) moves the Otsu crossing by a few samples at most
        self.assertLessEqual(abs(int(np.median(band.upper)) - (ILM - 4)), 3)
        self.assertLessEqual(abs(int(np.median(band.lower)) - (BM + 10)), 2)

    def test_flat_image_gives_whole_depth(self):
        band = find_retina_band(np.zeros((50, 20)))
        self.assertEqual((band.start, band.stop), (0, 50))

    @parameterized.expand([(0,), (1,)])
    def test_place_inverts_crop_inside_band(self, depth_axis):
        img = synthetic_bscan()
        img = img if depth_axis == 0 else img.T
        band = find_retina_band(img, depth_axis)
        canvas, placement = crop_to_canvas(img, band, 128, 64, depth_axis)
        expected_shape = (128, 128) if depth_axis == 0 else (128, 128)
        self.assertEqual(canvas.shape, expected_shape)
        back = place_from_canvas(canvas, placement)
        inside = band.mask(img.shape[depth_axis], depth_axis)
        np.testing.assert_array_equal(back[inside], img[inside])
        self.assertTrue(np.all(back[~inside] == 0))

    def test_tall_band_keeps_centre(self):
        img = synthetic_bscan()
        band = find_retina_band(img)
        canvas, placement = crop_to_canvas(img, band, 32, 32)
        self.assertEqual(placement["source_depth"][1] - placement["source_depth"][0], 32)
        self.assertEqual(canvas.shape[0], 32)

    def test_nan_rejected(self):
        img = synthetic_bscan()
        img[0, 0] = np.nan
        with self.assertRaisesRegex(ValueError, "NaN"):
            find_retina_band(img)


class TestDenoise(unittest.TestCase):
    def test_reduces_noise_keeps_mean(self):
        rng = np.random.default_rng(0)
        clean = np.full((64, 64), 0.5)
        noisy = np.clip(clean * rng.gamma(10.0, 0.1, clean.shape), 0, 1)  # multiplicative speckle, mean 1
        out = denoise_speckle(noisy)
        self.assertLess(np.std(out - clean), 0.5 * np.std(noisy - clean))
        self.assertAlmostEqual(float(out.mean()), float(noisy.mean()), delta=0.02)


class TestTransforms(unittest.TestCase):
    @parameterized.expand(KINDS)
    def test_grayscale_equal_channels(self, kind):
        gray = synthetic_bscan()[None]
        out = OCTGrayscale()(as_type(kind, np.repeat(gray, 3, axis=0)))
        self.assertEqual(tuple(out.shape), gray.shape)
        np.testing.assert_allclose(np.asarray(out), gray)
        if kind == "metatensor":
            self.assertEqual(out.meta["filename_or_obj"], "scan.png")

    def test_grayscale_colour_refused_or_converted(self):
        rgb = np.stack([np.zeros((8, 8)), np.ones((8, 8)), np.zeros((8, 8))]).astype(np.float32)
        with self.assertRaisesRegex(ValueError, "luminance"):
            OCTGrayscale()(rgb)
        np.testing.assert_allclose(OCTGrayscale("luminance")(rgb), np.full((1, 8, 8), 0.587), rtol=1e-6)

    @parameterized.expand(KINDS)
    def test_crop_then_place(self, kind):
        img = synthetic_bscan().T[None]  # MONAI PILReader layout [1, W, H]
        crop = OCTRetinaCrop(depth_size=128, lateral_multiple=64)
        canvas = crop(as_type(kind, img))
        self.assertEqual(tuple(canvas.shape), (1, 128, 128))
        self.assertEqual(type(canvas), type(as_type(kind, img)))
        placement = canvas.meta["oct_roi"] if kind == "metatensor" else crop.last_placement
        back = OCTRetinaPlace()(canvas, None if kind == "metatensor" else placement)
        self.assertEqual(tuple(back.shape), img.shape)
        # the retina rows come back unchanged
        np.testing.assert_array_equal(np.asarray(back)[0, :, ILM:BM], img[0, :, ILM:BM])

    def test_dict_crop_aligns_label_and_places_back(self):
        img = synthetic_bscan().T[None]
        label = np.zeros_like(img)
        label[0, 10:20, ILM + 5 : ILM + 15] = 3
        d = OCTRetinaCropd(["image", "label"], depth_size=128, lateral_multiple=64)({"image": img, "label": label})
        self.assertEqual(d["label"].shape, d["image"].shape)
        self.assertEqual(int((np.asarray(d["label"]) == 3).sum()), 100)
        back = OCTRetinaPlaced(["label"])(d)
        np.testing.assert_array_equal(np.asarray(back["label"]), label)

    @parameterized.expand(
        [(np.zeros((2, 3, 8, 8), np.float32), "shape"), (np.zeros((2, 8, 8), np.float32), "shape"), ([1, 2], "numpy")]
    )
    def test_bad_input(self, img, msg):
        with self.assertRaisesRegex((ValueError, TypeError), msg):
            OCTDenoise()(img)

    def test_dict_error_names_key(self):
        with self.assertRaisesRegex(ValueError, "key 'image'"):
            OCTRetinaCropd(["image"])({"image": np.zeros((2, 8, 8, 8), np.float32)})

    @parameterized.expand(KINDS)
    def test_codec_transform(self, kind):
        torch.manual_seed(0)
        codec = LearnedOCTCodec(OCTCodecNet((2, 1, 0, 0), (4, 4, 4, 4, 4, 4)))
        img = np.repeat(synthetic_bscan(64, 96)[None], 3, axis=0)  # RGB export of a gray B-scan
        out = OCTCodec(codec)(as_type(kind, img))
        self.assertEqual(tuple(out.shape), (1, 64, 96))
        expected = codec.decompress(codec.compress(img[0]))
        np.testing.assert_allclose(np.asarray(out)[0], expected, atol=1e-6)
        if kind == "metatensor":
            info = out.meta["oct_codec"]
            self.assertAlmostEqual(info["compression_ratio"], 64 * 96 / info["bytes"])
            self.assertAlmostEqual(info["nominal_compression_ratio"], codec.nominal_ratio((64, 96)))

    def test_codec_dict_ratio_key(self):
        torch.manual_seed(0)
        codec = LearnedOCTCodec(OCTCodecNet((2, 0, 0, 0), (4, 4, 4, 4, 4, 4)))
        img = MetaTensor(torch.from_numpy(synthetic_bscan(64, 64)[None]))
        d = OCTCodecd("image", codec, ratio_key="cr")({"image": img})
        self.assertEqual(d["cr"], d["image"].meta["oct_codec"]["compression_ratio"])


if __name__ == "__main__":
    unittest.main()
