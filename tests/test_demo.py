"""``medsecure demo``: the main job prints its table and a one-line conclusion, on real data and on the
scikit-image retina fallback."""

from __future__ import annotations

import json

import pytest
from helpers import require_dataset

from medsecure_transforms.bundle import bundle_dir
from medsecure_transforms.cli.main import main

pytestmark = pytest.mark.skipif(
    not (bundle_dir("fundus_disc_seg") / "models" / "model.pt").is_file(), reason="fundus_disc_seg has no weights"
)


def test_demo_on_the_retina_fallback(tmp_path, capsys):
    empty_root = tmp_path / "no_datasets"
    empty_root.mkdir()  # a data root without Drishti-GS1: the demo must fall back to skimage.data.retina()
    assert (
        main(
            [
                "demo",
                "--data-root",
                str(empty_root),
                "--max-iter",
                "2",
                "--no-mlflow",
                "--output-dir",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "skimage.data.retina()" in out
    for row in ("| benign |", "| adversarial |", "defended_adversarial.FR", "defended_adversarial.JPEG50"):
        assert row in out
    report = json.loads((tmp_path / "out" / "robustness.json").read_text())
    assert report["aggregate"]["attack/linf"]["mean"] <= 8 / 255 + 1e-6


def test_demo_on_drishti_scores_against_ground_truth(data_root, tmp_path, capsys):
    require_dataset(data_root, "fundus-drishti-gs1")
    assert (
        main(
            [
                "demo",
                "--data-root",
                str(data_root),
                "--limit",
                "1",
                "--max-iter",
                "3",
                "--no-mlflow",
                "--output-dir",
                str(tmp_path),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "1 Drishti-GS1 test images" in out
    last = out.strip().splitlines()[-1]  # the run ends with its conclusion in one line
    assert last.startswith("Conclusion: ASMA cut the optic-disc IoU from ") and "(mean over 1 image)" in last
