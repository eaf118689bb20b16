"""FFTDetect / Reform MONAI transforms: policies, metadata, per-slice volumes, input types and bad input."""

from __future__ import annotations

import tempfile
import unittest
from pathlib import Path

import numpy as np
import torch
from helpers import INPUT_TYPES
from monai.data import MetaTensor
from parameterized import parameterized
from torch import nn

from medsecure_transforms.defenses import AdversarialInputRejected, FFTDetector, Reformer
from medsecure_transforms.transforms import FFTDetect, FFTDetectD, FFTDetectd, FFTDetectDict, Reform, Reformd


class Halve(nn.Module):
    def forward(self, x):
        return x / 2


def make_detector(threshold: float) -> FFTDetector:
    """Spatial detector with D(x) = x / 2, i.e. score = RMS(x) / 2, and a hand-set threshold."""
    detector = FFTDetector("autoencoder2", 1, "spatial")
    detector.model.network = Halve()
    detector.threshold = threshold
    return detector


def make_reformer() -> Reformer:
    reformer = Reformer("autoencoder2", 1)
    reformer.model.network = Halve()  # reform(x) = x / 2
    return reformer


DARK = np.full((1, 8, 8), 0.2, dtype=np.float32)  # score 0.1
BRIGHT = np.full((1, 8, 8), 0.8, dtype=np.float32)  # score 0.4


class TestFFTDetect(unittest.TestCase):
    @parameterized.expand(INPUT_TYPES)
    def test_flag_passes_through_and_records(self, _, convert):
        transform = FFTDetect(make_detector(0.25))
        for image, flagged in ((DARK, False), (BRIGHT, True)):
            out, report = transform.inspect(convert(image))
            self.assertIs(type(out), type(convert(image)))
            np.testing.assert_array_equal(np.asarray(out), image)
            self.assertEqual(report["fft_detect_flagged"], flagged)
            self.assertAlmostEqual(report["fft_detect_score"], float(image.mean()) / 2, places=6)
            self.assertEqual(report["fft_detect_detector"], "autoencoder2")
            if isinstance(out, MetaTensor):
                self.assertEqual(out.meta["fft_detect_flagged"], flagged)
                self.assertAlmostEqual(out.meta["fft_detect_threshold"], 0.25)

    @parameterized.expand(INPUT_TYPES)
    def test_reform_flagged_only(self, _, convert):
        transform = FFTDetect(make_detector(0.25), policy="reform", reformer=make_reformer())
        np.testing.assert_allclose(np.asarray(transform(convert(DARK))), DARK)
        np.testing.assert_allclose(np.asarray(transform(convert(BRIGHT))), BRIGHT / 2)

    def test_reform_always(self):
        transform = FFTDetect(make_detector(0.25), policy="reform", reformer=make_reformer(), reform="always")
        out, report = transform.inspect(torch.as_tensor(DARK))
        np.testing.assert_allclose(out.numpy(), DARK / 2)
        self.assertTrue(report["fft_detect_reformed"])

    def test_volume_is_scored_and_reformed_per_slice(self):
        volume = np.concatenate([DARK, BRIGHT, DARK], axis=0).transpose(1, 2, 0)[None]  # [1, 8, 8, 3]
        transform = FFTDetect(make_detector(0.25), policy="reform", reformer=make_reformer())
        out, report = transform.inspect(MetaTensor(torch.as_tensor(volume)))
        self.assertEqual(tuple(out.shape), (1, 8, 8, 3))
        np.testing.assert_allclose(report["fft_detect_slice_scores"], [0.1, 0.4, 0.1], rtol=1e-6)
        np.testing.assert_allclose(out[..., 1].numpy(), BRIGHT[0][None] / 2)  # only the flagged slice reformed
        np.testing.assert_allclose(out[..., 0].numpy(), DARK)

    def test_reject_raise_and_drop(self):
        with self.assertRaises(AdversarialInputRejected) as ctx:
            FFTDetect(make_detector(0.25), policy="reject")(torch.as_tensor(BRIGHT))
        self.assertAlmostEqual(ctx.exception.score, 0.4, places=6)
        dropper = FFTDetect(make_detector(0.25), policy="reject", reject="drop")
        with self.assertLogs("medsecure_transforms.transforms.fft_detect", level="WARNING") as logs:
            self.assertIsNone(dropper(torch.as_tensor(BRIGHT)))
        self.assertIn("rejected", logs.output[0])
        self.assertIsNotNone(dropper(torch.as_tensor(DARK)))

    def test_dictionary_versions(self):
        self.assertIs(FFTDetectD, FFTDetectd)
        self.assertIs(FFTDetectDict, FFTDetectd)
        transform = FFTDetectd("image", make_detector(0.25))
        out = transform({"image": torch.as_tensor(BRIGHT), "label": 1})
        self.assertTrue(out["image_fft_detect"]["fft_detect_flagged"])
        self.assertEqual(out["label"], 1)
        drop = FFTDetectd("image", make_detector(0.25), policy="reject", reject="drop")
        self.assertIsNone(drop({"image": torch.as_tensor(BRIGHT)}))
        reformed = Reformd("image", make_reformer())({"image": MetaTensor(torch.as_tensor(BRIGHT))})
        np.testing.assert_allclose(reformed["image"].numpy(), BRIGHT / 2)
        self.assertEqual(reformed["image"].meta["reformed_by"], "autoencoder2")

    def test_from_artefact_paths(self):
        with tempfile.TemporaryDirectory() as tmp:
            detector = FFTDetector("autoencoder1", 1, "shifted_frequency")
            detector.calibrate(torch.rand(20, 1, 8, 8, generator=torch.Generator().manual_seed(0)))
            detector.save(Path(tmp) / "d.pt")
            Reformer("autoencoder1", 1).save(Path(tmp) / "r.pt")
            transform = FFTDetect(Path(tmp) / "d.pt", "reform", Path(tmp) / "r.pt", expected_domain="shifted_frequency")
            self.assertEqual(transform(torch.rand(1, 8, 8)).shape, (1, 8, 8))
            self.assertEqual(Reform(Path(tmp) / "r.pt")(np.zeros((1, 8, 8), np.float32)).shape, (1, 8, 8))
            with self.assertRaisesRegex(ValueError, "expected 'frequency'"):
                FFTDetect(Path(tmp) / "d.pt", expected_domain="frequency")
            with self.assertRaisesRegex(ValueError, "fft_detector' version 1, found format 'medsecure.reformer'"):
                FFTDetect(Path(tmp) / "r.pt")

    def test_bad_input(self):
        transform = FFTDetectd("image", make_detector(0.25))
        with self.assertRaisesRegex(ValueError, "key 'image'.*NaN"):
            transform({"image": torch.full((1, 8, 8), float("nan"))})
        with self.assertRaisesRegex(TypeError, "key 'image'.*floating-point"):
            transform({"image": np.zeros((1, 8, 8), np.uint8)})
        with self.assertRaisesRegex(ValueError, r"key 'image'.*\[C, H, W\]"):
            transform({"image": torch.zeros(8, 8)})
        with self.assertRaisesRegex(ValueError, "have 3 channels, expected 1"):
            transform({"image": torch.zeros(3, 8, 8)})
        with self.assertRaisesRegex(ValueError, "not calibrated"):
            FFTDetect(FFTDetector("autoencoder2", 1))
        with self.assertRaisesRegex(ValueError, "needs a reformer"):
            FFTDetect(make_detector(0.1), policy="reform")
        with self.assertRaisesRegex(ValueError, "policy must be one of"):
            FFTDetect(make_detector(0.1), policy="ignore")
        with self.assertRaisesRegex(ValueError, "reformer expects 3 channels"):
            FFTDetect(make_detector(0.1), policy="reform", reformer=Reformer("autoencoder2", 3))


if __name__ == "__main__":
    unittest.main()
