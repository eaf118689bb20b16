"""Deploy app benchmark: a tiny run (one hippocampus DICOM series, two volumes in the detector check) checked for
its keys and values."""

from __future__ import annotations

import pytest
from helpers import require_dataset

pytest.importorskip("monai.deploy.operators", reason="the 'deploy' extra (monai-deploy-app-sdk) is not installed")
pytest.importorskip("highdicom", reason="the 'deploy' extra (highdicom) is not installed")

from medsecure_transforms.deploy.benchmark import STAGES, benchmark_deploy, deploy_markdown  # noqa: E402


def test_tiny_deploy_benchmark(data_root):
    require_dataset(data_root, "hippocampus-msd")
    result = benchmark_deploy(cases=1, data_root=data_root, noise_cases=2, command="bench", progress=False)
    assert {"command", "machine", "bundle", "cases", "median", "peak_rss_mib", "detector_noise_check"} <= set(result)
    (row,) = result["cases"]
    assert row["slices"] > 0 and all(row[k] >= 0 for k in STAGES)
    assert row["total_s"] >= row["graph_s"] > 0
    assert 0 < result["defense_detector_share_of_median_total"] < 1
    assert len(row["seg_dice_anterior_posterior"]) == 2
    if result["bundle"].startswith("trained"):
        assert all(d > 0.5 for d in row["seg_dice_anterior_posterior"])
    check = result["detector_noise_check"]
    assert check["cases"] == 2 and 0 <= check["flagged_clean"] <= check["flagged_noisy"] <= 1
    assert result["peak_rss_mib"] >= result["rss_before_first_run_mib"] > 0
    markdown = deploy_markdown(result)
    assert "| **total** |" in markdown and "Command: `bench`" in markdown
