"""n-D wavelet subbands: agreement with PyWavelets, perfect reconstruction, names, shapes and errors."""

from __future__ import annotations

import unittest
from unittest import mock

import numpy as np
import pytest
import pywt
import torch
from helpers import INPUT_TYPES
from parameterized import parameterized

from medsecure_transforms.frequency import (
    dwt_matrices,
    subband_names,
    subband_shapes,
    subband_slices,
    subband_std,
    wavedec_inplace,
    wavedec_nd,
    waverec_inplace,
    waverec_nd,
)
from medsecure_transforms.frequency.slabs import row_slabs

WAVELETS = [("haar",), ("db2",), ("bior2.2",), ("bior4.4",)]
_GEN = torch.Generator().manual_seed(0)


class TestAgainstPyWavelets(unittest.TestCase):
    @parameterized.expand([(w, dims) for (w,) in WAVELETS for dims in (2, 3)])
    def test_coefficients_equal_wavedecn(self, wavelet, dims):
        shape = (2, 16, 8, 32)[-dims - 1 :]
        x = torch.randn(shape, dtype=torch.float64, generator=_GEN)
        ours = wavedec_nd(x, wavelet, (2,) * dims)
        axes = tuple(range(-dims, 0))
        ref = pywt.wavedecn(x.numpy(), wavelet, mode="periodization", level=2, axes=axes)
        np.testing.assert_allclose(ours["L2/" + "a" * dims].numpy(), ref[0], atol=1e-10)
        for k in (1, 2):
            for code, coeffs in ref[3 - k].items():
                np.testing.assert_allclose(ours[f"L{k}/{code}"].numpy(), coeffs, atol=1e-10)

    def test_matrix_is_one_pywt_level(self):
        x = np.random.default_rng(0).normal(size=12)
        analysis, synthesis = dwt_matrices(12, "db2")
        low, high = pywt.dwt(x, "db2", mode="periodization")
        np.testing.assert_allclose(analysis.numpy() @ x, np.concatenate([low, high]), atol=1e-12)
        np.testing.assert_allclose(synthesis.numpy() @ analysis.numpy(), np.eye(12), atol=1e-10)


class TestReconstruction(unittest.TestCase):
    @parameterized.expand(
        [
            (f"{name}_{str(dtype).removeprefix('torch.')}", dtype, wrap, atol)
            for name, wrap in INPUT_TYPES
            if name != "numpy"  # wavedec_nd takes tensors
            for dtype, atol in ((torch.float64, 1e-9), (torch.float32, 1e-4))
        ]
    )
    def test_perfect_reconstruction_per_axis_levels(self, _name, dtype, wrap, atol):
        x = wrap(torch.randn(1, 16, 8, 24, dtype=dtype, generator=_GEN))
        levels = (3, 2, 1)
        bands = wavedec_nd(x, "bior4.4", levels)
        self.assertEqual(list(bands), subband_names(levels))
        rec = waverec_nd(bands, "bior4.4", levels)
        self.assertEqual(rec.dtype, dtype)
        torch.testing.assert_close(torch.as_tensor(rec), torch.as_tensor(x), atol=atol, rtol=0)

    @parameterized.expand([("haar",), ("db2",)])
    def test_orthogonal_wavelets_preserve_energy(self, wavelet):
        x = torch.randn(8, 16, 16, dtype=torch.float64, generator=_GEN)
        energy = sum(float((c**2).sum()) for c in wavedec_nd(x, wavelet, (3, 3, 3)).values())
        self.assertAlmostEqual(energy, float((x**2).sum()), places=8)

    def test_batch_entries_are_independent(self):
        x = torch.randn(3, 8, 8, 8, dtype=torch.float64, generator=_GEN)
        batched = wavedec_nd(x, "db2", (2, 2, 2))
        single = wavedec_nd(x[1], "db2", (2, 2, 2))
        for name, coeffs in single.items():
            torch.testing.assert_close(batched[name][1], coeffs)

    def test_differentiable(self):
        x = torch.randn(8, 8, 8, dtype=torch.float64, requires_grad=True, generator=_GEN)
        wavedec_nd(x, "haar", (1, 1, 1))["L1/ddd"].sum().backward()
        # haar ddd coefficient = (+-1) * x / sqrt(8) summed over each 2x2x2 cube: |grad| = 8**-0.5 everywhere
        np.testing.assert_allclose(x.grad.abs().numpy(), np.full((8, 8, 8), 8**-0.5), atol=1e-12)


class TestNamesShapesStats(unittest.TestCase):
    def test_names_of_a_3_3_3_decomposition(self):
        names = subband_names((3, 3, 3))
        self.assertEqual(len(names), 3 * 7 + 1)  # 7 detail subbands per level + the approximation
        self.assertEqual(names[0], "L1/aad")
        self.assertEqual(names[-1], "L3/aaa")

    def test_names_with_an_axis_that_stops_early(self):
        names = subband_names((2, 2, 1))
        self.assertIn("L2/adx", names)
        self.assertEqual(names[-1], "L2/aax")
        self.assertEqual(len(names), 7 + 3 + 1)

    def test_shapes_match_the_coefficients(self):
        x = torch.zeros(16, 8, 4, dtype=torch.float64)
        bands = wavedec_nd(x, "haar", (3, 2, 1))
        self.assertEqual({k: tuple(v.shape) for k, v in bands.items()}, subband_shapes((16, 8, 4), (3, 2, 1)))
        self.assertEqual(subband_shapes((16, 8, 4), (3, 2, 1))["L3/axx"], (2, 2, 2))

    def test_subband_std_is_numpy_std(self):
        x = torch.randn(2, 8, 8, 8, dtype=torch.float64, generator=_GEN)
        bands = wavedec_nd(x, "db2", (1, 1, 1))
        stds = subband_std(bands, spatial_dims=3)
        np.testing.assert_allclose(stds["L1/dad"].numpy(), bands["L1/dad"].numpy().reshape(2, -1).std(axis=1))


class TestBadInput(unittest.TestCase):
    def test_length_not_multiple_of_two_to_the_levels(self):
        with pytest.raises(ValueError, match="multiple of 2\\*\\*2"):
            wavedec_nd(torch.zeros(6, 8, 8), "haar", (2, 2, 2))

    def test_integer_tensor(self):
        with pytest.raises(TypeError, match="floating"):
            wavedec_nd(torch.zeros(8, 8, dtype=torch.int32), "haar", (1, 1))

    def test_missing_subband(self):
        bands = wavedec_nd(torch.zeros(8, 8), "haar", (1, 1))
        del bands["L1/dd"]
        with pytest.raises(ValueError, match="missing subbands"):
            waverec_nd(bands, "haar", (1, 1))

    def test_bad_levels(self):
        with pytest.raises(ValueError, match="levels"):
            subband_names((0, 0))


class TestInPlaceLayout(unittest.TestCase):
    """The packed (Mallat) layout the codec transforms in place, slab by slab."""

    def test_packed_layout_holds_the_wavedecn_subbands(self):
        x = torch.randn(16, 8, 4, dtype=torch.float64, generator=_GEN)
        levels = (3, 2, 1)
        packed = wavedec_inplace(x.clone(), "db2", levels)
        ref = wavedec_nd(x, "db2", levels)
        for name, where in subband_slices(x.shape, levels).items():
            torch.testing.assert_close(packed[where], ref[name])

    def test_slabs_give_the_same_result_as_one_pass(self):
        # a slab of 64 samples forces dozens of slabs per level; the result must not depend on the slab size
        x = torch.randn(2, 32, 16, 24, dtype=torch.float64, generator=_GEN)
        whole = wavedec_inplace(x.clone(), "bior4.4", (3, 2, 3))
        with mock.patch("medsecure_transforms.frequency.wavelet._SLAB_ELEMENTS", 64):
            slabbed = wavedec_inplace(x.clone(), "bior4.4", (3, 2, 3))
            torch.testing.assert_close(slabbed, whole, atol=1e-12, rtol=0)
            torch.testing.assert_close(waverec_inplace(slabbed, "bior4.4", (3, 2, 3)), x, atol=1e-9, rtol=0)

    def test_transform_overwrites_its_input(self):
        x = torch.randn(8, 8, 8, dtype=torch.float32, generator=_GEN)
        pointer = x.data_ptr()
        out = wavedec_inplace(x, "haar", (1, 1, 1))
        self.assertIs(out, x)
        self.assertEqual(out.data_ptr(), pointer)

    def test_slab_std_matches_torch_std(self):
        x = torch.randn(3, 40, 24, 16, dtype=torch.float32, generator=_GEN) * 5 + 100
        with mock.patch("medsecure_transforms.frequency.wavelet._SLAB_ELEMENTS", 100):
            stds = subband_std({"band": x}, spatial_dims=3)["band"]
        expected = x.double().flatten(1).std(dim=1, correction=0)
        torch.testing.assert_close(stds.double(), expected, rtol=1e-6, atol=0)


@pytest.mark.parametrize(("shape", "limit"), [((10, 3, 4), 25), ((7,), 3), ((5, 100), 10), ((), 4), ((0, 3), 8)])
def test_row_slabs_cover_the_first_axis_in_bounded_pieces(shape, limit):
    slabs = row_slabs(shape, limit)
    rows = list(range((shape or (1,))[0]))
    assert [i for s in slabs for i in rows[s]] == rows  # in order, no gap, no overlap
    row = int(np.prod(shape[1:])) if shape else 1
    assert all(len(rows[s]) * row <= limit or len(rows[s]) == 1 for s in slabs)
