"""MVCompress3D speed and memory benchmark: the codec timings on a generated volume, and a tiny run (one ACDC
volume, one repeat, peak memory measured in subprocesses) checked for its keys and values."""

from __future__ import annotations

import pytest
from helpers import phantom, require_dataset

from medsecure_transforms.evaluation.mv3d_benchmark import BENCH_CODECS, benchmark_markdown, benchmark_mv3d, time_codecs


def test_time_codecs_on_a_generated_volume():
    volume = phantom()
    timings = time_codecs(volume, None, repeats=1)
    assert list(timings) == list(BENCH_CODECS)
    for name, t in timings.items():
        assert t["encode_s"] > 0 and t["decode_s"] > 0 and t["ratio"] > 1, name
    assert timings["openjpeg"]["ratio"] == pytest.approx(timings["mv3d"]["ratio"], rel=0.05)


def test_tiny_benchmark_keys_and_values(data_root):
    require_dataset(data_root, "cardiac-acdc")
    payload = benchmark_mv3d("cardiac-acdc", limit=1, repeats=1, memory_datasets=["cardiac-acdc"], progress=False)
    assert list(payload) == [
        "command",
        "dataset",
        "volumes",
        "repeats",
        "machine",
        "summary",
        "relative",
        "peak_memory",
        "rows",
    ]
    assert payload["volumes"] == 1 and len(payload["rows"]) == 1
    assert list(payload["summary"]) == list(BENCH_CODECS)
    for t in payload["summary"].values():
        assert t["encode_ms_per_volume"] > 0 and t["decode_mb_s"] > 0 and t["mean_ratio"] > 1
    assert payload["summary"]["mv3d_lossless"]["mean_ratio"] < payload["summary"]["mv3d"]["mean_ratio"]
    assert set(payload["relative"]) == {"mv3d_encode_vs_openjpeg", "mv3d_decode_vs_openjpeg"}
    memory = payload["peak_memory"]
    assert memory["volume"].startswith("cardiac-acdc/") and memory["volume_bytes"] > 0
    assert memory["encode_peak_increase_bytes"] > 0 and memory["decode_peak_increase_bytes"] > 0
    assert 0 < memory["ratio_to_volume"] < 100
    markdown = benchmark_markdown(payload)
    assert all(f"| {name} |" in markdown for name in BENCH_CODECS) and "Peak memory" in markdown
