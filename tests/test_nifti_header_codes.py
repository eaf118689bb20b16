"""NIfTI header codes survive compression: qform/sform codes and units travel in the .mvc file (version 2)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from helpers import phantom, run_codec_cli

from medsecure_transforms.codecs.errors import CorruptStreamError
from medsecure_transforms.codecs.framing import frame, unframe
from medsecure_transforms.codecs.mvc.codec import compress_volume, decompress_volume
from medsecure_transforms.codecs.mvc.format import MAGIC
from medsecure_transforms.data.volume_io import DEFAULT_NIFTI_CODES, NiftiCodes, nifti_codes, write_nifti

AFFINE = np.array([[0.0, -1.1, 0.0, 12.0], [0.9, 0.0, 0.0, -7.0], [0.0, 0.0, 2.0, 3.5], [0.0, 0.0, 0.0, 1.0]])
SCANNER_MM_SEC = NiftiCodes(qform_code=1, sform_code=2, xyzt_units=2 | 8)


def _codes_offset(d: int) -> int:
    """Body offset of the NIfTI codes: fixed fields, shape, levels, affine, spacing, reconstruction offset."""
    return 6 + 4 * d + d + 16 * 8 + 8 * d + 4


def test_cli_round_trip_keeps_codes_and_units(tmp_path):
    source = tmp_path / "in.nii.gz"
    write_nifti(source, phantom((24, 20, 16)), AFFINE, SCANNER_MM_SEC)
    header = nib.load(source).header
    assert (int(header["qform_code"]), int(header["sform_code"]), header.get_xyzt_units()) == (1, 2, ("mm", "sec"))
    assert run_codec_cli("compress", str(source), str(tmp_path / "x.mvc")) == 0
    assert run_codec_cli("decompress", str(tmp_path / "x.mvc"), str(tmp_path / "out.nii.gz")) == 0
    out = nib.load(tmp_path / "out.nii.gz")
    assert nifti_codes(tmp_path / "out.nii.gz") == SCANNER_MM_SEC
    np.testing.assert_array_equal(out.get_sform(), AFFINE)
    np.testing.assert_allclose(out.get_qform(), AFFINE, atol=1e-5)  # the qform is a quaternion: float32 exact-ish


def test_version_1_files_decode_with_default_codes():
    volume = phantom((16, 16, 8))
    version, body = unframe(compress_volume(volume), MAGIC, (2,), "mvc")
    at = _codes_offset(3)
    assert bytes(body[at : at + 3]) == bytes(DEFAULT_NIFTI_CODES)
    old = frame(MAGIC, 1, bytes(body[:at]) + bytes(body[at + 3 :]))
    decoded, header = decompress_volume(old)
    assert header.nifti_codes == DEFAULT_NIFTI_CODES
    np.testing.assert_array_equal(decoded, decompress_volume(compress_volume(volume))[0])


@pytest.mark.parametrize("codes", [(9, 1, 0), (1, 1, 7), (1, 1, 0x40)])
def test_forged_codes_are_refused(codes):
    _, body = unframe(compress_volume(phantom((16, 16, 8))), MAGIC, (2,), "mvc")
    at = _codes_offset(3)
    forged = frame(MAGIC, 2, bytes(body[:at]) + bytes(codes) + bytes(body[at + 3 :]))
    with pytest.raises(CorruptStreamError, match="NIfTI"):
        decompress_volume(forged)
    with pytest.raises(ValueError, match="NIfTI"):
        NiftiCodes(*codes).validate()
