"""``medsecure compress`` / ``decompress`` on NIfTI: affine and dtype preserved, errors for bad files."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from helpers import phantom, run_codec_cli

from medsecure_transforms.codecs import CorruptStreamError
from medsecure_transforms.data.volume_io import read_volume, write_nifti


@pytest.mark.parametrize(
    "affine",
    [
        np.diag([1.37, 1.37, 10.0, 1.0]),  # float32-exact: NIfTI-1
        np.array([[0.7, 0.1, 0, -10.5], [0, 1.3, 0.2, 20.25], [0.05, 0, 5.0, 3.3], [0, 0, 0, 3]]) / 3,  # NIfTI-2
    ],
)
def test_nifti_round_trip_keeps_affine_and_dtype(tmp_path, capsys, affine):
    volume = phantom((32, 24, 16))
    write_nifti(tmp_path / "in.nii.gz", volume, affine)
    assert run_codec_cli("compress", str(tmp_path / "in.nii.gz"), str(tmp_path / "x.mvc"), "--q-max", "8") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["codec"]["q_max"] == 8.0
    assert run_codec_cli("decompress", str(tmp_path / "x.mvc"), str(tmp_path / "out.nii.gz")) == 0
    out = nib.load(tmp_path / "out.nii.gz")
    np.testing.assert_array_equal(out.affine, affine)
    assert out.get_data_dtype() == np.int16
    decoded = np.asarray(out.dataobj)
    assert decoded.shape == volume.shape
    assert np.abs(decoded.astype(float) - volume).mean() < 0.05 * (volume.max() - volume.min())


def test_target_ratio_and_state_file(tmp_path, capsys):
    np.save(tmp_path / "v.npy", phantom((32, 32, 16)))
    (tmp_path / "state.json").write_text(json.dumps({"wavelet": "db2", "levels": [2, 2, 2]}))
    run_codec_cli(
        "compress",
        str(tmp_path / "v.npy"),
        str(tmp_path / "v.mvc"),
        "--state",
        str(tmp_path / "state.json"),
        "--target-ratio",
        "12",
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["codec"]["wavelet"] == "db2"
    assert abs(summary["compression_ratio"] - 12) < 12 * 0.03


def test_read_volume_matches_nibabel(tmp_path):
    volume = phantom((16, 16, 8))
    affine = np.diag([2.0, 2.0, 5.0, 1.0])
    nib.save(nib.Nifti1Image(volume, affine), tmp_path / "a.nii.gz")
    array, read_affine, spacing = read_volume(tmp_path / "a.nii.gz")
    np.testing.assert_array_equal(array, volume)
    np.testing.assert_array_equal(read_affine, affine)
    assert spacing == (2.0, 2.0, 5.0)


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        run_codec_cli("compress", str(tmp_path / "missing.nii.gz"), str(tmp_path / "x.mvc"))
    (tmp_path / "bad.mvc").write_bytes(b"MVC3" + bytes(64))
    with pytest.raises(CorruptStreamError):
        run_codec_cli("decompress", str(tmp_path / "bad.mvc"), str(tmp_path / "out.nii.gz"))


def test_dicom_series_folder_matches_the_deploy_reader(tmp_path, capsys):
    from medsecure_transforms.data.dicom_series import read_dicom_series, write_dicom_series

    volume = phantom((24, 20, 8))
    affine = np.array([[0.8, 0, 0, -20.0], [0, 0.9, 0, 10.0], [0, 0, 3.0, 5.0], [0, 0, 0, 1]])
    write_dicom_series(volume, affine, tmp_path / "series", uid_seed="mvc")
    array, read_affine, spacing = read_volume(tmp_path / "series")
    reference = read_dicom_series(tmp_path / "series")
    assert array.dtype == np.int16
    np.testing.assert_array_equal(array, volume)
    np.testing.assert_allclose(read_affine, reference.affine, atol=1e-6)
    np.testing.assert_allclose(spacing, (0.8, 0.9, 3.0), atol=1e-6)
    run_codec_cli("compress", str(tmp_path / "series"), str(tmp_path / "s.mvc"))
    assert json.loads(capsys.readouterr().out)["original_bytes"] == volume.nbytes
