"""Corner-case calibration of Q_min / Q_max (paper Sec. 3.2.2) with a score worked out independently."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import phantom

from medsecure_transforms.codecs.mvc.calibration import calibrate_step_bounds
from medsecure_transforms.codecs.mvc.codec import MVWaveletCodec

VOLUMES = [phantom((16, 16, 8), seed=s) for s in (0, 1)]
CANDIDATES = (1.0, 4.0, 16.0, 64.0)


def score_fn(i, decoded):
    """Negative RMSE in [0, 255] units: independent of the codec internals, 0 for a perfect volume."""
    raw = VOLUMES[i].astype(np.float64)
    return -np.sqrt(np.mean((decoded - raw) ** 2)) * 255 / (raw.max() - raw.min())


def test_corner_cases_choose_the_largest_tolerated_steps():
    codec = MVWaveletCodec(wavelet="haar")
    calibrated, report = calibrate_step_bounds(VOLUMES, score_fn, codec, CANDIDATES, tolerance=1.5)
    assert report["reference_score"] == 0.0
    # lower corner: uniform step q gives RMSE <= q / sqrt(12)-ish per coefficient; recompute every q by hand
    expected_min = max(
        q
        for q in CANDIDATES
        if -np.mean(
            [
                score_fn(i, codec.decode(codec.encode(v, steps=[dict.fromkeys(codec.steps_for(v)[0], q)]))[0])
                for i, v in enumerate(VOLUMES)
            ]
        )
        <= 1.5
    )
    assert calibrated.q_min == expected_min == report["q_min"]
    assert calibrated.q_max > calibrated.q_min
    assert calibrated.mapping == "machine_vision" and calibrated.wavelet == "haar"
    assert all(-r["score"] <= 1.5 for r in report["upper_corner"] if r["step"] <= calibrated.q_max)


def test_bad_arguments():
    with pytest.raises(ValueError, match="at least one"):
        calibrate_step_bounds([], score_fn)
    with pytest.raises(ValueError, match="increasing"):
        calibrate_step_bounds(VOLUMES, score_fn, candidates=(4.0, 2.0))
