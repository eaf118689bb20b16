"""Block DCT / quantization math against scipy.fft.dctn(norm="ortho") applied block by block."""

from __future__ import annotations

import unittest

import numpy as np
import scipy.fft
import torch
from parameterized import parameterized
from PIL import Image

from medsecure_transforms.frequency import (
    block_dct2,
    block_idct2,
    block_quantize_roundtrip,
    dct_matrix,
    dequantize,
    pad_to_block,
    quantize,
    rgb_to_ycbcr,
    to_blocks,
    ycbcr_to_rgb,
)


def blockwise(fn, x: np.ndarray, b: int = 8) -> np.ndarray:
    """Apply ``fn`` to every b x b tile of the last two axes (the reference loop)."""
    out = np.empty_like(x)
    for i in range(0, x.shape[-2], b):
        for j in range(0, x.shape[-1], b):
            out[..., i : i + b, j : j + b] = fn(x[..., i : i + b, j : j + b])
    return out


def ref_dct(t):
    return scipy.fft.dctn(t, axes=(-2, -1), norm="ortho")


def ref_idct(t):
    return scipy.fft.idctn(t, axes=(-2, -1), norm="ortho")


class TestBlockDCT(unittest.TestCase):
    def test_matrix_is_scipy_dct_and_orthonormal(self):
        d = dct_matrix(8).numpy()
        np.testing.assert_allclose(d, scipy.fft.dct(np.eye(8), norm="ortho", axis=0), atol=1e-12)
        np.testing.assert_allclose(d @ d.T, np.eye(8), atol=1e-12)

    @parameterized.expand(
        [
            ((2, 3, 16, 24), torch.float64, 1e-10),
            ((1, 8, 8), torch.float32, 1e-4),
            ((2, 1, 3, 8, 40), torch.float64, 1e-10),
        ]
    )
    def test_forward_and_inverse_match_scipy(self, shape, dtype, atol):
        x = np.random.default_rng(0).normal(size=shape) * 50
        coeffs = block_dct2(torch.tensor(x, dtype=dtype))
        self.assertEqual(coeffs.dtype, dtype)
        np.testing.assert_allclose(coeffs.numpy(), blockwise(ref_dct, x), atol=atol * 50)
        np.testing.assert_allclose(block_idct2(coeffs).numpy(), x, atol=atol * 50)

    def test_quantize_dequantize_tiles_the_table(self):
        rng = np.random.default_rng(1)
        c = rng.normal(size=(2, 16, 16)) * 40
        table = rng.integers(1, 30, size=(8, 8)).astype(float)
        levels = quantize(torch.tensor(c), torch.tensor(table)).numpy()
        np.testing.assert_array_equal(levels, np.round(c / np.tile(table, (2, 2))))
        np.testing.assert_allclose(
            dequantize(torch.tensor(levels), torch.tensor(table)).numpy(), levels * np.tile(table, (2, 2))
        )

    @parameterized.expand([((3, 20, 13),), ((1, 8, 8),), ((2, 2, 9, 17),)])
    def test_roundtrip_equals_padded_reference_loop(self, shape):
        rng = np.random.default_rng(2)
        x = rng.uniform(-128, 127, size=shape)
        table = rng.integers(1, 60, size=(8, 8)).astype(float)
        pad = [(0, 0)] * (x.ndim - 2) + [(0, (-shape[-2]) % 8), (0, (-shape[-1]) % 8)]
        padded = np.pad(x, pad, mode="edge")
        expected = blockwise(lambda t: ref_idct(np.round(ref_dct(t) / table) * table), padded)[
            ..., : shape[-2], : shape[-1]
        ]
        out = block_quantize_roundtrip(torch.tensor(x), torch.tensor(table))
        self.assertEqual(tuple(out.shape), shape)
        np.testing.assert_allclose(out.numpy(), expected, atol=1e-9)

    @parameterized.expand([((2, 3, 24, 40),), ((1, 16, 24),), ((2, 8, 8),)])
    def test_roundtrip_same_in_slabs_whole_and_with_autograd(self, shape):
        x = torch.rand(shape, dtype=torch.float64)
        table = torch.tensor(np.random.default_rng(5).integers(1, 60, size=(8, 8)), dtype=torch.float64)
        whole = block_quantize_roundtrip(x, table, 255.0, -128.0, (0.0, 1.0), slab_elements=1 << 30)
        one_block_row = block_quantize_roundtrip(x, table, 255.0, -128.0, (0.0, 1.0), slab_elements=1)
        np.testing.assert_array_equal(one_block_row.numpy(), whole.numpy())
        strided_inputs = [x.mT.contiguous().mT]
        if x.ndim == 4:
            strided_inputs.append(x.contiguous(memory_format=torch.channels_last))
        for strided in strided_inputs:
            self.assertFalse(strided.is_contiguous())
            out = block_quantize_roundtrip(strided, table, 255.0, -128.0, (0.0, 1.0), slab_elements=64)
            np.testing.assert_array_equal(out.numpy(), whole.numpy())
        xg = x.clone().requires_grad_(True)
        tracked = block_quantize_roundtrip(xg, table, 255.0, -128.0, (0.0, 1.0))
        np.testing.assert_allclose(tracked.detach().numpy(), whole.numpy(), atol=1e-12)
        tracked.sum().backward()  # round() has zero derivative: the graph exists and gives zeros
        np.testing.assert_array_equal(xg.grad.numpy(), np.zeros(shape))

    def test_affine_coding_space_is_folded_in(self):
        rng = np.random.default_rng(4)
        x = rng.uniform(0, 1, size=(2, 16, 8))
        table = rng.integers(1, 60, size=(8, 8)).astype(float)
        z = 255 * x - 128
        expected = (blockwise(lambda t: ref_idct(np.round(ref_dct(t) / table) * table), z) + 128) / 255
        out = block_quantize_roundtrip(torch.tensor(x), torch.tensor(table), gain=255.0, shift=-128.0)
        np.testing.assert_allclose(out.numpy(), expected, atol=1e-10)
        with self.assertRaisesRegex(ValueError, "gain"):
            block_quantize_roundtrip(torch.tensor(x), torch.tensor(table), gain=0.0)

    def test_pad_replicates_edges(self):
        x = torch.arange(10.0).reshape(1, 1, 2, 5)
        padded, size = pad_to_block(x)
        self.assertEqual(size, (2, 5))
        np.testing.assert_array_equal(padded[0, 0].numpy(), np.pad(x[0, 0].numpy(), ((0, 6), (0, 3)), mode="edge"))

    def test_gradient_flows_through_transform(self):
        x = torch.rand(1, 8, 8, dtype=torch.float64, requires_grad=True)
        block_idct2(block_dct2(x)).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), np.ones((1, 8, 8)), atol=1e-12)

    def test_bad_inputs(self):
        with self.assertRaisesRegex(ValueError, "multiple of the block"):
            to_blocks(torch.zeros(1, 9, 8))
        with self.assertRaisesRegex(TypeError, "floating-point"):
            block_dct2(torch.zeros(1, 8, 8, dtype=torch.int32))
        with self.assertRaisesRegex(ValueError, "> 0"):
            block_quantize_roundtrip(torch.zeros(1, 8, 8), torch.zeros(8, 8))
        with self.assertRaisesRegex(ValueError, "square"):
            quantize(torch.zeros(1, 8, 8), torch.ones(8, 4))


class TestYCbCr(unittest.TestCase):
    def test_known_values_and_inverse(self):
        rgb = torch.tensor([[255.0, 255, 255], [255, 0, 0], [0, 0, 0]]).T.reshape(1, 3, 3)
        ycc = rgb_to_ycbcr(rgb)[0].T.numpy()
        np.testing.assert_allclose(ycc[0], [255, 128, 128], atol=1e-3)
        np.testing.assert_allclose(ycc[1], [0.299 * 255, 128 - 0.168736 * 255, 128 + 0.5 * 255], atol=1e-3)
        np.testing.assert_allclose(ycc[2], [0, 128, 128], atol=1e-6)
        np.testing.assert_allclose(ycbcr_to_rgb(rgb_to_ycbcr(rgb)).numpy(), rgb.numpy(), atol=1e-4)

    def test_matches_pillow_within_rounding(self):
        img = np.random.default_rng(3).integers(0, 256, size=(6, 7, 3), dtype=np.uint8)
        ref = np.asarray(Image.fromarray(img).convert("YCbCr"), dtype=np.float64)
        ours = rgb_to_ycbcr(torch.tensor(img, dtype=torch.float64).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
        self.assertLessEqual(np.abs(ours - ref).max(), 1.0)

    def test_channel_check(self):
        with self.assertRaisesRegex(ValueError, r"\[B, 3"):
            rgb_to_ycbcr(torch.zeros(1, 1, 4, 4))


if __name__ == "__main__":
    unittest.main()
