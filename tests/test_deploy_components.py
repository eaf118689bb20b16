"""The app's volume defense and detector (medsecure_transforms.deploy.components)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from parameterized import parameterized

from medsecure_transforms.defenses import FFTDetector, QuantTable
from medsecure_transforms.deploy.components import (
    DEFAULT_TABLE,
    VolumeDetector,
    axial_slices,
    calibrate_detector,
    default_defense,
)


def _volumes(n, seed, shape=(1, 12, 20, 4)):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(shape, generator=g) * 0.2 + 0.4 for _ in range(n)]


class TestAxialSlices:
    def test_slices_are_centred_on_the_canvas(self):
        volume = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(1, 2, 3, 4)
        slices = axial_slices(volume, (6, 8))
        assert slices.shape == (4, 1, 6, 8)
        for z in range(4):
            np.testing.assert_array_equal(slices[z, 0, 2:4, 2:5], volume[0, :, :, z])
        assert float(slices.abs().sum()) == float(volume.abs().sum())

    @parameterized.expand([("3d", torch.zeros(2, 3, 4), "channel-first volume"),
                           ("too large", torch.zeros(1, 70, 3, 4), "larger than the detector canvas")])
    def test_bad_input(self, _, volume, message):
        with pytest.raises(ValueError, match=message):
            axial_slices(volume, (64, 64))


def test_volume_score_is_max_slice_score_and_threshold_holds_fpr():
    train, validation = _volumes(2, seed=1), _volumes(10, seed=2)
    detector = calibrate_detector(train, validation, canvas=(16, 24), t_fp=0.1, epochs=1, seed=0)
    verdict_of = VolumeDetector(detector)
    flagged = [verdict_of(v)["flagged"] for v in validation]
    assert sum(flagged) == 1  # floor(0.1 * 10) clean validation volumes above the threshold (scores are distinct)
    volume = validation[0]
    per_slice = detector.score_batches(axial_slices(volume, (16, 24)))  # independent: score each slice, take max
    verdict = verdict_of(volume)
    assert verdict["score"] == pytest.approx(float(per_slice.max()))
    assert verdict["worst_slice"] == int(per_slice.argmax())
    assert verdict["threshold"] == detector.threshold
    noisy = (volume + 0.3 * torch.randn(volume.shape, generator=torch.Generator().manual_seed(3))).clamp(0, 1)
    assert verdict_of(noisy)["score"] > verdict["score"]  # broadband noise raises the Fourier reconstruction error


def test_uncalibrated_detector_rejected():
    with pytest.raises(ValueError, match="volume-level threshold"):
        VolumeDetector(FFTDetector("unet", in_channels=1, network_kwargs={"channels": [4, 8]}))


def test_default_defense_uses_the_shipped_table():
    if not DEFAULT_TABLE.is_file():
        pytest.skip("shipped DQ-table not generated (python -m medsecure_transforms.deploy.components)")
    table = QuantTable.load(DEFAULT_TABLE)
    assert table.provenance["dataset"] == "hippocampus-msd"
    assert sorted(set(np.asarray(table.steps).ravel().tolist())) == [10.0, 20.0, 60.0]  # FR(20, 10, 60)
    volume = {"image": torch.rand(1, 16, 16, 3, generator=torch.Generator().manual_seed(0))}
    out = default_defense()(volume)["image"]
    assert out.shape == volume["image"].shape and not torch.equal(out, volume["image"])
