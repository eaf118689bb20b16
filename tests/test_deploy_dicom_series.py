"""DICOM series <-> volume (medsecure_transforms.data.dicom_series): geometry, pixel values, identifiers, errors."""

from __future__ import annotations

import unittest
from pathlib import Path
from tempfile import TemporaryDirectory

import nibabel as nib
import numpy as np
import pydicom
import pytest
from helpers import require_dataset
from parameterized import parameterized

from medsecure_transforms.data.dicom_series import (
    DicomSeriesError,
    identifiers_sidecar,
    load_identifiers,
    nifti_to_dicom_series,
    read_dicom_series,
    save_identifiers,
    validate_dicom_input,
    write_dicom_series,
)

IDENTITY = np.eye(4)
OBLIQUE = np.array(  # rotation about z by 30 degrees, voxel 0.8 x 1.2 x 2.5 mm, non-zero origin
    [
        [0.8 * np.cos(np.pi / 6), -1.2 * np.sin(np.pi / 6), 0.0, -12.0],
        [0.8 * np.sin(np.pi / 6), 1.2 * np.cos(np.pi / 6), 0.0, 40.5],
        [0.0, 0.0, 2.5, 7.25],
        [0.0, 0.0, 0.0, 1.0],
    ]
)
FLIPPED_Z = np.diag([1.0, 1.0, -3.0, 1.0])  # slice axis opposite to the DICOM normal (row x column)


def _volume(shape=(9, 7, 5), seed=0, integer=True):
    rng = np.random.default_rng(seed)
    data = rng.integers(-200, 3000, size=shape) if integer else rng.normal(50.0, 20.0, size=shape)
    return data.astype(np.int16 if integer else np.float32)


def _world(affine, shape):
    """RAS coordinates [N, 3] of every voxel in C order."""
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, 3)
    return ijk @ affine[:3, :3].T + affine[:3, 3]


class TestRoundTrip(unittest.TestCase):
    @parameterized.expand([("identity", IDENTITY), ("oblique", OBLIQUE)])
    def test_integer_volume_is_exact(self, _, affine):
        volume = _volume()
        with TemporaryDirectory() as tmp:
            files = write_dicom_series(volume, affine, tmp, uid_seed="t")
            back = read_dicom_series(tmp)
        self.assertEqual(len(files), volume.shape[2])
        self.assertEqual(back.array.dtype, np.int16)
        np.testing.assert_array_equal(back.array, volume)
        np.testing.assert_allclose(back.affine, affine, atol=1e-6)
        np.testing.assert_allclose(back.spacing, np.linalg.norm(affine[:3, :3], axis=0), atol=1e-6)

    def test_flipped_slice_axis_keeps_world_positions(self):
        volume = _volume()
        with TemporaryDirectory() as tmp:
            write_dicom_series(volume, FLIPPED_Z, tmp)
            back = read_dicom_series(tmp)
        # slices come back ordered along the DICOM normal, so the array flips and the affine follows it
        np.testing.assert_array_equal(back.array, volume[:, :, ::-1])
        order = np.argsort(_world(FLIPPED_Z, volume.shape) @ [1, 10, 100], kind="stable")
        order_back = np.argsort(_world(back.affine, volume.shape) @ [1, 10, 100], kind="stable")
        np.testing.assert_array_equal(volume.reshape(-1)[order], back.array.reshape(-1)[order_back])

    def test_float_volume_within_half_a_step(self):
        volume = _volume(integer=False)
        with TemporaryDirectory() as tmp:
            write_dicom_series(volume, IDENTITY, tmp)
            back = read_dicom_series(tmp)
            slope = float(pydicom.dcmread(Path(tmp) / "slice_0000.dcm").RescaleSlope)
        self.assertEqual(back.array.dtype, np.float32)
        expected_slope = (volume.max() - volume.min()) / 65535.0
        self.assertAlmostEqual(slope, expected_slope, delta=1e-9 * expected_slope)
        self.assertLessEqual(np.abs(back.array - volume).max(), 0.5 * slope * (1 + 1e-6) + 1e-6)

    def test_pixel_layout_rows_are_y(self):
        volume = np.zeros((4, 3, 2), dtype=np.int16)
        volume[3, 1, 0] = 7  # column 3, row 1 of the first slice
        with TemporaryDirectory() as tmp:
            write_dicom_series(volume, IDENTITY, tmp)
            ds = pydicom.dcmread(Path(tmp) / "slice_0000.dcm")
        self.assertEqual((ds.Rows, ds.Columns), (3, 4))
        self.assertEqual(ds.pixel_array[1, 3], 7)
        # RAS identity -> LPS: rows run along -x, columns along -y
        np.testing.assert_allclose([float(v) for v in ds.ImageOrientationPatient], [-1, 0, 0, 0, -1, 0])

    def test_uid_seed_is_deterministic_and_uids_are_new(self):
        volume = _volume()
        with TemporaryDirectory() as a, TemporaryDirectory() as b, TemporaryDirectory() as c:
            write_dicom_series(volume, IDENTITY, a, uid_seed="s")
            write_dicom_series(volume, IDENTITY, b, uid_seed="s")
            write_dicom_series(volume, IDENTITY, c)
            files = [sorted(Path(d).glob("*.dcm")) for d in (a, b, c)]
            self.assertTrue(all(x.read_bytes() == y.read_bytes() for x, y in zip(files[0], files[1], strict=True)))
            uids_a = {pydicom.dcmread(f).SOPInstanceUID for f in files[0]}
            uids_c = {pydicom.dcmread(f).SOPInstanceUID for f in files[2]}
        self.assertEqual(len(uids_a), volume.shape[2])
        self.assertFalse(uids_a & uids_c)


class TestIdentifiers(unittest.TestCase):
    SOURCE = {"PatientName": "Doe^Jane", "PatientID": "P123", "StudyInstanceUID": "1.2.3.4", "AccessionNumber": "A9"}

    def test_carried_only_when_given(self):
        volume = _volume()
        with TemporaryDirectory() as kept, TemporaryDirectory() as dropped:
            write_dicom_series(volume, IDENTITY, kept, identifiers=self.SOURCE)
            write_dicom_series(volume, IDENTITY, dropped)
            ds_kept = pydicom.dcmread(Path(kept) / "slice_0000.dcm")
            ds_dropped = pydicom.dcmread(Path(dropped) / "slice_0000.dcm")
            read_kept = read_dicom_series(kept).identifiers
        self.assertEqual((str(ds_kept.PatientName), ds_kept.PatientID), ("Doe^Jane", "P123"))
        self.assertEqual(ds_kept.StudyInstanceUID, "1.2.3.4")
        self.assertEqual({k: read_kept[k] for k in self.SOURCE}, self.SOURCE)
        self.assertEqual((str(ds_dropped.PatientName), ds_dropped.PatientID, ds_dropped.AccessionNumber), ("", "", ""))
        self.assertNotEqual(ds_dropped.StudyInstanceUID, "1.2.3.4")

    def test_sidecar_round_trip_and_validation(self):
        with TemporaryDirectory() as tmp:
            path = identifiers_sidecar(Path(tmp) / "scan.mvc")
            self.assertEqual(path.name, "scan.mvc.identifiers.json")
            save_identifiers(path, self.SOURCE)
            self.assertEqual(load_identifiers(path), self.SOURCE)
            path.write_text('{"PatientID": 5}')
            with self.assertRaisesRegex(DicomSeriesError, "object of strings"):
                load_identifiers(path)
            path.write_text('{"OtherPatientIDs": "x"}')
            with self.assertRaisesRegex(DicomSeriesError, "unknown identifier"):
                load_identifiers(path)

    def test_unknown_identifier_rejected(self):
        with TemporaryDirectory() as tmp, self.assertRaisesRegex(DicomSeriesError, "unknown identifier"):
            write_dicom_series(_volume(), IDENTITY, tmp, identifiers={"InstitutionName": "x"})


class TestErrors(unittest.TestCase):
    def _series(self, tmp, **kwargs):
        return write_dicom_series(_volume(), IDENTITY, tmp, **kwargs)

    def test_missing_pixel_data(self):
        with TemporaryDirectory() as tmp:
            files = self._series(tmp)
            ds = pydicom.dcmread(files[2])
            del ds.PixelData
            ds.save_as(files[2])
            for check in (read_dicom_series, validate_dicom_input):
                with self.assertRaisesRegex(DicomSeriesError, "slice_0002.dcm: missing pixel data"):
                    check(tmp)

    def test_truncated_pixel_data(self):
        with TemporaryDirectory() as tmp:
            files = self._series(tmp)
            ds = pydicom.dcmread(files[1])
            ds.PixelData = ds.PixelData[:10]
            ds.save_as(files[1])
            with self.assertRaisesRegex(DicomSeriesError, "pixel data has 10 bytes"):
                read_dicom_series(tmp)

    def test_two_series_need_a_choice(self):
        with TemporaryDirectory() as tmp:
            self._series(Path(tmp) / "a", uid_seed="a")
            self._series(Path(tmp) / "b", uid_seed="b")
            with self.assertRaisesRegex(DicomSeriesError, "mixed series: 2 series"):
                read_dicom_series(tmp)
            uid = pydicom.dcmread(Path(tmp) / "b" / "slice_0000.dcm").SeriesInstanceUID
            self.assertEqual(read_dicom_series(tmp, series_instance_uid=uid).series_instance_uid, uid)
            self.assertEqual(sorted(validate_dicom_input(tmp).values()), [5, 5])

    def test_mixed_slice_sizes_in_one_series(self):
        with TemporaryDirectory() as tmp, TemporaryDirectory() as elsewhere:
            files = self._series(tmp, uid_seed="m")
            other = write_dicom_series(_volume((6, 7, 5)), IDENTITY, elsewhere, uid_seed="m")
            other[0].replace(files[0])  # same series UID, 7 x 6 pixels instead of 7 x 9
            for check in (read_dicom_series, validate_dicom_input):
                with self.assertRaisesRegex(DicomSeriesError, "mixed series: 7x9 pixels, first slice has 7x6"):
                    check(tmp)

    def test_duplicate_and_uneven_slices(self):
        with TemporaryDirectory() as tmp:
            files = self._series(tmp)
            ds = pydicom.dcmread(files[3])
            ds.ImagePositionPatient = pydicom.dcmread(files[2]).ImagePositionPatient
            ds.save_as(files[3])
            with self.assertRaisesRegex(DicomSeriesError, "share the same position"):
                read_dicom_series(tmp)
            ds.ImagePositionPatient = [0.0, 0.0, -3.6]
            ds.save_as(files[3])
            with self.assertRaisesRegex(DicomSeriesError, "non-uniform slice spacing"):
                read_dicom_series(tmp)

    def test_corrupt_dcm_file_and_empty_folder(self):
        with TemporaryDirectory() as tmp:
            with self.assertRaisesRegex(DicomSeriesError, "no DICOM instances"):
                read_dicom_series(tmp)
            self._series(tmp)
            (Path(tmp) / "notes.txt").write_text("not DICOM, ignored")
            self.assertEqual(read_dicom_series(tmp).array.shape, (9, 7, 5))
            (Path(tmp) / "broken.dcm").write_bytes(b"\x00" * 50)
            with self.assertRaisesRegex(DicomSeriesError, "broken.dcm: not a readable DICOM file"):
                read_dicom_series(tmp)

    @parameterized.expand(
        [
            ("2d", np.zeros((4, 4)), IDENTITY, "must be 3D"),
            ("nan", np.full((2, 2, 2), np.nan), IDENTITY, "finite"),
            ("affine shape", np.zeros((2, 2, 2)), np.eye(3), "4x4"),
            (
                "skewed",
                np.zeros((2, 2, 2)),
                np.array([[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]]),
                "not orthogonal",
            ),
            ("16 bits", np.array([-1, 40000, 0, 0, 0, 0, 0, 0]).reshape(2, 2, 2), IDENTITY, "16 bits"),
        ]
    )
    def test_bad_write_input(self, _, volume, affine, message):
        with TemporaryDirectory() as tmp, self.assertRaisesRegex(DicomSeriesError, message):
            write_dicom_series(volume, affine, tmp)


def test_hippocampus_nifti_round_trip(data_root):
    """A real MSD hippocampus volume survives NIfTI -> DICOM -> volume bit-exactly, affine included."""
    case = require_dataset(data_root, "hippocampus-msd") / "images" / "hippocampus_001.nii.gz"
    if not case.is_file():
        pytest.skip(f"{case} not present")
    image = nib.load(case)
    with TemporaryDirectory() as tmp:
        nifti_to_dicom_series(case, tmp)
        back = read_dicom_series(tmp)
    np.testing.assert_array_equal(back.array, np.asanyarray(image.dataobj))
    np.testing.assert_allclose(back.affine, image.affine, atol=1e-5)
