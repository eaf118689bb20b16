"""MVCompress3D / MVCompress3Dd MONAI transforms: type, dtype, metadata and error handling."""

from __future__ import annotations

import unittest

import numpy as np
import pytest
import torch
from helpers import input_types, phantom
from monai.data import MetaTensor
from parameterized import parameterized

from medsecure_transforms.codecs.mvc.codec import MVWaveletCodec
from medsecure_transforms.transforms import MVCompress3D, MVCompress3DD, MVCompress3Dd, MVCompress3DDict

VOLUME = phantom((32, 24, 16))[None]  # [C, H, W, D]
OUT_TYPES = {"numpy": np.ndarray, "torch": torch.Tensor, "metatensor": MetaTensor}
AFFINE = torch.diag(torch.tensor([2.0, 2, 5, 1]))


class TestMVCompress3DTransform(unittest.TestCase):
    @parameterized.expand(
        [
            (f"{name}_{np.dtype(dtype)}", wrap, dtype, OUT_TYPES[name])
            for name, wrap in input_types(affine=AFFINE)
            for dtype in (np.int16, np.float32)
        ]
    )
    def test_type_dtype_and_matches_codec(self, _name, wrap, dtype, out_type):
        img = wrap(VOLUME.astype(dtype))
        out = MVCompress3D(q_max=8.0)(img)
        self.assertIsInstance(out, out_type)
        self.assertEqual(out.dtype, img.dtype)
        self.assertEqual(tuple(out.shape), VOLUME.shape)
        codec = MVWaveletCodec(q_max=8.0)
        expected, _ = codec.decode(codec.encode(np.asarray(img)))
        np.testing.assert_allclose(np.asarray(out), expected, atol=1e-4)

    def test_metadata_records_the_rate(self):
        out = MVCompress3D(target_ratio=15.0)(MetaTensor(torch.as_tensor(VOLUME)))
        stats = out.meta["mv_compress3d"]
        self.assertAlmostEqual(stats["compression_ratio"], 15.0, delta=15.0 * 0.03)
        self.assertEqual(stats["original_bytes"], VOLUME.nbytes)
        self.assertAlmostEqual(stats["q_max"] / stats["q_min"], 16.0)

    def test_dict_version_and_aliases(self):
        self.assertIs(MVCompress3DD, MVCompress3Dd)
        self.assertIs(MVCompress3DDict, MVCompress3Dd)
        data = {"image": MetaTensor(torch.as_tensor(VOLUME)), "label": np.zeros_like(VOLUME)}
        out = MVCompress3Dd("image", codec={"wavelet": "haar"})(data)
        self.assertIs(out["label"], data["label"])
        self.assertIn("mv_compress3d", out["image"].meta)

    def test_state_file(self):
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as tmp:
            MVWaveletCodec(mapping="uniform", q_min=3.0).save(Path(tmp) / "codec.json")
            transform = MVCompress3D(Path(tmp) / "codec.json")
        self.assertEqual(transform.codec.mapping, "uniform")
        self.assertEqual(transform.codec.q_min, 3.0)

    def test_bad_input_names_key_and_shape(self):
        with pytest.raises(ValueError, match="key 'image'.*channel-first"):
            MVCompress3Dd("image")({"image": np.zeros((32, 24, 16), np.int16)})
        nan = VOLUME.astype(np.float32)
        nan[0, 0, 0, 0] = np.nan
        with pytest.raises(ValueError, match="NaN"):
            MVCompress3D()(nan)
        with pytest.raises(TypeError):
            MVCompress3D()([1, 2, 3])
        with pytest.raises(ValueError, match="target_ratio"):
            MVCompress3D(target_ratio=0.5)
