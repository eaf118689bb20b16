"""The app's defense and detector components (medsecure_transforms.deploy.components)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medsecure_transforms.defenses import QuantTable
from medsecure_transforms.deploy.components import (
    DEFAULT_DETECTOR,
    DEFAULT_TABLE,
    axial_slices,
    calibrate_detector,
    default_defense,
    default_detector,
)
from medsecure_transforms.transforms import FFTDetect


def _volumes(n, seed, shape=(1, 8, 16, 4)):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(shape, generator=g) * 0.2 + 0.4 for _ in range(n)]


def test_axial_slices_order():
    volume = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(1, 2, 3, 4)
    slices = axial_slices(volume)
    assert slices.shape == (4, 1, 2, 3)
    for z in range(4):
        np.testing.assert_array_equal(slices[z, 0], volume[0, :, :, z])
    with pytest.raises(ValueError, match="channel-first volume"):
        axial_slices(torch.zeros(2, 3, 4))


def test_calibrated_threshold_holds_the_volume_false_positive_rate():
    train, validation = _volumes(2, seed=1), _volumes(10, seed=2)
    detector = calibrate_detector(train, validation, t_fp=0.1, epochs=1, seed=0, channels=(4, 8))
    guard = FFTDetect(detector, policy="flag")
    reports = [guard.inspect(v)[1] for v in validation]
    # floor(0.1 * 10) = 1 clean volume above the threshold; the threshold is itself a validation score, which
    # re-scoring in another batch size may move by float rounding, hence the relative margin
    margin = detector.threshold * 1e-5
    assert sum(r["fft_detect_score"] > detector.threshold + margin for r in reports) == 1
    assert sum(r["fft_detect_score"] > detector.threshold - margin for r in reports) == 2
    volume = validation[0]
    per_slice = detector.score_batches(axial_slices(volume))  # independent: score each slice, take the max
    assert reports[0]["fft_detect_score"] == pytest.approx(float(per_slice.max()))
    assert detector.calibration["n"] == 10 and detector.calibration["unit"] == "volume"


def test_shipped_artefacts():
    if not (DEFAULT_TABLE.is_file() and DEFAULT_DETECTOR.is_file()):
        pytest.skip("shipped artefacts not generated (python -m medsecure_transforms.deploy.components)")
    table = QuantTable.load(DEFAULT_TABLE)
    assert table.provenance["dataset"] == "hippocampus_seg"
    assert sorted(set(np.asarray(table.steps).ravel().tolist())) == [10.0, 20.0, 60.0]  # FR(20, 10, 60)
    volume = {"image": torch.rand(1, 48, 64, 3, generator=torch.Generator().manual_seed(0))}
    out = default_defense()(volume)["image"]
    assert out.shape == volume["image"].shape and not torch.equal(out, volume["image"])
    guard = default_detector()
    assert guard.detector.calibration["unit"] == "volume" and guard.detector.threshold is not None
    assert guard.inspect(volume["image"])[1]["fft_detect_flagged"]  # uniform noise is far from an MRI spectrum
