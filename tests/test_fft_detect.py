"""FFTDetect detector: score formula, FPR calibration worked by hand, artefact round trip and bad input."""

from __future__ import annotations

import math
import tempfile
import unittest
from pathlib import Path

import numpy as np
import torch
from parameterized import parameterized
from torch import nn

from medsecure_transforms.defenses import FFTDetector, min_calibration_size, threshold_at_fpr


class Halve(nn.Module):
    """D(x) = x / 2, so RE = ||x'/2||_p / N^(1/p): an independent expectation for the score."""

    def forward(self, x):
        return x / 2


def numpy_features(x: np.ndarray, domain: str) -> np.ndarray:
    if domain == "spatial":
        return x
    spectrum = np.fft.fft2(x, norm="ortho")
    if domain == "shifted_frequency":
        spectrum = np.fft.fftshift(spectrum, axes=(-2, -1))
    return np.log1p(np.abs(spectrum)) / math.log1p(math.sqrt(x.shape[-1] * x.shape[-2]))


def images(n: int, c: int = 1, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(seed))


class TestThreshold(unittest.TestCase):
    def test_twenty_scores_at_five_percent(self):
        # k = floor(0.05 * 20) = 1 allowed false positive: t_re is the second largest score (19).
        threshold, stats = threshold_at_fpr(np.arange(1.0, 21.0), 0.05)
        self.assertEqual(threshold, 19.0)
        self.assertEqual(stats["allowed_false_positives"], 1)
        self.assertAlmostEqual(stats["validation_fpr"], 1 / 20)
        self.assertEqual((stats["min"], stats["max"], stats["n"]), (1.0, 20.0, 20))

    def test_twenty_five_scores_at_ten_percent(self):
        scores = np.random.default_rng(3).permutation(np.arange(25.0))
        threshold, stats = threshold_at_fpr(scores, 0.1)  # k = 2: the 23rd smallest value, 22
        self.assertEqual(threshold, 22.0)
        self.assertAlmostEqual(stats["validation_fpr"], 2 / 25)

    def test_ties_never_exceed_the_rate(self):
        threshold, stats = threshold_at_fpr([1.0] * 18 + [5.0, 5.0], 0.05)
        self.assertEqual(threshold, 5.0)
        self.assertEqual(stats["validation_fpr"], 0.0)

    def test_too_few_validation_images(self):
        self.assertEqual(min_calibration_size(0.05), 20)
        self.assertEqual(min_calibration_size(0.1), 10)
        with self.assertRaisesRegex(ValueError, "needs at least 20 clean validation images, got 19"):
            threshold_at_fpr(np.arange(19.0), 0.05)

    @parameterized.expand([("zero", 0.0), ("one", 1.0), ("negative", -0.1)])
    def test_bad_rate(self, _, t_fp):
        with self.assertRaisesRegex(ValueError, "t_fp must be in"):
            threshold_at_fpr(np.arange(30.0), t_fp)

    def test_nan_scores(self):
        with self.assertRaisesRegex(ValueError, "NaN"):
            threshold_at_fpr([1.0] * 19 + [float("nan")], 0.05)


class TestFFTDetector(unittest.TestCase):
    @parameterized.expand([(d, p) for d in ("spatial", "frequency", "shifted_frequency") for p in (1.0, 2.0, math.inf)])
    def test_score_formula(self, domain, p):
        detector = FFTDetector("autoencoder2", 2, domain, p=p)
        detector.model.network = Halve()
        x = images(3, c=2)
        diff = numpy_features(x.double().numpy(), domain).reshape(3, -1) / 2
        expected = np.abs(diff).max(1) if math.isinf(p) else (np.abs(diff) ** p).mean(1) ** (1 / p)
        np.testing.assert_allclose(detector.scores(x).detach().numpy(), expected, rtol=1e-5)

    def test_calibrate_detect_and_round_trip(self):
        torch.manual_seed(0)
        detector = FFTDetector("autoencoder1", 1, "shifted_frequency")
        history = detector.fit(images(8), epochs=2, batch_size=4, progress=False)
        self.assertEqual(len(history), 2)
        val = images(20, seed=1)
        threshold = detector.calibrate(val, t_fp=0.05)
        scores = detector.score_batches(val)
        self.assertEqual(int((scores > threshold).sum()), 1)  # exactly floor(0.05 * 20) false positives
        noisy = (val + 0.3 * torch.randn(val.shape, generator=torch.Generator().manual_seed(2))).clamp(0, 1)
        _, flagged = detector.detect(noisy)
        self.assertEqual(flagged.dtype, torch.bool)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "detector.pt"
            detector.save(path)
            loaded = FFTDetector.load(path, domain="shifted_frequency", in_channels=1)
            self.assertEqual(loaded.threshold, threshold)
            self.assertEqual(loaded.calibration, detector.calibration)
            self.assertEqual((loaded.p, loaded.name), (2.0, "autoencoder1"))
            torch.testing.assert_close(loaded.score_batches(val), scores)
            with self.assertRaisesRegex(ValueError, "domain 'shifted_frequency', expected 'spatial'"):
                FFTDetector.load(path, domain="spatial")
            with self.assertRaisesRegex(ValueError, "expects 1 channels, expected 3"):
                FFTDetector.load(path, in_channels=3)

    def test_training_reduces_the_loss(self):
        torch.manual_seed(0)
        detector = FFTDetector("unet", 1, "spatial", network_kwargs={"channels": [4, 8]})
        smooth = torch.nn.functional.avg_pool2d(images(16, size=18), 3, stride=1)
        history = detector.fit(smooth, epochs=6, batch_size=8, lr=1e-2, progress=False)
        self.assertLess(history[-1], 0.5 * history[0])

    def test_bad_input(self):
        detector = FFTDetector("autoencoder1", 1, "frequency")
        with self.assertRaisesRegex(RuntimeError, "no threshold"):
            detector.detect(images(2))
        with self.assertRaisesRegex(ValueError, "have 3 channels, expected 1"):
            detector.scores(images(2, c=3))
        with self.assertRaisesRegex(ValueError, "NaN"):
            detector.scores(torch.full((1, 1, 8, 8), float("nan")))
        with self.assertRaisesRegex(ValueError, r"\[B, C, H, W\]"):
            detector.scores(torch.zeros(1, 8, 8))
        with self.assertRaisesRegex(ValueError, "divisible by 2"):
            detector.scores(torch.zeros(1, 1, 7, 8))
        with self.assertRaisesRegex(TypeError, "floating point"):
            detector.scores(torch.zeros(1, 1, 8, 8, dtype=torch.uint8))
        with self.assertRaisesRegex(ValueError, "needs at least 20"):
            detector.calibrate(images(10), 0.05)
        with self.assertRaisesRegex(ValueError, "p must be >= 1"):
            FFTDetector("unet", 1, p=0.5)
        with self.assertRaisesRegex(ValueError, "domain must be one of"):
            FFTDetector("unet", 1, domain="wavelet")
        with self.assertRaisesRegex(ValueError, "arch must be one of"):
            FFTDetector("resnet", 1)

    def test_corrupt_artefacts(self):
        with tempfile.TemporaryDirectory() as tmp:
            garbage = Path(tmp) / "garbage.pt"
            garbage.write_bytes(b"not a torch file")
            with self.assertRaisesRegex(ValueError, "not a readable torch artefact"):
                FFTDetector.load(garbage)
            wrong = Path(tmp) / "wrong.pt"
            torch.save({"weights": torch.zeros(1)}, wrong)
            with self.assertRaisesRegex(ValueError, r"'state', 'version'\], found \['weights'\]"):
                FFTDetector.load(wrong)
            code = Path(tmp) / "code.pt"
            torch.save({"state_dict": {}, "metadata": Halve()}, code)  # a pickled object: weights_only refuses it
            with self.assertRaisesRegex(ValueError, "not a readable torch artefact"):
                FFTDetector.load(code)


if __name__ == "__main__":
    unittest.main()
