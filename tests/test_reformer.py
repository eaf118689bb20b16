"""Reformer: clipping, denoising training, artefact round trip and bad input."""

from __future__ import annotations

import tempfile
import unittest
from pathlib import Path

import torch
from parameterized import parameterized
from torch import nn

from medsecure_transforms.defenses import FFTDetector, Reformer
from medsecure_transforms.networks import FCDenseNet, MagNetAutoEncoderI, MagNetAutoEncoderII


class Affine(nn.Module):
    def forward(self, x):
        return 3 * x - 1


def images(n: int, c: int = 1, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(seed))


class TestReformer(unittest.TestCase):
    def test_output_is_clipped(self):
        reformer = Reformer("autoencoder2", 1, clip=(0.0, 1.0))
        reformer.model.network = Affine()
        x = images(2)
        torch.testing.assert_close(reformer(x), (3 * x - 1).clamp(0, 1))

    def test_denoising_fit_and_round_trip(self):
        torch.manual_seed(0)
        reformer = Reformer("unet", 2, network_kwargs={"channels": [4, 8]})
        smooth = nn.functional.avg_pool2d(images(8, c=2, size=18), 3, stride=1)
        history = reformer.fit(smooth, epochs=4, batch_size=4, lr=1e-2, noise_std=0.05, progress=False)
        self.assertLess(history[-1], history[0])
        self.assertEqual(reformer.training["noise_std"], 0.05)
        with tempfile.TemporaryDirectory() as tmp:
            reformer.save(Path(tmp) / "r.pt")
            loaded = Reformer.load(Path(tmp) / "r.pt", in_channels=2)
            torch.testing.assert_close(loaded(smooth), reformer(smooth))
            self.assertEqual((loaded.clip, loaded.name), ((0.0, 1.0), "unet"))
            with self.assertRaisesRegex(ValueError, "expects 2 channels, expected 1"):
                Reformer.load(Path(tmp) / "r.pt", in_channels=1)
            with self.assertRaisesRegex(ValueError, "fft_detector' version 1, found format 'medsecure.reformer'"):
                FFTDetector.load(Path(tmp) / "r.pt")

    def test_bad_input(self):
        with self.assertRaisesRegex(ValueError, "clip must be"):
            Reformer("unet", 1, clip=(1.0, 0.0))
        reformer = Reformer("autoencoder1", 3)
        with self.assertRaisesRegex(ValueError, "have 1 channels, expected 3"):
            reformer(images(1))
        with self.assertRaisesRegex(ValueError, "NaN"):
            reformer(torch.full((1, 3, 8, 8), float("nan")))


class TestNetworks(unittest.TestCase):
    @parameterized.expand(
        [
            ("ae1", MagNetAutoEncoderI(3), 16),
            ("ae2", MagNetAutoEncoderII(3), 10),
            ("densenet", FCDenseNet(3, 3, stem_channels=4, growth_rate=2, levels=2), 16),
        ]
    )
    def test_shape(self, _, network, size):
        self.assertEqual(network(torch.rand(2, 3, size, size)).shape, (2, 3, size, size))

    def test_magnet_outputs_are_sigmoid(self):
        out = MagNetAutoEncoderI(1)(torch.randn(1, 1, 8, 8) * 10)
        self.assertTrue(bool(((out > 0) & (out < 1)).all()))

    def test_densenet_size_check(self):
        with self.assertRaisesRegex(ValueError, "divisible by 8"):
            FCDenseNet(1, 1, levels=2)(torch.rand(1, 1, 12, 12))


if __name__ == "__main__":
    unittest.main()
