"""The shared entropy layer: exact round trips, rate near the empirical entropy, strict decoding."""

from __future__ import annotations

import struct
import unittest
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from parameterized import parameterized
from scipy.stats import entropy

from medsecure_transforms.codecs import CorruptStreamError, decode_integers, encode_integers
from medsecure_transforms.codecs import entropy as entropy_module

_RNG = np.random.default_rng(0)
_MODEL_BYTE = 5  # offset of the model id: magic (4) + version (1)


def _spike_and_slab(n: int) -> np.ndarray:
    """70 % zeros, the rest uniform in [-20, 20]: a histogram no Laplace fits well."""
    values = _RNG.integers(-20, 21, n).astype(np.int32)
    values[_RNG.random(n) < 0.7] = 0
    return values


def _reseal(body: bytes) -> bytes:
    """A forged stream with a valid checksum, so the header checks themselves are exercised."""
    return body + struct.pack("<I", zlib.crc32(body))


ROUND_TRIPS = [
    ("empty", np.zeros(0, dtype=np.int32)),
    ("constant", np.full((3, 4, 5), -7, dtype=np.int16)),
    ("binary_uint8", (_RNG.random((17, 9)) > 0.9).astype(np.uint8)),
    ("laplace_int32_3d", np.round(_RNG.laplace(0, 4, (8, 16, 12))).astype(np.int32)),
    ("int64_in_range", np.array([-(2**31), 2**31 - 1, 0, 5], dtype=np.int64)),
    ("uint16_image", _RNG.integers(0, 4096, (32, 32)).astype(np.uint16)),
    ("heavy_tail_escape", np.concatenate([np.zeros(5000, np.int32), _RNG.integers(-(10**6), 10**6, 50, np.int32)])),
    ("short_wide", _RNG.integers(-3000, 3000, 12).astype(np.int32)),
]


class TestRoundTrip(unittest.TestCase):
    @parameterized.expand(ROUND_TRIPS)
    def test_exact(self, _name, values):
        blob = encode_integers(values)
        decoded = decode_integers(blob, max_count=values.size)
        self.assertEqual(decoded.dtype, np.int32)
        np.testing.assert_array_equal(decoded, values.reshape(-1).astype(np.int64))

    def test_both_models_are_chosen_where_they_pay(self):
        spiky = _spike_and_slab(50_000)  # far from Laplace: the histogram pays for itself
        few = _RNG.integers(-3000, 3000, 12).astype(np.int32)
        self.assertEqual(encode_integers(spiky)[_MODEL_BYTE], 2)  # categorical histogram
        self.assertEqual(encode_integers(few)[_MODEL_BYTE], 1)  # two-parameter Laplace

    @parameterized.expand([("laplace_escapes", 10**5, 1), ("raw_escapes", 10**8, 2)])
    def test_escape_path_for_wide_ranges(self, _name, spread, expected_mode):
        values = np.concatenate([np.zeros(5000, np.int32), _RNG.integers(-spread, spread, 50, np.int32)])
        blob = encode_integers(values)
        self.assertEqual(blob[_MODEL_BYTE], 2)
        lo, hi, escape_mode = struct.unpack_from("<iiB", blob, 22)
        self.assertEqual(escape_mode, expected_mode)
        self.assertLessEqual(hi - lo + 1, 4096)
        np.testing.assert_array_equal(decode_integers(blob, values.size), values)


class TestModelChoice(unittest.TestCase):
    """Within one histogram window the model is chosen by ideal code length, without coding both."""

    @parameterized.expand(
        [
            ("laplace_small", np.round(_RNG.laplace(0, 4, 300)).astype(np.int32)),
            ("laplace_large", np.round(_RNG.laplace(2, 9, 40_000)).astype(np.int32)),
            ("spiky", _spike_and_slab(20_000)),
            ("uniform", _RNG.integers(-50, 51, 5000).astype(np.int32)),
        ]
    )
    def test_choice_is_close_to_the_shorter_stream(self, _name, values):
        vmin, vmax = int(values.min()), int(values.max())
        both = [
            entropy_module._encode_categorical(values, vmin, vmax),
            entropy_module._encode_laplace(values, vmin, vmax, entropy_module._laplace_fit(values)),
        ]
        chosen = encode_integers(values)
        self.assertLessEqual(len(chosen), min(map(len, both)) * 1.01 + 8)
        np.testing.assert_array_equal(decode_integers(chosen, values.size), values)

    def test_fit_from_the_histogram_equals_the_fit_from_the_values(self):
        for n in (7, 8, 1001):
            values = _RNG.integers(-30, 40, n).astype(np.int32)
            counts = np.bincount(values - values.min())
            mean, scale = entropy_module._laplace_fit_counts(counts, int(values.min()))
            ref_mean, ref_scale = entropy_module._laplace_fit(values)
            self.assertEqual(mean, ref_mean)
            self.assertAlmostEqual(scale, ref_scale, places=5)


class TestDecodeInto(unittest.TestCase):
    """``decode_integers(..., out=view)``: the values land in a strided view of a larger buffer, in C order."""

    @parameterized.expand(
        [
            ("categorical", _spike_and_slab(6 * 7 * 5)),
            ("laplace", _RNG.integers(-3000, 3000, 6 * 7 * 5).astype(np.int32)),
            ("escapes", np.concatenate([np.zeros(200, np.int32), _RNG.integers(-(10**5), 10**5, 10, np.int32)])),
            ("constant", np.full(6 * 7 * 5, -4, np.int32)),
        ]
    )
    def test_values_land_in_a_strided_view(self, _name, values):
        values = values.reshape(6, 7, 5)
        buffer = np.full((12, 9, 10), 99, dtype=np.int32)
        view = buffer[::2, 1:8, 5:]  # non-contiguous, like a subband inside the codec's packed layout
        returned = decode_integers(encode_integers(values), max_count=values.size, out=view)
        self.assertIs(returned, view)
        np.testing.assert_array_equal(view, values)
        outside = np.ones(buffer.shape, bool)
        outside[::2, 1:8, 5:] = False
        self.assertTrue((buffer[outside] == 99).all())

    def test_destination_of_the_wrong_size_or_dtype(self):
        blob = encode_integers(np.arange(20, dtype=np.int32))
        with pytest.raises(CorruptStreamError, match="destination holds 19"):
            decode_integers(blob, max_count=20, out=np.empty(19, np.int32))
        with pytest.raises(TypeError, match="int32"):
            decode_integers(blob, max_count=20, out=np.empty(20, np.int64))


class TestRate(unittest.TestCase):
    def test_close_to_empirical_entropy(self):
        values = _spike_and_slab(200_000)
        _, counts = np.unique(values, return_counts=True)
        entropy_bytes = entropy(counts, base=2) * values.size / 8
        size = len(encode_integers(values))
        # static histogram code: within 0.5 % of the zeroth-order entropy plus a small header
        self.assertLess(size, entropy_bytes * 1.005 + 200)
        self.assertGreater(size, entropy_bytes * 0.999)

    def test_sparse_stream_is_much_smaller_than_raw(self):
        values = np.zeros(100_000, dtype=np.int32)
        values[_RNG.integers(0, values.size, 100)] = 1
        self.assertLess(len(encode_integers(values)), 400)  # ~ 100 * log2(1000) bits


@settings(max_examples=60, deadline=None)
@given(arrays(np.int32, st.integers(0, 300), elements=st.integers(-(2**31), 2**31 - 1)))
def test_hypothesis_round_trip(values):
    np.testing.assert_array_equal(decode_integers(encode_integers(values), values.size), values)


@settings(max_examples=40, deadline=None)
@given(arrays(np.int16, st.integers(1, 400), elements=st.integers(-50, 50)))
def test_hypothesis_round_trip_small_alphabet(values):
    np.testing.assert_array_equal(decode_integers(encode_integers(values), values.size), values)


class TestBadInput(unittest.TestCase):
    def setUp(self):
        self.values = _spike_and_slab(2000)
        self.blob = encode_integers(self.values)
        self.assertEqual(self.blob[_MODEL_BYTE], 2)

    @parameterized.expand([("float", np.zeros(3, np.float32)), ("bool", np.zeros(3, bool))])
    def test_non_integer_dtype(self, _name, values):
        with pytest.raises(TypeError, match="integer array"):
            encode_integers(values)

    def test_out_of_int32_range(self):
        with pytest.raises(ValueError, match="outside int32"):
            encode_integers(np.array([2**40], dtype=np.int64))

    def test_count_above_max_count(self):
        with pytest.raises(CorruptStreamError, match="max_count"):
            decode_integers(self.blob, max_count=self.values.size - 1)

    @parameterized.expand([(0,), (7,), (30,), (-5,)])
    def test_flipped_byte(self, position):
        damaged = bytearray(self.blob)
        damaged[position] ^= 0x40
        with pytest.raises(CorruptStreamError):
            decode_integers(bytes(damaged), max_count=10**6)

    @parameterized.expand([(0,), (3,), (20,), (-1,)])
    def test_truncated(self, cut):
        with pytest.raises(CorruptStreamError):
            decode_integers(self.blob[:cut] if cut >= 0 else self.blob[:-1], max_count=10**6)

    def test_wrong_magic_and_version_with_valid_checksum(self):
        body = self.blob[:-4]
        with pytest.raises(CorruptStreamError, match="magic"):
            decode_integers(_reseal(b"XXXX" + body[4:]), max_count=10**6)
        with pytest.raises(CorruptStreamError, match="version"):
            decode_integers(_reseal(body[:4] + b"\x09" + body[5:]), max_count=10**6)
        with pytest.raises(CorruptStreamError, match="model id"):
            decode_integers(_reseal(body[:5] + b"\x07" + body[6:]), max_count=10**6)

    def test_forged_count_is_refused_by_the_histogram(self):
        body = bytearray(self.blob[:-4])
        struct.pack_into("<Q", body, 6, self.values.size + 1)
        with pytest.raises(CorruptStreamError, match="histogram sums"):
            decode_integers(_reseal(bytes(body)), max_count=10**6)

    def test_forged_window_outside_range(self):
        body = bytearray(self.blob[:-4])
        struct.pack_into("<i", body, 22, -(10**6))
        with pytest.raises(CorruptStreamError, match="window"):
            decode_integers(_reseal(bytes(body)), max_count=10**6)

    def test_random_bytes(self):
        with pytest.raises(CorruptStreamError):
            decode_integers(np.random.default_rng(1).bytes(200), max_count=10**6)
