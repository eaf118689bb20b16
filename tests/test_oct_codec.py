"""Learned OCT codec: network shapes, the L=7 quantizer, Eq. (1), the bitstream and its header checks."""

from __future__ import annotations

import math
import tempfile
import unittest
from pathlib import Path

import numpy as np
import torch
from parameterized import parameterized

from medsecure_transforms.artefacts import save_torch
from medsecure_transforms.codecs import CorruptStreamError
from medsecure_transforms.codecs.oct import RATIO_PRESETS, LearnedOCTCodec, nominal_compression_ratio
from medsecure_transforms.codecs.oct.stream import StreamHeader, pack_stream, unpack_stream
from medsecure_transforms.networks.oct_compression import OCTCodecNet, ScalarQuantizer

TINY = (4, 4, 4, 4, 4, 4)
MODELS = Path(__file__).resolve().parents[1] / "bundles" / "oct_codec" / "models"


def tiny_codec(channels=(2, 1, 1, 1), seed: int = 0) -> LearnedOCTCodec:
    torch.manual_seed(seed)
    net = OCTCodecNet(channels, TINY)
    with torch.no_grad():  # spread the bottleneck over several levels
        net.bottleneck.conv.weight.mul_(20)
    return LearnedOCTCodec(net)


def bscan(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = 0.05 * rng.random((h, w))
    img[h // 3 : 2 * h // 3] += 0.6
    return np.clip(img, 0, 1).astype(np.float32)


class TestQuantizer(unittest.TestCase):
    def test_levels_and_values(self):
        q = ScalarQuantizer(7)
        x = torch.tensor([-100.0, -0.9, -0.2, 0.0, 0.2, 0.9, 100.0])
        # hand-worked: round(3 * tanh(x))
        expected = [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0]
        self.assertEqual(q(x).tolist(), expected)
        self.assertEqual(len(torch.unique(q(torch.linspace(-5, 5, 1001)))), 7)

    def test_straight_through_gradient(self):
        x = torch.tensor([0.1, 0.5, -1.3], requires_grad=True)
        ScalarQuantizer(7)(x).sum().backward()
        expected = 3.0 * (1.0 - torch.tanh(x.detach()) ** 2)
        torch.testing.assert_close(x.grad, expected)

    @parameterized.expand([(1,), (4,), (6,)])
    def test_rejects_even_or_small_levels(self, levels):
        with self.assertRaises(ValueError):
            ScalarQuantizer(levels)


class TestNetwork(unittest.TestCase):
    @parameterized.expand([((3, 1, 2, 1),), ((5, 0, 0, 0),), ((2, 0, 3, 0),)])
    def test_map_shapes_follow_paper(self, channels):
        net = OCTCodecNet(channels, TINY).eval()
        x = torch.rand(2, 1, 64, 96)
        maps = net.encode(x)
        self.assertEqual([tuple(m.shape[1:]) for m in maps], net.latent_shapes(64, 96))
        c0, c1, c2, c3 = channels
        expected = [(c0, 2, 3)] + [(c, 64 // s, 96 // s) for c, s in ((c1, 16), (c2, 8), (c3, 4)) if c]
        self.assertEqual(net.latent_shapes(64, 96), expected)
        y = net.decode(maps)
        self.assertEqual(y.shape, x.shape)
        self.assertTrue(bool(((y >= 0) & (y <= 1)).all()))

    def test_first_stage_is_7x7_full_resolution(self):
        net = OCTCodecNet((1, 0, 0, 0))
        conv = net.stages[0].conv
        self.assertEqual((conv.kernel_size, conv.stride, conv.out_channels), ((7, 7), (1, 1), 64))

    @parameterized.expand([((1, 1, 60, 64),), ((1, 3, 64, 64),), ((1, 64, 64),)])
    def test_bad_input_shape(self, shape):
        with self.assertRaisesRegex(ValueError, "OCTCodecNet"):
            OCTCodecNet((1, 0, 0, 0), TINY).encode(torch.rand(shape))

    def test_bad_channels(self):
        with self.assertRaises(ValueError):
            OCTCodecNet((0, 1, 1, 1), TINY)


class TestRatio(unittest.TestCase):
    def test_equation_one_by_hand(self):
        # 256x256x8 bits over (8*8*8 + 16*16*4 + 32*32*3) symbols of log2(7) bits
        expected = 256 * 256 * 8 / ((512 + 1024 + 3072) * math.log2(7))
        self.assertAlmostEqual(nominal_compression_ratio((8, 4, 3, 0), 256, 256), expected)

    @parameterized.expand([(r,) for r in RATIO_PRESETS])
    def test_presets_hit_targets(self, ratio):
        self.assertLess(abs(nominal_compression_ratio(RATIO_PRESETS[ratio], 256, 256) / ratio - 1), 0.02)


class TestCodec(unittest.TestCase):
    def setUp(self):
        self.codec = tiny_codec()

    @parameterized.expand([((96, 128),), ((100, 130),), ((33, 31),)])
    def test_round_trip_matches_network(self, shape):
        img = bscan(*shape)
        stream = self.codec.compress(img)
        out = self.codec.decompress(stream)
        self.assertEqual(out.shape, shape)
        ph, pw = (-(-s // 32) * 32 for s in shape)
        x = torch.zeros(1, 1, ph, pw)
        x[0, 0, : shape[0], : shape[1]] = torch.from_numpy(img)
        with torch.no_grad():
            direct = self.codec.net(x)[0, 0, : shape[0], : shape[1]].numpy()
        np.testing.assert_allclose(out, direct, atol=1e-6)
        self.assertAlmostEqual(self.codec.measured_ratio(shape, len(stream)), shape[0] * shape[1] / len(stream))

    def test_torch_input_same_bytes(self):
        img = bscan()
        self.assertEqual(self.codec.compress(img), self.codec.compress(torch.from_numpy(img)))

    def test_stream_from_other_model_refused(self):
        stream = self.codec.compress(bscan())
        with self.assertRaisesRegex(CorruptStreamError, "model"):
            tiny_codec(seed=1).decompress(stream)
        with self.assertRaisesRegex(CorruptStreamError, "different ratio"):
            tiny_codec((2, 1, 1, 0)).decompress(stream)

    def test_corruption_detected(self):
        stream = bytearray(self.codec.compress(bscan()))
        for mutate in (lambda s: s[:-5], lambda s: s[:10], lambda s: b"XXXX" + s[4:]):
            with self.assertRaises(CorruptStreamError):
                self.codec.decompress(bytes(mutate(stream)))
        stream[20] ^= 0xFF
        with self.assertRaisesRegex(CorruptStreamError, "checksum"):
            self.codec.decompress(bytes(stream))

    def test_header_fields_validated(self):
        header = StreamHeader(7, (1, 0, 0, 0), (40, 40), (96, 64), 0)  # 96 is not the padding of 40
        with self.assertRaisesRegex(CorruptStreamError, "padding"):
            pack_stream(header, [np.zeros((1, 3, 2), np.int32)])

    def test_symbols_outside_quantizer_refused(self):
        header = StreamHeader(7, (1, 0, 0, 0), (32, 32), (32, 32), 0)
        stream = pack_stream(header, [np.array([[[5]]], np.int32)])
        with self.assertRaisesRegex(CorruptStreamError, "outside"):
            unpack_stream(stream)

    @parameterized.expand(
        [
            (np.zeros((2, 32, 32), np.float32), ValueError, "2-D"),
            (np.full((32, 32), np.nan, np.float32), ValueError, "NaN"),
            (np.full((32, 32), 2.0, np.float32), ValueError, r"\[0, 1\]"),
            (np.zeros((32, 32), np.uint8), TypeError, "float"),
        ]
    )
    def test_bad_images(self, img, err, msg):
        with self.assertRaisesRegex(err, msg):
            self.codec.compress(img)

    def test_save_load_keeps_model_id(self):
        stream = self.codec.compress(bscan())
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "m.pt"
            self.codec.save(path)
            loaded = LearnedOCTCodec.load(path)
        self.assertEqual(loaded.model_id, self.codec.model_id)
        np.testing.assert_array_equal(loaded.decompress(stream), self.codec.decompress(stream))

    def test_half_precision_file(self):
        img = bscan()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "m16.pt"
            self.codec.save(path, half=True)
            blob = torch.load(path, weights_only=True)
            loaded = LearnedOCTCodec.load(path)
        self.assertEqual((blob["format"], blob["version"]), (LearnedOCTCodec.FORMAT, LearnedOCTCodec.VERSION))
        self.assertEqual(blob["state"]["head.0.weight"].dtype, torch.float16)
        self.assertEqual(loaded.model_id, LearnedOCTCodec.fingerprint(loaded.net))
        out = loaded.decompress(loaded.compress(img))
        np.testing.assert_allclose(out, self.codec.decompress(self.codec.compress(img)), atol=0.05)

    def test_unversioned_or_mismatched_file_refused(self):
        state = self.codec.net.state_dict()
        with tempfile.TemporaryDirectory() as tmp:
            bare = Path(tmp) / "bare.pt"  # the layout before format + version
            torch.save({**self.codec.config(), "state_dict": state}, bare)
            with self.assertRaisesRegex(ValueError, "bare.pt"):
                LearnedOCTCodec.load(bare)
            other = Path(tmp) / "other.pt"
            save_torch(
                other,
                LearnedOCTCodec.FORMAT,
                LearnedOCTCodec.VERSION,
                {**self.codec.config(), "latent_channels": [3, 1, 1, 1]},
                state,
            )
            with self.assertRaisesRegex(ValueError, "other.pt.*do not match"):
                LearnedOCTCodec.load(other)

    @parameterized.expand([(name,) for name in ("model_r10", "model_r20", "model_r40", "model_r80")])
    def test_committed_models_load(self, name):
        codec = LearnedOCTCodec.load(MODELS / f"{name}.pt")
        self.assertEqual(codec.latent_channels, RATIO_PRESETS[int(name[7:])])
        img = bscan(256, 256)
        self.assertEqual(codec.decompress(codec.compress(img)).shape, img.shape)


if __name__ == "__main__":
    unittest.main()
