"""MVWaveletCodec: Eq. (4) by hand, error bounds from Parseval, the .mvc container and its strict reader."""

from __future__ import annotations

import struct
import unittest
import zlib
from unittest import mock

import numpy as np
import pytest
import torch
from helpers import phantom
from parameterized import parameterized

from medsecure_transforms.codecs import CorruptStreamError
from medsecure_transforms.codecs.mvc.codec import (
    MVWaveletCodec,
    compress_volume,
    decompress_volume,
    dequantize_deadzone,
    encode_to_ratio,
    quantize_deadzone,
    reciprocal_mapping,
    step_sizes,
)
from medsecure_transforms.codecs.mvc.format import max_levels, unpack_mvc
from medsecure_transforms.frequency import subband_names, wavedec_nd


def _reseal(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


class TestMapping(unittest.TestCase):
    def test_reciprocal_mapping_by_hand(self):
        # (Q_min, delta_max) = (1, 50), (Q_max, delta_min) = (16, 2): b = (50 - 32) / 15 = 1.2, a = 51.2
        a, b = reciprocal_mapping(1.0, 16.0, 2.0, 50.0)
        self.assertAlmostEqual(b, 1.2)
        self.assertAlmostEqual(a, 51.2)
        steps = step_sizes({"L1/ddd": 2.0, "L1/add": 10.0, "L2/aaa": 50.0}, 1.0, 16.0)
        self.assertAlmostEqual(steps["L1/ddd"], 16.0, places=5)
        self.assertAlmostEqual(steps["L1/add"], 51.2 / 11.2, places=5)
        self.assertAlmostEqual(steps["L2/aaa"], 1.0, places=5)

    def test_baseline_mappings(self):
        stds = {"L1/ddd": 1.0, "L1/add": 3.0, "L2/daa": 5.0, "L2/aaa": 90.0}
        self.assertEqual(
            step_sizes(stds, 2.0, 16.0, "jpeg2000"), {"L1/ddd": 16.0, "L1/add": 8.0, "L2/daa": 4.0, "L2/aaa": 2.0}
        )
        self.assertEqual(set(step_sizes(stds, 2.0, 16.0, "uniform").values()), {2.0})

    def test_deadzone_quantizer(self):
        c = torch.tensor([-7.9, -4.0, -1.9, 0.0, 1.9, 2.0, 7.9], dtype=torch.float64)
        q = quantize_deadzone(c, 2.0)
        self.assertEqual(q.tolist(), [-3, -2, 0, 0, 0, 1, 3])
        np.testing.assert_allclose(dequantize_deadzone(q, 2.0, 0.5).numpy(), [-7, -5, 0, 0, 0, 3, 7])

    @parameterized.expand(
        [
            ("q_order", {"q_min": 16, "q_max": 1}),
            ("wavelet", {"wavelet": "coif9"}),
            ("levels", {"levels": (3,)}),
            ("offset", {"reconstruction_offset": 1.0}),
            ("mapping", {"mapping": "hvs"}),
            ("q_span", {"q_min": 1, "q_max": 1e38}),  # Eq. 4 divided by zero in float64 here
        ]
    )
    def test_bad_parameters(self, _name, params):
        with pytest.raises(ValueError):
            MVWaveletCodec(**params)


class TestRoundTrip(unittest.TestCase):
    @parameterized.expand(
        [
            ("int16_3d", phantom(), (3, 3, 3)),
            ("uint8_3d", (phantom() // 16).astype(np.uint8), (3, 3, 3)),
            ("float32_3d", phantom().astype(np.float32) / 4095, (2, 2, 2)),
            ("int16_2d", phantom((40, 36, 1))[..., 0], (3, 3)),
            ("channels", np.stack([phantom(), phantom(seed=1)]), (3, 3, 3)),
            ("torch_input", torch.as_tensor(phantom().astype(np.float32)), (3, 3, 3)),
        ]
    )
    def test_layout_dtype_and_error(self, _name, volume, levels):
        codec = MVWaveletCodec(levels=levels, wavelet="haar", mapping="uniform", q_min=2.0)
        decoded, header = codec.decode(codec.encode(volume))
        expected = np.asarray(volume)
        self.assertEqual(decoded.shape, expected.shape)
        self.assertEqual(decoded.dtype, expected.dtype)
        # haar is orthonormal: coefficient error (<= one step per coefficient in the dead zone) is the
        # signal error, in units of [0, 255]; integer outputs add at most half a grey level of rounding
        span = expected.max() - expected.min()
        rmse_255 = np.sqrt(np.mean((decoded.astype(np.float64) - expected) ** 2)) * 255 / span
        self.assertLess(rmse_255, 2.0 + (0.5 * 255 / span if expected.dtype.kind in "iu" else 0))
        self.assertGreater(header.compression_ratio, 1.0)

    def test_fine_steps_are_lossless_for_integers(self):
        volume = phantom()
        codec = MVWaveletCodec(mapping="uniform", q_min=0.02, value_range=None)
        np.testing.assert_array_equal(codec.decode(codec.encode(volume))[0], volume)

    def test_affine_and_spacing_are_stored_exactly(self):
        affine = np.array([[0.7, 0.1, 0, -10.5], [0, 1.3, 0.2, 20.25], [0.05, 0, 5.0, 3.3], [0, 0, 0, 1]]) / 3
        blob = compress_volume(phantom(), affine=affine, spacing=(0.7, 1.3, 5.0))
        _, header = decompress_volume(blob)
        np.testing.assert_array_equal(header.affine, affine)
        self.assertEqual(header.spacing, (0.7, 1.3, 5.0))

    def test_deterministic_bytes(self):
        self.assertEqual(compress_volume(phantom()), compress_volume(phantom()))

    def test_machine_vision_steps_lie_in_bounds_and_beat_uniform_on_rate(self):
        volume = phantom((32, 24, 16))
        steps = MVWaveletCodec().steps_for(volume)[0]
        self.assertEqual(list(steps), subband_names((3, 3, 3)))
        self.assertAlmostEqual(min(steps.values()), 1.0)
        self.assertAlmostEqual(max(steps.values()), 16.0)
        mv = len(MVWaveletCodec().encode(volume))
        uniform = len(MVWaveletCodec(mapping="uniform").encode(volume))
        self.assertLess(mv, uniform)

    def test_short_axis_gets_fewer_levels(self):
        volume = phantom((32, 24, 6))
        self.assertEqual(max_levels(6), 1)
        _, header = decompress_volume(compress_volume(volume))
        self.assertEqual(header.levels, (3, 3, 1))

    def test_encode_to_ratio(self):
        volume = phantom((32, 32, 16))
        codec, blob = encode_to_ratio(MVWaveletCodec(), volume, target_ratio=20.0)
        self.assertAlmostEqual(volume.nbytes / len(blob), 20.0, delta=20.0 * 0.03)
        self.assertEqual(codec.q_max / codec.q_min, 16.0)

    def test_explicit_steps(self):
        volume = phantom((32, 24, 16))
        names = subband_names((3, 3, 3))
        blob = MVWaveletCodec().encode(volume, steps=[dict.fromkeys(names, 4.0)])
        self.assertEqual(set(decompress_volume(blob)[1].steps[0].values()), {4.0})

    def test_state_round_trip(self):
        codec = MVWaveletCodec(wavelet="db2", levels=(2, 3, 1), q_min=0.5, q_max=9.0, value_range=None)
        self.assertEqual(MVWaveletCodec.from_dict(codec.to_dict()), codec)
        with pytest.raises(ValueError, match="unknown"):
            MVWaveletCodec.from_dict({**codec.to_dict(), "quality": 3})


class TestBadVolumes(unittest.TestCase):
    def test_nan(self):
        volume = phantom().astype(np.float32)
        volume[1, 2, 3] = np.nan
        with pytest.raises(ValueError, match="NaN"):
            compress_volume(volume)

    def test_wrong_rank(self):
        with pytest.raises(ValueError, match="expects"):
            compress_volume(np.zeros((2, 2, 8, 8, 8), np.int16))

    def test_unsupported_dtype(self):
        with pytest.raises(TypeError, match="dtypes"):
            compress_volume(np.zeros((8, 8, 8), bool))

    def test_too_small(self):
        with pytest.raises(ValueError, match="too small"):
            compress_volume(np.zeros((3, 2, 3), np.int16))


class TestCorruptStreams(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.blob = compress_volume(phantom((16, 16, 8)))

    @parameterized.expand([(0,), (6,), (40,), (200,), (-9,)])
    def test_flipped_byte(self, position):
        damaged = bytearray(self.blob)
        damaged[position] ^= 0x10
        with pytest.raises(CorruptStreamError):
            decompress_volume(bytes(damaged))

    @parameterized.expand([(0,), (10,), (-1,)])
    def test_truncated(self, keep):
        with pytest.raises(CorruptStreamError):
            decompress_volume(self.blob[:keep])

    def test_forged_huge_shape_is_refused_before_allocating(self):
        body = bytearray(self.blob[:-4])
        struct.pack_into("<3I", body, 11, 60000, 60000, 60000)
        with pytest.raises(CorruptStreamError, match="shape"):
            decompress_volume(_reseal(bytes(body)))

    def test_forged_levels_and_version(self):
        body = bytearray(self.blob[:-4])
        body[23] = 9  # first level byte (after fixed 11 bytes + 3 x u32 shape)
        with pytest.raises(CorruptStreamError, match="levels"):
            decompress_volume(_reseal(bytes(body)))
        body = bytearray(self.blob[:-4])
        body[4] = 3  # versions 1 and 2 exist
        with pytest.raises(CorruptStreamError, match="version"):
            decompress_volume(_reseal(bytes(body)))

    def test_forged_stream_length(self):
        header, _ = unpack_mvc(self.blob)
        self.assertEqual(header.shape, (16, 16, 8))
        body = bytearray(self.blob[:-4])
        names = len(subband_names(header.levels))
        first_length = 11 + 12 + 3 + 128 + 24 + 4 + 16 + 4 * names
        struct.pack_into("<I", body, first_length, 1)
        with pytest.raises(CorruptStreamError, match="stream lengths"):
            decompress_volume(_reseal(bytes(body)))

    def test_not_an_mvc_file(self):
        with pytest.raises(CorruptStreamError, match="magic"):
            decompress_volume(b"\x89PNG" + bytes(100))


class TestSlabwiseCoding(unittest.TestCase):
    """The codec's element-wise steps run in slabs; the stream must not depend on the slab size."""

    def test_quantizer_slabs_match_the_formula(self):
        c = torch.randn(40, 6, 5, dtype=torch.float32, generator=torch.Generator().manual_seed(1)) * 30
        expected = (torch.sign(c) * torch.floor(c.abs() / 3.0)).to(torch.int32)
        with mock.patch("medsecure_transforms.codecs.mvc.codec._SLAB_ELEMENTS", 7):
            q = quantize_deadzone(c, 3.0)
            torch.testing.assert_close(q, expected)
            torch.testing.assert_close(
                dequantize_deadzone(q, 3.0, 0.5, torch.float32), torch.sign(q) * (q.abs() + 0.5) * 3.0
            )

    def test_result_is_independent_of_slab_sizes(self):
        # float32 sums taken in other slabs round differently, so a coefficient on a bin edge may change bin: the
        # same stream decodes to within one grey level, and a re-encoded volume differs by rare single-bin flips
        volume = phantom((30, 20, 9))
        blob = compress_volume(volume)
        decoded = decompress_volume(blob)[0].astype(np.int32)
        with (
            mock.patch("medsecure_transforms.codecs.mvc.codec._SLAB_ELEMENTS", 50),
            mock.patch("medsecure_transforms.frequency.wavelet._SLAB_ELEMENTS", 50),
        ):
            self.assertLessEqual(np.abs(decompress_volume(blob)[0] - decoded).max(), 1)
            other = compress_volume(volume)
        self.assertLess(abs(len(other) - len(blob)), 0.01 * len(blob))
        self.assertLess(np.abs(decompress_volume(other)[0] - decoded).mean(), 0.05)

    def test_edge_padding_replicates_like_torch_pad(self):
        volume = phantom((13, 10, 7)).astype(np.float32)
        ours = MVWaveletCodec(levels=(2, 2, 2))._subbands(volume, (2, 2, 2), (0.0, 1.0))
        pad = (0, 1, 0, 2, 0, 3)  # last axis first: 7 -> 8, 10 -> 12, 13 -> 16
        padded = torch.nn.functional.pad(torch.from_numpy(volume)[None, None], pad, mode="replicate")[0, 0]
        expected = wavedec_nd(padded, "bior4.4", (2, 2, 2))
        for name, band in expected.items():
            torch.testing.assert_close(ours[name], band, atol=1e-3, rtol=0)
