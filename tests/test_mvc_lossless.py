"""Lossless mode: JPEG 2000's reversible 5/3 lifting (T.800 Annex F) and bit-exact ``.mvc`` round trips."""

from __future__ import annotations

import dataclasses
import json
import struct
import zlib

import nibabel as nib
import numpy as np
import pytest
import torch
from helpers import phantom, run_codec_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from medsecure_transforms.codecs import CorruptStreamError
from medsecure_transforms.codecs.mvc.codec import MVWaveletCodec
from medsecure_transforms.codecs.mvc.format import pack_mvc, unpack_mvc
from medsecure_transforms.data.volume_io import write_nifti
from medsecure_transforms.frequency.wavelet import REVERSIBLE_53, wavedec_nd, waverec_nd


def annex_f_53(x: list[int]) -> tuple[list[int], list[int]]:
    """One 1-D level written from the standard's equations, sample by sample, with explicit symmetric extension."""
    n = len(x)

    def ext(i: int) -> int:  # whole-sample symmetric: x[-i] = x[i], x[n - 1 + i] = x[n - 1 - i]
        i = -i if i < 0 else i
        return x[2 * (n - 1) - i] if i > n - 1 else x[i]

    high = [ext(2 * k + 1) - (ext(2 * k) + ext(2 * k + 2)) // 2 for k in range(n // 2)]
    high_at = lambda k: high[-k - 1] if k < 0 else high[k]  # noqa: E731  d[-1] = d[0] by the same symmetry
    low = [ext(2 * k) + (high_at(k - 1) + high[k] + 2) // 4 for k in range(n // 2)]
    return low, high


@pytest.mark.parametrize("signal", [[5, 9, 2, 7, 7, 1, 0, 4], [-3, 100, 42, 42, -7, 8], [0, 255], list(range(16))])
def test_one_level_matches_the_standard_equations(signal):
    low, high = annex_f_53(signal)
    bands = wavedec_nd(torch.tensor(signal, dtype=torch.int64), REVERSIBLE_53, (1,))
    assert bands["L1/a"].tolist() == low and bands["L1/d"].tolist() == high


def test_ramp_has_no_detail_inside():
    bands = wavedec_nd(torch.arange(32, dtype=torch.int64) * 7, REVERSIBLE_53, (1,))
    assert bands["L1/d"][:-1].abs().max() == 0  # the last sample's symmetric extension bends the ramp


@settings(max_examples=40, deadline=None)
@given(
    levels=st.lists(st.integers(0, 3), min_size=2, max_size=3).filter(lambda lv: max(lv) >= 1),
    seed=st.integers(0, 2**31 - 1),
)
def test_integer_round_trip_is_exact(levels, seed):
    shape = tuple(2 ** max(lv, 1) * 3 for lv in levels)
    x = torch.from_numpy(np.random.default_rng(seed).integers(-32768, 65536, size=shape))
    bands = wavedec_nd(x, REVERSIBLE_53, levels)
    assert all(b.dtype == torch.int64 for b in bands.values())
    assert torch.equal(waverec_nd(bands, REVERSIBLE_53, levels), x)


def test_reversible_needs_int64():
    with pytest.raises(TypeError, match="int64"):
        wavedec_nd(torch.zeros(8, 8), REVERSIBLE_53, (1, 1))


@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint16", "int16"])
@pytest.mark.parametrize("shape", [(30, 21, 9), (2, 17, 12, 5)])
def test_codec_round_trip_is_bit_exact(dtype, shape):
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype)
    volume = (phantom(shape[-3:]).astype(float) * 37).astype(np.int64) + rng.integers(-3, 4, size=shape[-3:])
    volume = np.broadcast_to(np.clip(volume, info.min, info.max), shape).astype(dtype)
    codec = MVWaveletCodec.lossless(levels=(3, 3, 2))
    blob = codec.encode(volume, spacing=(1.5, 1.5, 8.0))
    decoded, header = MVWaveletCodec.decode(blob)
    assert decoded.dtype == volume.dtype and np.array_equal(decoded, volume)
    assert header.wavelet == REVERSIBLE_53 and header.spacing == (1.5, 1.5, 8.0)


def test_forged_dtype_clips_instead_of_wrapping():
    # a valid stream of int16 values up to 1000 relabelled as uint8: the decoder clips to [0, 255], never wraps
    volume = np.linspace(-200, 1000, 16 * 16 * 8).reshape(16, 16, 8).astype(np.int16)
    header, streams = unpack_mvc(MVWaveletCodec.lossless().encode(volume))
    decoded, _ = MVWaveletCodec.decode(pack_mvc(dataclasses.replace(header, dtype="uint8"), streams))
    assert decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, np.clip(volume, 0, 255))


def test_lossless_input_and_parameter_errors():
    codec = MVWaveletCodec.lossless()
    with pytest.raises(TypeError, match="integer volumes"):
        codec.encode(np.zeros((8, 8, 8), dtype=np.float32))
    with pytest.raises(TypeError, match="integer volumes"):
        codec.encode(np.zeros((8, 8, 8), dtype=np.int32))
    with pytest.raises(ValueError, match="lossless"):
        MVWaveletCodec(wavelet=REVERSIBLE_53)
    with pytest.raises(ValueError, match="lossless"):
        codec.scaled(2.0)


def test_forged_lossless_header_with_a_step_is_rejected():
    blob = bytearray(MVWaveletCodec.lossless(levels=(1, 1, 1)).encode(np.arange(512, dtype=np.int16).reshape(8, 8, 8)))
    # first step of channel 0: after the fixed fields, shape, levels, affine, spacing, offset, NIfTI codes and the
    # intensity map
    at = struct.calcsize("<4sBBBBBH") + 3 * 4 + 3 + 16 * 8 + 3 * 8 + 4 + 3 + 16
    assert struct.unpack_from("<f", blob, at)[0] == 1.0
    struct.pack_into("<f", blob, at, 2.0)
    struct.pack_into("<I", blob, len(blob) - 4, zlib.crc32(bytes(blob[:-4])))
    with pytest.raises(CorruptStreamError, match="lossless"):
        MVWaveletCodec.decode(bytes(blob))


def test_cli_lossless_and_scale(tmp_path, capsys):
    volume = phantom((32, 24, 16))
    affine = np.diag([0.9, 0.9, 6.0, 1.0])
    write_nifti(tmp_path / "in.nii.gz", volume, affine)
    assert run_codec_cli("compress", str(tmp_path / "in.nii.gz"), str(tmp_path / "l.mvc"), "--lossless") == 0
    assert json.loads(capsys.readouterr().out)["codec"]["wavelet"] == REVERSIBLE_53
    run_codec_cli("decompress", str(tmp_path / "l.mvc"), str(tmp_path / "out.nii.gz"))
    capsys.readouterr()
    out = nib.load(tmp_path / "out.nii.gz")
    assert np.array_equal(np.asarray(out.dataobj), volume) and np.array_equal(out.affine, affine)
    sizes = []
    for scale in ("1", "4"):
        run_codec_cli("compress", str(tmp_path / "in.nii.gz"), str(tmp_path / f"s{scale}.mvc"), "--scale", scale)
        summary = json.loads(capsys.readouterr().out)
        sizes.append(summary["compressed_bytes"])
        assert summary["codec"]["q_min"] == float(scale)
    assert sizes[1] < sizes[0]
    with pytest.raises(SystemExit):
        run_codec_cli("compress", str(tmp_path / "in.nii.gz"), str(tmp_path / "x.mvc"), "--lossless", "--scale", "2")
    with pytest.raises(ValueError, match="--q-max"):
        run_codec_cli("compress", str(tmp_path / "in.nii.gz"), str(tmp_path / "x.mvc"), "--lossless", "--q-max", "8")
