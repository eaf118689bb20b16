"""Target-mask generators against scipy.ndimage and numpy references."""

from __future__ import annotations

import unittest

import numpy as np
import torch
from parameterized import parameterized
from scipy import ndimage

from medsecure_transforms.attacks.targets import OtherSampleMask, erase_classes, scale_mask, shift_mask


def disc_labels(shape=(32, 40), centre=(14, 18)) -> np.ndarray:
    """A fundus-like map: class 1 disc of radius 8 with a class 2 cup of radius 4."""
    grid = np.indices(shape)
    radius = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)))
    return np.where(radius < 4, 2, np.where(radius < 8, 1, 0)).astype(np.int64)


class TestShift(unittest.TestCase):
    @parameterized.expand([("2d", (32, 40), (5, -7)), ("3d", (10, 12, 9), (-2, 3, 1)), ("out", (8, 8), (9, 0))])
    def test_matches_scipy_shift(self, _, shape, offset):
        labels = np.random.default_rng(0).integers(0, 3, size=(2, 1, *shape))
        got = shift_mask(torch.as_tensor(labels), offset).numpy()
        expected = ndimage.shift(labels, (0, 0, *offset), order=0, mode="constant", cval=0)
        np.testing.assert_array_equal(got, expected)

    def test_offset_rank_checked(self):
        with self.assertRaisesRegex(ValueError, "one entry per spatial axis"):
            shift_mask(torch.zeros(1, 1, 4, 4, dtype=torch.long), (1,))


class TestScale(unittest.TestCase):
    @parameterized.expand([("grow", 1.5), ("shrink", 0.6)])
    def test_matches_scipy_affine_about_centroid(self, _, factor):
        labels = disc_labels()
        centre = np.array(ndimage.center_of_mass(labels > 0))
        # output voxel p samples the input at c + (p - c) / factor
        expected = ndimage.affine_transform(labels, np.eye(2) / factor, offset=centre - centre / factor, order=0)
        got = scale_mask(torch.as_tensor(labels)[None, None], factor)[0, 0].numpy()
        self.assertLessEqual(np.mean(got != expected), 0.01)  # nearest-neighbour ties may round differently
        area = np.sum(got > 0) / np.sum(labels > 0)
        self.assertAlmostEqual(area, factor**2, delta=0.15 * factor**2)

    def test_3d_and_empty(self):
        labels = torch.zeros(2, 1, 8, 9, 10, dtype=torch.long)
        labels[0, 0, 2:6, 3:6, 4:8] = 1
        out = scale_mask(labels, 0.5)
        self.assertTrue(torch.equal(out[1], labels[1]))
        self.assertLess(int(out[0].sum()), int(labels[0].sum()))


class TestErase(unittest.TestCase):
    def test_cup_into_rim_and_whole_disc(self):
        labels = torch.as_tensor(disc_labels())[None, None]
        np.testing.assert_array_equal(erase_classes(labels, [2], fill=1).numpy(), np.minimum(labels.numpy(), 1))
        self.assertEqual(int(erase_classes(labels).sum()), 0)


class TestOtherSample(unittest.TestCase):
    def setUp(self):
        self.pool = [torch.as_tensor(disc_labels(centre=(10 + 2 * i, 18)))[None] for i in range(4)]

    def test_never_the_sample_itself_and_seeded(self):
        labels = torch.stack(self.pool)
        first = OtherSampleMask(self.pool, seed=3)(labels)
        again = OtherSampleMask(self.pool, seed=3)(labels)
        self.assertTrue(torch.equal(first, again))
        for label, target in zip(labels, first, strict=True):
            self.assertFalse(torch.equal(label, target))
            self.assertTrue(any(torch.equal(target, m) for m in self.pool))

    def test_rejects_small_or_mismatched_pool(self):
        with self.assertRaisesRegex(ValueError, "at least 2"):
            OtherSampleMask(self.pool[:1])
        with self.assertRaisesRegex(ValueError, "do not match"):
            OtherSampleMask(self.pool)(torch.zeros(1, 1, 5, 5, dtype=torch.long))


if __name__ == "__main__":
    unittest.main()
