"""Rate control and the study's baselines (OpenJPEG per slice, lossless zstd)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import phantom

from medsecure_transforms.codecs.baselines import (
    openjpeg_decode,
    openjpeg_encode,
    openjpeg_round_trip,
    openjpeg_to_ratio,
    zstd_decode,
    zstd_encode,
)
from medsecure_transforms.codecs.rate_control import match_ratio


@pytest.mark.parametrize("target", [2.0, 7.5, 40.0])
def test_match_ratio_on_a_known_rate_curve(target):
    # stream length 10000 / p**1.3: the ratio is p**1.3 (original 10000 bytes), so p = target**(1/1.3)
    calls = []

    def encode(p):
        calls.append(p)
        return bytes(max(1, round(10000 / p**1.3)))

    p, blob = match_ratio(encode, 10000, target, bounds=(0.5, 50.0), rel_tol=0.01)
    assert abs(10000 / len(blob) / target - 1) <= 0.01
    assert abs(p - target ** (1 / 1.3)) / p < 0.02
    assert len(calls) < 12


def test_match_ratio_out_of_reach_returns_closest():
    p, blob = match_ratio(lambda p: bytes(100), 1000, 50.0, bounds=(0.0, 1.0))
    assert len(blob) == 100


def test_openjpeg_hits_ratio_and_decodes():
    volume = phantom((64, 64, 8))
    _, blob = openjpeg_to_ratio(volume, 20.0)
    assert abs(volume.nbytes / len(blob) / 20.0 - 1) <= 0.03
    decoded = openjpeg_decode(blob)
    assert decoded.shape == volume.shape and decoded.dtype == volume.dtype
    with pytest.raises(ValueError, match="openjpeg"):
        openjpeg_encode(volume.astype(np.float32), 60.0)


def test_openjpeg_round_trip_of_a_float_volume_keeps_ratio_and_range():
    volume = phantom((64, 64, 8)).astype(np.float32) * 0.37 + 11.5  # non-integer grey levels
    decoded, size = openjpeg_round_trip(volume, 20.0)
    assert abs(volume.nbytes / size / 20.0 - 1) <= 0.03  # relative to the float32 bytes, side information included
    assert decoded.dtype == np.float32 and decoded.shape == volume.shape
    span = float(volume.max() - volume.min())
    assert np.abs(decoded - volume).mean() < 0.01 * span
    integer = phantom((64, 64, 8))
    decoded_int, size_int = openjpeg_round_trip(integer, 20.0)
    _, blob = openjpeg_to_ratio(integer, 20.0)
    assert size_int == len(blob) and np.array_equal(decoded_int, openjpeg_decode(blob))


def test_zstd_is_lossless_and_checks_sizes():
    volume = phantom((16, 16, 8))
    blob = zstd_encode(volume)
    np.testing.assert_array_equal(zstd_decode(blob, volume.shape, "int16"), volume)
    with pytest.raises(ValueError, match="expected"):
        zstd_decode(blob, (16, 16, 4), "int16")
