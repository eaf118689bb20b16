"""DICOM series integrity: truncated, gapped or damaged series are refused; writes are atomic; lossy tags are set."""

from __future__ import annotations

import unittest
from pathlib import Path
from tempfile import TemporaryDirectory
from unittest import mock

import numpy as np
import pydicom
from parameterized import parameterized

from medsecure_transforms.data.dicom_series import (
    DicomSeriesError,
    LossyCompression,
    read_dicom_series,
    validate_dicom_input,
    write_dicom_series,
)

VOLUME = np.arange(6 * 5 * 8, dtype=np.int16).reshape(6, 5, 8)


def _edit(path: Path, **attributes) -> None:
    ds = pydicom.dcmread(path)
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.save_as(path)


class TestTruncatedSeries(unittest.TestCase):
    def test_missing_tail_slices_are_refused(self):
        # a writer killed after 5 of 8 slices: contiguous InstanceNumbers and uniform spacing, only the count tells
        with TemporaryDirectory() as tmp:
            files = write_dicom_series(VOLUME, np.eye(4), tmp)
            for path in files[5:]:
                path.unlink()
            for check in (read_dicom_series, validate_dicom_input):
                with self.assertRaisesRegex(DicomSeriesError, r"incomplete series: 5 slices found.*\[8\]"):
                    check(tmp)

    def test_instance_number_gap_is_refused(self):
        with TemporaryDirectory() as tmp:
            files = write_dicom_series(VOLUME, np.eye(4), tmp)
            for path in files:
                _edit(path, ImagesInAcquisition="")  # a source that records no count
            _edit(files[7], InstanceNumber=12)
            with self.assertRaisesRegex(DicomSeriesError, "InstanceNumber 1..12 lacks 8, 9, 10, 11"):
                read_dicom_series(tmp)

    def test_complete_series_without_counts_still_reads(self):
        with TemporaryDirectory() as tmp:
            files = write_dicom_series(VOLUME, np.eye(4), tmp)
            for path in files:
                _edit(path, ImagesInAcquisition="", InstanceNumber="")
            np.testing.assert_array_equal(read_dicom_series(tmp).array, VOLUME)


class TestDamagedHeaders(unittest.TestCase):
    @parameterized.expand(
        [
            ("nan_position", {"ImagePositionPatient": [float("nan"), 0.0, 3.0]}, "ImagePositionPatient .* finite"),
            ("zero_slope", {"RescaleSlope": "0"}, "RescaleSlope 0.* non-zero"),
            ("inf_intercept", {"RescaleIntercept": "inf"}, "RescaleIntercept .* finite"),
            ("huge_slice", {"Rows": 60000, "Columns": 60000}, "60000 x 60000 pixels per slice"),
        ]
    )
    def test_refused_before_decoding(self, _, attributes, message):
        with TemporaryDirectory() as tmp:
            files = write_dicom_series(VOLUME, np.eye(4), tmp)
            _edit(files[3], **attributes)
            for check in (read_dicom_series, validate_dicom_input):
                with self.assertRaisesRegex(DicomSeriesError, message):
                    check(tmp)


class TestAtomicWrite(unittest.TestCase):
    def test_interrupted_write_leaves_nothing(self):
        calls = {"n": 0}
        save_as = pydicom.Dataset.save_as

        def failing_save_as(ds, *args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 4:
                raise KeyboardInterrupt  # as a kill between two slices
            return save_as(ds, *args, **kwargs)

        with TemporaryDirectory() as tmp:
            out = Path(tmp) / "series"
            with mock.patch.object(pydicom.Dataset, "save_as", failing_save_as), self.assertRaises(KeyboardInterrupt):
                write_dicom_series(VOLUME, np.eye(4), out)
            self.assertEqual(list(Path(tmp).iterdir()), [])

    def test_existing_empty_folder_is_filled(self):
        with TemporaryDirectory() as tmp:
            files = write_dicom_series(VOLUME, np.eye(4), tmp)
            self.assertEqual(sorted(Path(tmp).iterdir()), files)
            self.assertEqual([pydicom.dcmread(f).ImagesInAcquisition for f in files], [8] * 8)


class TestLossyTags(unittest.TestCase):
    def test_lossy_series_carries_ratio_and_method(self):
        with TemporaryDirectory() as tmp:
            files = write_dicom_series(
                VOLUME, np.eye(4), tmp, lossy=LossyCompression(ratio=23.456, method="MEDSECURE_MVC")
            )
            ds = pydicom.dcmread(files[0])
        self.assertEqual(ds.LossyImageCompression, "01")
        self.assertAlmostEqual(float(ds.LossyImageCompressionRatio), 23.456)
        self.assertEqual(ds.LossyImageCompressionMethod, "MEDSECURE_MVC")
        self.assertEqual(list(ds.ImageType)[0], "DERIVED")

    def test_lossless_series_has_no_lossy_flag(self):
        with TemporaryDirectory() as tmp:
            ds = pydicom.dcmread(write_dicom_series(VOLUME, np.eye(4), tmp)[0])
        self.assertNotIn("LossyImageCompression", ds)

    @parameterized.expand([("zero_ratio", 0.0, "X"), ("nan_ratio", float("nan"), "X"), ("bad_method", 2.0, "a b")])
    def test_bad_lossy_description(self, _, ratio, method):
        with self.assertRaises(DicomSeriesError):
            LossyCompression(ratio, method)


if __name__ == "__main__":
    unittest.main()
