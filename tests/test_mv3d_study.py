"""MVCompress3D rate-accuracy study: a tiny run on two hippocampus volumes (keys and value ranges), the equal-Dice
ratio on a hand-made summary, and an interrupted run resumed from its rows (same summary as an unbroken run)."""

from __future__ import annotations

import json
import math

import pytest
from helpers import phantom, require_dataset

from medsecure_transforms.codecs.mvc import MVWaveletCodec
from medsecure_transforms.evaluation import mv3d_study
from medsecure_transforms.evaluation.mv3d_report import equal_dice_ratio, summarise
from medsecure_transforms.evaluation.mv3d_study import CODECS, RowLog, compress_at_ratio, run_mv3d_study

SETTINGS = {"bundle": "hippocampus_seg", "limit": 2, "ratios": (10, 30), "codecs": ("mv3d", "openjpeg")}
CLASSES = ("anterior", "posterior")


def _run(out, **kwargs):
    return run_mv3d_study(
        SETTINGS["bundle"],
        out,
        ratios=SETTINGS["ratios"],
        codecs=SETTINGS["codecs"],
        limit=SETTINGS["limit"],
        progress=False,
        **kwargs,
    )


@pytest.fixture(scope="module")
def unbroken(data_root, tmp_path_factory):
    require_dataset(data_root, "hippocampus-msd")
    out = tmp_path_factory.mktemp("mv3d")
    return out, _run(out)


def _entry(ratio, dice, codec="a"):
    return {"codec": codec, "ratio": {"mean": ratio}, "dice_mean": {"mean": dice}}


def test_equal_dice_ratio_interpolates_in_log_ratio():
    summary = {
        "a@40": _entry(40.0, 0.80),
        "a@10": _entry(10.0, 0.85),
        "a@20": _entry(20.0, 0.84),
        "b@10": _entry(10.0, 0.90, "b"),
        "b@20": _entry(20.0, 0.89, "b"),
        "c@10": _entry(10.0, 0.70, "c"),
    }
    # first crossing between 20 (0.84) and 40 (0.80) at half the way in log ratio: 20 * sqrt(2)
    assert equal_dice_ratio(summary, "a", 0.82) == pytest.approx(20 * math.sqrt(2))
    assert equal_dice_ratio(summary, "b", 0.82) == 20.0  # never below: the largest ratio
    assert equal_dice_ratio(summary, "c", 0.82) is None  # below from the first point
    assert equal_dice_ratio(summary, "missing", 0.82) is None


def test_summarise_means_and_skips_non_finite():
    rows = [
        {"case": c, "codec": "mv3d", "target_ratio": 10.0, "ratio": r, "psnr_db": p, "dice_mean": d}
        | {f"{m}_x": d for m in ("dice", "hausdorff", "asd")}
        for c, r, p, d in (("a", 9.0, 30.0, 0.8), ("b", 11.0, float("inf"), 0.6))
    ]
    entry = summarise(rows, ["x"])["mv3d@10"]
    assert entry["cases"] == 2 and entry["ratio"] == {"mean": 10.0, "std": 1.0}
    assert entry["psnr_db"] == {"mean": 30.0, "std": 0.0}
    assert entry["dice_x"]["mean"] == pytest.approx(0.7)


@pytest.mark.parametrize("name", CODECS)
def test_compress_at_ratio_hits_the_target(name):
    volume = phantom((24, 24, 16))
    decoded, nbytes = compress_at_ratio(name, volume, 8.0, MVWaveletCodec())
    assert decoded.shape == volume.shape and decoded.dtype == volume.dtype
    assert volume.nbytes / nbytes == pytest.approx(8.0, rel=0.05)
    with pytest.raises(ValueError, match="unknown codec"):
        compress_at_ratio("jpeg", volume, 8.0, MVWaveletCodec())


def test_tiny_study_keys_and_values(unbroken):
    out, payload = unbroken
    assert {"command", "bundle", "cases", "codec_state", "zstd_ratio", "machine", "summary", "equal_dice"} <= set(
        payload
    )
    summary = payload["summary"]
    assert list(summary) == ["original@1", "mv3d@10", "mv3d@30", "openjpeg@10", "openjpeg@30"]
    for key, entry in summary.items():
        assert entry["cases"] == 2
        assert 0.5 < entry["dice_mean"]["mean"] <= 1
        assert all(0 <= entry[f"dice_{c}"]["mean"] <= 1 and entry[f"hausdorff_{c}"]["mean"] >= 0 for c in CLASSES)
        if key != "original@1":
            assert entry["ratio"]["mean"] == pytest.approx(entry["target_ratio"], rel=0.05)
            assert 20 < entry["psnr_db"]["mean"] < 80
    assert summary["mv3d@10"]["psnr_db"]["mean"] > summary["mv3d@30"]["psnr_db"]["mean"]
    assert 1 < payload["zstd_ratio"]["mean"] < 10
    assert payload["equal_dice"]["threshold"] == pytest.approx(summary["original@1"]["dice_mean"]["mean"] - 0.01)
    assert set(payload["equal_dice"]["ratios"]) == {"mv3d", "openjpeg"}
    names = {p.name for p in out.iterdir()}
    assert {"rows.jsonl", "rows.csv", "summary.json", "table_cr30.md", "equal_dice.md", "rate_dice.png"} <= names
    assert len((out / "rows.csv").read_text().splitlines()) == 1 + 2 * 5
    assert "| all | mean Dice |" in (out / "table_cr30.md").read_text()


def test_interrupted_run_resumes_to_the_same_summary(unbroken, tmp_path, monkeypatch):
    reference_dir, reference = unbroken
    append, calls = RowLog.append, []

    def crash_after_four(self, row):
        if len(calls) == 4:
            raise KeyboardInterrupt
        calls.append(row)
        return append(self, row)

    monkeypatch.setattr(RowLog, "append", crash_after_four)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path)
    monkeypatch.setattr(RowLog, "append", append)
    lines = (tmp_path / "rows.jsonl").read_text().splitlines()
    assert len(lines) == 1 + 4 and not (tmp_path / "summary.json").exists()
    with (tmp_path / "rows.jsonl").open("a") as f:
        f.write('{"case": "cut by a cra')  # a line the crash left half-written is dropped
    computed = []
    monkeypatch.setattr(mv3d_study, "compress_at_ratio", lambda *a: computed.append(a[:3]) or compress_at_ratio(*a))
    resumed = _run(tmp_path, resume=True)
    assert len(computed) == 2 * 4 - 3  # the four kept rows (original + three codec rows) are not recomputed
    for key in ("summary", "equal_dice"):  # as JSON text: the PSNR of the originals is NaN (no finite value)
        assert json.dumps(resumed[key]) == json.dumps(reference[key])
    assert (tmp_path / "rows.csv").read_text() == (reference_dir / "rows.csv").read_text()
    assert (tmp_path / "rows.jsonl").read_text() == (reference_dir / "rows.jsonl").read_text()


def test_resume_refuses_rows_written_with_other_settings(unbroken, tmp_path):
    reference_dir, _ = unbroken
    (tmp_path / "rows.jsonl").write_text((reference_dir / "rows.jsonl").read_text())
    with pytest.raises(ValueError, match="other settings.*codec_state"):
        _run(tmp_path, resume=True, codec=MVWaveletCodec(q_max=32.0))
    (tmp_path / "rows.jsonl").write_text(json.dumps({"rows": []}) + "\n")
    with pytest.raises(ValueError, match="not a medsecure.mv3d_rows"):
        _run(tmp_path, resume=True)
