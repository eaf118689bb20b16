"""JPEG tables against Pillow/libjpeg, the DQ-table (paper Eq. 7) against hand-worked rankings, JSON round trips."""

from __future__ import annotations

import io
import json
import tempfile
import unittest
from pathlib import Path

import numpy as np
import scipy.fft
import torch
from parameterized import parameterized
from PIL import Image

from medsecure_transforms.defenses import (
    JPEG_LUMINANCE,
    QuantTable,
    as_quant_table,
    band_std,
    defensive_table,
    fit_defensive_table,
    fixed_layout_table,
    jpeg_table,
)


def pillow_tables(quality: int) -> tuple[np.ndarray, np.ndarray]:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="JPEG", quality=quality, subsampling=0)
    tables = Image.open(buf).quantization
    return np.array(tables[0]).reshape(8, 8), np.array(tables[1]).reshape(8, 8)


class TestJPEGTables(unittest.TestCase):
    @parameterized.expand([(5,), (10,), (50,), (85,), (97,), (100,)])
    def test_matches_libjpeg_via_pillow(self, quality):
        luma, chroma = pillow_tables(quality)
        np.testing.assert_array_equal(np.array(jpeg_table(quality).steps), luma)
        np.testing.assert_array_equal(np.array(jpeg_table(quality, chroma=True).steps), chroma)

    def test_quality_50_is_annex_k(self):
        np.testing.assert_array_equal(np.array(jpeg_table(50).steps), np.array(JPEG_LUMINANCE))

    @parameterized.expand([(0,), (101,)])
    def test_bad_quality(self, quality):
        with self.assertRaisesRegex(ValueError, "1..100"):
            jpeg_table(quality)


class TestDefensiveTable(unittest.TestCase):
    def test_ranked_bands_follow_equation_7(self):
        std = np.arange(64, dtype=float)[::-1].reshape(8, 8)  # row-major order = decreasing std
        table = np.array(defensive_table(std, (30, 5, 80)).steps).reshape(-1)
        np.testing.assert_array_equal(table[:3], [30] * 3)
        np.testing.assert_array_equal(table[3:15], [5] * 12)
        np.testing.assert_array_equal(table[15:], [80] * 49)

    def test_ranks_follow_std_not_position(self):
        std = np.zeros((8, 8))
        std[7, 7], std[0, 5], std[3, 3] = 9.0, 8.0, 7.0
        table = defensive_table(std, (20, 10, 60), dataset="toy")
        steps = np.array(table.steps)
        self.assertEqual((steps[7, 7], steps[0, 5], steps[3, 3]), (20, 20, 20))
        self.assertEqual(table.provenance["band_rank"][7][7], 1)
        self.assertEqual(table.provenance["dataset"], "toy")
        self.assertEqual(table.name, "FR(20,10,60)")
        self.assertEqual(int((steps == 10).sum()), 12)

    def test_fixed_layout(self):
        steps = np.array(fixed_layout_table((30, 5, 80)).steps)
        expected = np.full((8, 8), 80.0)
        expected[:4, :4] = 5
        expected[:2, :2] = 30
        np.testing.assert_array_equal(steps, expected)

    @parameterized.expand([((30, 5),), ((30, 0, 80),), ((30, float("nan"), 80),)])
    def test_bad_steps(self, qs):
        with self.assertRaisesRegex(ValueError, "three finite positive"):
            defensive_table(np.ones((8, 8)), qs)

    def test_band_std_matches_scipy_blocks(self):
        rng = np.random.default_rng(0)
        images = [rng.uniform(0, 1, size=(2, 16, 24)), rng.uniform(0, 1, size=(2, 8, 8))]
        coeffs = []
        for img in images:
            x = img * 255.0
            for i in range(0, x.shape[-2], 8):
                for j in range(0, x.shape[-1], 8):
                    block = scipy.fft.dctn(x[:, i : i + 8, j : j + 8], axes=(-2, -1), norm="ortho")
                    coeffs.append(block.reshape(-1, 64))
        expected = np.concatenate(coeffs).std(axis=0, ddof=1).reshape(8, 8)
        np.testing.assert_allclose(band_std([torch.tensor(i) for i in images]), expected, rtol=1e-9)

    def test_fit_on_smooth_images_puts_low_frequencies_in_pd(self):
        rng = np.random.default_rng(1)
        yy, xx = np.mgrid[0:32, 0:32] / 32.0
        images = [
            torch.tensor(np.stack([0.5 + 0.4 * np.sin(a * xx + b * yy)] * 3)) for a, b in rng.uniform(1, 3, (6, 2))
        ]
        table = fit_defensive_table(images, (30, 5, 80), dataset="synthetic")
        ranks = np.array(table.provenance["band_rank"])
        self.assertEqual(ranks[0, 0], 1)
        self.assertEqual({int(ranks[0, 1]), int(ranks[1, 0])}, {2, 3})
        self.assertEqual(np.array(table.steps)[ranks <= 3].tolist(), [30.0] * 3)
        self.assertEqual(table.provenance["color"], "rgb")


class TestSerialisation(unittest.TestCase):
    def test_json_round_trip_keeps_provenance(self):
        table = defensive_table(np.random.default_rng(2).random((8, 8)), (30, 5, 80), dataset="drishti")
        with tempfile.TemporaryDirectory() as tmp:
            path = table.save(Path(tmp) / "t.json")
            loaded = as_quant_table(str(path))
            self.assertEqual(loaded, table)
            self.assertEqual(loaded.provenance, json.loads(json.dumps(table.provenance)))

    @parameterized.expand(
        [
            ("wrong shape", {"steps": [[1] * 8] * 7}, "8x8"),
            ("zero step", {"steps": [[0] * 8] * 8}, "> 0"),
            ("no steps", {"name": "x"}, "'steps'"),
        ]
    )
    def test_bad_json(self, _, payload, message):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "t.json"
            path.write_text(json.dumps({"format": QuantTable.FORMAT, "version": QuantTable.VERSION, **payload}))
            with self.assertRaisesRegex(ValueError, message):
                QuantTable.load(path)

    def test_corrupt_json(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "t.json"
            path.write_text("{not json")
            with self.assertRaisesRegex(ValueError, "not valid JSON"):
                QuantTable.load(path)

    def test_array_input(self):
        self.assertEqual(as_quant_table(torch.full((8, 8), 7.0)).steps[3][4], 7.0)
        with self.assertRaisesRegex(ValueError, "8x8"):
            as_quant_table(np.ones((4, 4)))


if __name__ == "__main__":
    unittest.main()
