"""Compressed transmission of DICOM series: ``medsecure compress <dicom dir>`` / ``medsecure decompress -> dicom``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from medsecure_transforms.cli.main import main
from medsecure_transforms.codecs.mvc.codec import decompress_volume
from medsecure_transforms.data.dicom_series import (
    DicomSeriesError,
    identifiers_sidecar,
    read_dicom_series,
    write_dicom_series,
)

IDENTIFIERS = {"PatientName": "Doe^Jane", "PatientID": "P123", "StudyInstanceUID": "1.2.3.4.5", "StudyDate": "20200102"}
AFFINE = np.array([[0.0, -1.1, 0.0, 12.0], [0.9, 0.0, 0.0, -7.0], [0.0, 0.0, 2.0, 3.5], [0.0, 0.0, 0.0, 1.0]])


@pytest.fixture()
def source(tmp_path) -> Path:
    """A smooth int16 MR-like series (24 x 20 x 12) with patient/study identifiers."""
    x, y, z = np.meshgrid(np.arange(24), np.arange(20), np.arange(12), indexing="ij")
    volume = (800 * np.exp(-((x - 12) ** 2 + (y - 10) ** 2 + (z - 6) ** 2) / 60.0) + 3 * x).astype(np.int16)
    write_dicom_series(volume, AFFINE, tmp_path / "source", identifiers=IDENTIFIERS, uid_seed="src")
    return tmp_path / "source"


def _uids(folder: Path) -> set[str]:
    return {pydicom.dcmread(p).SOPInstanceUID for p in folder.glob("*.dcm")}


def test_dicom_round_trip_keeps_geometry_and_identifiers_when_asked(source, tmp_path):
    mvc = tmp_path / "scan.mvc"
    assert main(["compress", str(source), str(mvc), "--keep-identifiers"]) == 0
    assert identifiers_sidecar(mvc).is_file()
    assert main(["decompress", str(mvc), str(tmp_path / "kept")]) == 0
    decoded, _ = decompress_volume(mvc.read_bytes())
    back, original = read_dicom_series(tmp_path / "kept"), read_dicom_series(source)
    np.testing.assert_allclose(back.affine, original.affine, atol=1e-6)
    np.testing.assert_array_equal(back.array, decoded)  # pixel data are the decoded volume
    assert np.abs(back.array.astype(float) - original.array).max() < 0.2 * np.ptp(original.array)  # lossy codec
    assert not _uids(tmp_path / "kept") & _uids(source)  # new SOP Instance UIDs
    assert back.series_instance_uid != original.series_instance_uid
    assert {k: back.identifiers[k] for k in IDENTIFIERS} == IDENTIFIERS

    assert main(["decompress", str(mvc), str(tmp_path / "dropped"), "--drop-identifiers"]) == 0
    dropped = pydicom.dcmread(sorted((tmp_path / "dropped").glob("*.dcm"))[0])
    assert (str(dropped.PatientName), dropped.PatientID) == ("", "")
    assert dropped.StudyInstanceUID != IDENTIFIERS["StudyInstanceUID"]


def test_identifiers_dropped_by_default(source, tmp_path, capsys):
    mvc = tmp_path / "scan.mvc"
    identifiers_sidecar(mvc).write_text('{"PatientID": "stale"}')
    assert main(["compress", str(source), str(mvc)]) == 2  # a stale sidecar would describe the new file
    assert "--overwrite" in capsys.readouterr().err and not mvc.exists()
    assert main(["compress", str(source), str(mvc), "--overwrite"]) == 0
    assert not identifiers_sidecar(mvc).exists()  # a stale sidecar of an earlier run is removed
    assert main(["decompress", str(mvc), str(tmp_path / "out")]) == 0
    assert pydicom.dcmread(sorted((tmp_path / "out").glob("*.dcm"))[0]).PatientID == ""


def test_decompress_refuses_a_non_empty_folder_unless_overwrite(source, tmp_path, capsys):
    mvc = tmp_path / "scan.mvc"
    assert main(["compress", str(source), str(mvc)]) == 0
    before, old_uids = sorted(p.name for p in source.iterdir()), _uids(source)
    assert main(["decompress", str(mvc), str(source)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert sorted(p.name for p in source.iterdir()) == before
    with pytest.raises(DicomSeriesError, match="empty or new folder"):
        write_dicom_series(np.zeros((4, 4, 2), np.int16), AFFINE, source)
    assert main(["decompress", str(mvc), str(source), "--overwrite"]) == 0  # replaced as a whole
    assert _uids(source).isdisjoint(old_uids)
    assert read_dicom_series(source).array.shape == (24, 20, 12)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left


@pytest.mark.parametrize("lossless", [False, True])
def test_decoded_series_declares_lossy_compression(source, tmp_path, lossless):
    mvc = tmp_path / "scan.mvc"
    assert main(["compress", str(source), str(mvc)] + ["--lossless"] * lossless) == 0
    assert main(["decompress", str(mvc), str(tmp_path / "out")]) == 0
    _, header = decompress_volume(mvc.read_bytes())
    for path in sorted((tmp_path / "out").glob("*.dcm")):
        ds = pydicom.dcmread(path)
        assert ds.ImageType[0] == "DERIVED"
        if lossless:
            assert "LossyImageCompression" not in ds
        else:
            assert ds.LossyImageCompression == "01"
            assert float(ds.LossyImageCompressionRatio) == pytest.approx(header.compression_ratio, rel=1e-5)
            assert ds.LossyImageCompressionMethod == "MEDSECURE_MVC"
