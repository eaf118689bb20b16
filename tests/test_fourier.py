"""Fourier-magnitude converter vs numpy's FFT and the normalisation worked by hand."""

from __future__ import annotations

import math
import unittest

import numpy as np
import torch
from helpers import INPUT_TYPES
from parameterized import parameterized

from medsecure_transforms.frequency import DOMAINS, fourier_magnitude, to_domain


def numpy_feature(x: np.ndarray, shift: bool, axes=(-2, -1)) -> np.ndarray:
    spectrum = np.fft.fft2(x.astype(np.float64), axes=axes, norm="ortho")
    if shift:
        spectrum = np.fft.fftshift(spectrum, axes=axes)
    h, w = x.shape[axes[0]], x.shape[axes[1]]
    return np.log1p(np.abs(spectrum)) / math.log1p(math.sqrt(h * w))


RNG = np.random.default_rng(0)
IMAGE = RNG.random((2, 3, 12, 10))
INPUTS = [(name, convert(IMAGE)) for name, convert in INPUT_TYPES]


class TestFourierMagnitude(unittest.TestCase):
    @parameterized.expand([(n, x, s) for n, x in INPUTS for s in (True, False)])
    def test_matches_numpy(self, _, x, shift):
        out = fourier_magnitude(x, shift=shift)
        self.assertEqual(tuple(out.shape), IMAGE.shape)
        np.testing.assert_allclose(out.numpy(), numpy_feature(IMAGE, shift), rtol=1e-10, atol=1e-12)

    def test_constant_one_image_peaks_at_one_in_the_centre(self):
        # |F(0,0)| = sum(1) / sqrt(HW) = sqrt(HW): the normalisation bound, every other coefficient is 0.
        out = fourier_magnitude(torch.ones(1, 1, 8, 6), shift=True)
        self.assertAlmostEqual(float(out[0, 0, 4, 3]), 1.0, places=6)
        self.assertAlmostEqual(float(out.sum()), 1.0, places=6)
        unshifted = fourier_magnitude(torch.ones(1, 1, 8, 6), shift=False)
        self.assertAlmostEqual(float(unshifted[0, 0, 0, 0]), 1.0, places=6)

    def test_range_for_unit_interval_images(self):
        out = fourier_magnitude(torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(1)))
        self.assertGreaterEqual(float(out.min()), 0.0)
        self.assertLessEqual(float(out.max()), 1.0)

    def test_volume_axes_are_per_slice(self):
        volume = RNG.random((1, 8, 8, 5))  # [C, H, W, D]
        out = fourier_magnitude(volume, axes=(-3, -2)).numpy()
        for d in range(5):
            np.testing.assert_allclose(out[..., d], numpy_feature(volume[..., d], True), rtol=1e-10, atol=1e-12)

    def test_keeps_dtype_and_casts_integers(self):
        self.assertEqual(fourier_magnitude(torch.rand(1, 4, 4, dtype=torch.float32)).dtype, torch.float32)
        self.assertEqual(fourier_magnitude(np.ones((4, 4), dtype=np.uint8)).dtype, torch.float32)

    def test_gradient_is_finite_at_zero(self):
        x = torch.zeros(1, 1, 8, 8, requires_grad=True)
        to_domain(x, "shifted_frequency").sum().backward()
        self.assertTrue(torch.isfinite(x.grad).all())

    def test_to_domain(self):
        x = torch.as_tensor(IMAGE)
        self.assertIs(to_domain(x, "spatial"), x)
        np.testing.assert_allclose(to_domain(x, "frequency").numpy(), numpy_feature(IMAGE, False), rtol=1e-10)
        np.testing.assert_allclose(to_domain(x, "shifted_frequency").numpy(), numpy_feature(IMAGE, True), rtol=1e-10)
        self.assertEqual(DOMAINS, ("spatial", "frequency", "shifted_frequency"))

    def test_bad_input(self):
        with self.assertRaisesRegex(ValueError, "domain must be one of"):
            to_domain(torch.zeros(4, 4), "wavelet")
        with self.assertRaisesRegex(ValueError, "at least 2 axes"):
            fourier_magnitude(torch.zeros(4))
        with self.assertRaisesRegex(TypeError, "complex"):
            fourier_magnitude(torch.zeros(4, 4, dtype=torch.complex64))


if __name__ == "__main__":
    unittest.main()
