"""User errors of ``medsecure`` end in one line ``medsecure <command>: error: ...`` with exit code 2, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from medsecure_transforms.cli.main import main


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """Exit code and stderr of ``medsecure argv`` run in this process."""
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse stops at parse time
        code = stop.code
    return code, capsys.readouterr().err


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    """A folder with an int16 volume, a float32 volume, a JSON file with a syntax error and a corrupt .mvc file."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    np.save("i.npy", rng.integers(0, 1000, (16, 16, 8)).astype(np.int16))
    np.save("f.npy", rng.random((16, 16, 8), dtype=np.float32))
    (tmp_path / "bad.json").write_text('{"levels": [3, 3')
    (tmp_path / "list.json").write_text(json.dumps([1, 2]))
    (tmp_path / "bad.mvc").write_bytes(b"MVC3" + bytes(64))
    (tmp_path / "old.mvc").write_bytes(b"earlier run")
    return tmp_path


EVALUATE = ["evaluate", "--bundle", "fundus_disc_seg", "--output-dir", "o"]
CASES = {
    "q_max_beyond_float32": ["compress", "i.npy", "o.mvc", "--q-max", "1e39"],
    "target_ratio_zero": ["compress", "i.npy", "o.mvc", "--target-ratio", "0"],
    "target_ratio_negative": ["compress", "i.npy", "o.mvc", "--target-ratio", "-3"],
    "value_range_underflow": ["compress", "i.npy", "o.mvc", "--value-range", "1e-300"],
    "scale_nan": ["compress", "i.npy", "o.mvc", "--scale", "nan"],
    "lossless_on_float": ["compress", "f.npy", "o.mvc", "--lossless"],
    "state_bad_json": ["compress", "i.npy", "o.mvc", "--state", "bad.json"],
    "state_not_an_object": ["compress", "i.npy", "o.mvc", "--state", "list.json"],
    "state_binary": ["compress", "i.npy", "o.mvc", "--state", "i.npy"],
    "state_missing": ["compress", "i.npy", "o.mvc", "--state", "nope.json"],
    "unknown_wavelet": ["compress", "i.npy", "o.mvc", "--wavelet", "nope"],
    "missing_input": ["compress", "missing.nii.gz", "o.mvc"],
    "input_is_output": ["compress", "i.npy", "i.npy", "--overwrite"],
    "output_exists": ["compress", "i.npy", "old.mvc"],
    "corrupt_stream": ["decompress", "bad.mvc", "o.nii.gz"],
    "missing_stream": ["decompress", "missing.mvc", "o.nii.gz"],
    "demo_limit_zero": ["demo", "--limit", "0"],
    "demo_limit_negative": ["demo", "--limit", "-1"],
    "demo_threads_zero": ["demo", "--threads", "0"],
    "evaluate_limit_negative": [*EVALUATE, "--limit", "-2"],
    "evaluate_bad_region": [*EVALUATE, "--regions", "disc=a"],
    "evaluate_bad_defense_json": [*EVALUATE, "--defense", "x={not json"],
    "evaluate_target_iou_above_one": [*EVALUATE, "--target-iou", "1.5"],
    "evaluate_unknown_preset": [*EVALUATE, "--attack-preset", "fast"],
    "mv3d_tolerance_nan": ["calibrate", "mv3d", "--tolerance", "nan"],
    "fr_benign_drop_above_one": ["calibrate", "fr", "--output-dir", "o", "--max-benign-drop", "2"],
}


@pytest.mark.parametrize("argv", CASES.values(), ids=CASES.keys())
def test_user_error_is_one_line_with_exit_code_2(workdir, capsys, argv):
    before = sorted(p.name for p in workdir.iterdir())
    code, err = run_cli(argv, capsys)
    command = " ".join(argv[:2]) if argv[0] == "calibrate" else argv[0]
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"medsecure {command}: error: "), err
    assert sorted(p.name for p in workdir.iterdir()) == before  # nothing written, nothing removed
    assert (workdir / "old.mvc").read_bytes() == b"earlier run"


def test_debug_shows_the_exception(workdir):
    with pytest.raises(FileNotFoundError, match="missing.nii.gz"):
        main(["compress", "missing.nii.gz", "o.mvc", "--debug"])
    with pytest.raises(FileNotFoundError):
        main(["--debug", "compress", "missing.nii.gz", "o.mvc"])


def test_python_dash_m_prints_one_line_and_no_backend_notice(workdir):
    """The real process: ``python -m medsecure_transforms.cli`` (imports MONAI, so the Holoscan stack warning and
    the nvImageCodec notice would show here)."""
    done = subprocess.run(
        [sys.executable, "-m", "medsecure_transforms.cli", "compress", "missing.nii.gz", "o.mvc"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "medsecure compress: error: no such volume: missing.nii.gz", done.stderr
