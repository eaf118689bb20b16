"""The config-only integration: the ``guard`` overlay merged over ``inference.json`` appends a working guard."""

from __future__ import annotations

import tempfile
import unittest
from pathlib import Path

import torch
from monai.bundle import ConfigParser

from medsecure_transforms import overlays
from medsecure_transforms.defenses import FFTDetector, Reformer
from medsecure_transforms.transforms import FFTDetectd

CONFIGS = Path(__file__).resolve().parents[1] / "bundles" / "cardiac_slice_seg" / "configs"


class TestGuardedOverlay(unittest.TestCase):
    def test_overlay_appends_the_guard(self):
        with tempfile.TemporaryDirectory() as tmp:
            guard = Path(tmp) / "models" / "guard"
            guard.mkdir(parents=True)
            detector = FFTDetector("autoencoder2", 1, "shifted_frequency")
            detector.calibrate(torch.rand(20, 1, 16, 16, generator=torch.Generator().manual_seed(0)))
            detector.save(guard / "detector_unet_shifted_frequency.pt")
            Reformer("autoencoder2", 1).save(guard / "reformer_unet.pt")
            parser = ConfigParser()
            parser.read_config([str(CONFIGS / "inference.json"), str(overlays.path("guard"))])
            parser["bundle_root"] = tmp
            parser["guard_detector"] = str(guard / "detector_unet_shifted_frequency.pt")
            parser["guard_reformer"] = str(guard / "reformer_unet.pt")
            parser["guard_policy"] = "reform"
            transforms = parser.get_parsed_content("preprocessing").transforms
            self.assertIsInstance(transforms[-1], FFTDetectd)
            self.assertEqual(transforms[-1].transform.policy, "reform")
            out = transforms[-1]({"image": torch.rand(1, 16, 16, 3)})
            self.assertEqual(tuple(out["image"].shape), (1, 16, 16, 3))
            self.assertEqual(len(out["image_fft_detect"]["fft_detect_slice_scores"]), 3)


if __name__ == "__main__":
    unittest.main()
