"""The deploy app's command line and output rules: one-line errors, no output inside the input, no silent overwrite.

The checks run before the operator graph, so these tests need the ``deploy`` extra but no network or bundle run
(the full app runs in tests/test_deploy_app.py).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("monai.deploy.operators", reason="the 'deploy' extra (monai-deploy-app-sdk) is not installed")

from medsecure_transforms.data.dicom_series import write_dicom_series  # noqa: E402
from medsecure_transforms.deploy.app import check_output_folder, main, run_app  # noqa: E402


@pytest.fixture()
def series(tmp_path):
    write_dicom_series(np.zeros((8, 8, 3), np.int16), np.eye(4), tmp_path / "in", uid_seed="deploy-cli")
    return tmp_path / "in"


def test_output_inside_input_or_occupied_is_refused(series, tmp_path):
    for output in (series, series / "seg"):
        with pytest.raises(ValueError, match="inside, the input folder"):
            run_app(series, output, defense=None, detector=None)
    occupied = tmp_path / "out"
    occupied.mkdir()
    (occupied / "earlier.dcm").write_bytes(b"seg of an earlier run")
    with pytest.raises(FileExistsError, match="--overwrite"):
        run_app(series, occupied, defense=None, detector=None)
    assert [p.name for p in occupied.iterdir()] == ["earlier.dcm"]
    check_output_folder(series, occupied, overwrite=True)
    check_output_folder(series, tmp_path / "new", overwrite=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        check_output_folder(series, tmp_path / "file", overwrite=True)


@pytest.mark.parametrize(
    "argv",
    [
        ["-i", "{tmp}/missing", "-o", "{tmp}/out"],
        ["-i", "{tmp}/in", "-o", "{tmp}/in"],
        ["-i", "{tmp}/in", "-o", "{tmp}/out", "--rules", "{tmp}/rules.json"],
    ],
    ids=["missing_input", "output_is_input", "rules_not_json"],
)
def test_user_errors_are_one_line(series, tmp_path, capsys, argv):
    (tmp_path / "rules.json").write_text("{not json")
    assert main([a.format(tmp=tmp_path) for a in argv] + ["--no-detector", "--no-defense"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("python -m medsecure_transforms.deploy.app: error: "), err
    assert not (tmp_path / "out").exists()
