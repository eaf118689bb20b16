"""Issue 17 item 5: MVCompress3D's ratios against the dtype the file stores, not only the float32 array in memory."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from helpers import phantom
from monai.data import MetaTensor
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged
from PIL import Image

from medsecure_transforms.transforms import MVCompress3D, MVCompress3Dd
from medsecure_transforms.transforms.mv_compress import stored_dtype

VOLUME = phantom((32, 24, 16))  # int16 [H, W, D]
TOLERANCE = 0.03  # encode_to_ratio's rel_tol


@pytest.fixture(scope="module")
def nifti(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("mvc") / "int16.nii.gz"
    nib.save(nib.Nifti1Image(VOLUME, np.eye(4)), path)
    return str(path)


def load(path: str, reader: str = "NibabelReader") -> dict:
    """A default ``LoadImaged`` (float32 in memory) and ``EnsureChannelFirstd``."""
    return Compose([LoadImaged("image", reader=reader), EnsureChannelFirstd("image")])({"image": path})


@pytest.mark.parametrize("reader", ["NibabelReader", "ITKReader"])
def test_target_ratio_refers_to_the_stored_dtype(nifti, reader):
    data = load(nifti, reader)
    assert data["image"].dtype == torch.float32
    stats = MVCompress3Dd("image", target_ratio=15.0)(data)["image"].meta["mv_compress3d"]
    file_pixel_bytes = VOLUME.size * nib.load(nifti).get_data_dtype().itemsize
    assert (stats["stored_dtype"], stats["stored_dtype_source"]) == ("int16", "NIfTI datatype 4")
    assert stats["original_bytes"] == file_pixel_bytes and stats["in_memory_bytes"] == 2 * file_pixel_bytes
    assert file_pixel_bytes / stats["compressed_bytes"] == pytest.approx(15.0, rel=TOLERANCE)
    assert stats["compression_ratio"] == pytest.approx(file_pixel_bytes / stats["compressed_bytes"])
    assert stats["in_memory_compression_ratio"] == pytest.approx(2 * stats["compression_ratio"])
    assert stats["in_memory_dtype"] == "float32" and stats["ratio_against"] == "stored"


def test_ratio_against_memory_and_fixed_steps(nifti):
    data = load(nifti)
    stats = MVCompress3Dd("image", target_ratio=15.0, ratio_against="memory")(data)["image"].meta["mv_compress3d"]
    assert stats["in_memory_compression_ratio"] == pytest.approx(15.0, rel=TOLERANCE)
    assert stats["compression_ratio"] == pytest.approx(stats["in_memory_compression_ratio"] / 2)
    fixed = MVCompress3Dd("image")(load(nifti))["image"].meta["mv_compress3d"]  # no target: both ratios reported
    assert fixed["compression_ratio"] == pytest.approx(fixed["in_memory_compression_ratio"] / 2)
    with pytest.raises(ValueError, match="ratio_against must be one of"):
        MVCompress3D(ratio_against="disk")


def test_without_reader_metadata_the_in_memory_dtype_is_used_and_said():
    image = VOLUME[None].astype(np.float32)
    for img in (image, MetaTensor(torch.as_tensor(image))):
        stats = MVCompress3D(target_ratio=15.0)(MetaTensor(torch.as_tensor(img))).meta["mv_compress3d"]
        assert stats["stored_dtype"] == "float32"
        assert stats["stored_dtype_source"] == "in-memory dtype (no stored dtype in the metadata)"
        assert stats["compression_ratio"] == stats["in_memory_compression_ratio"]
        assert stats["compression_ratio"] == pytest.approx(15.0, rel=TOLERANCE)
    assert stored_dtype(image) == (None, "no stored dtype in the metadata")


def test_stored_dtype_of_pil_images(tmp_path):
    Image.fromarray(np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).save(tmp_path / "a.png")
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(tmp_path / "b.png")
    assert stored_dtype(load(str(tmp_path / "a.png"), "PILReader")["image"]) == (np.dtype("uint16"), "PIL mode 'I;16'")
    assert stored_dtype(load(str(tmp_path / "b.png"), "PILReader")["image"]) == (np.dtype("uint8"), "PIL mode 'L'")
