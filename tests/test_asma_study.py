"""ASMA quality-bar study (tiny run on one Drishti-GS1 image, resume from the per-sample rows) and the benchmarks:
batched ASMA against the paper's loop, FR throughput, the timing and machine helpers."""

from __future__ import annotations

import json
from functools import partial

import numpy as np
import pytest
import torch
from helpers import require_dataset

from medsecure_transforms.attacks import asma_preset
from medsecure_transforms.attacks.targets import scale_mask, shift_mask
from medsecure_transforms.bundle import bundle_dir
from medsecure_transforms.evaluation.asma_benchmark import compare_with_paper_loop
from medsecure_transforms.evaluation.asma_study import quality_bar, run_quality_bar, summarise_quality_bar
from medsecure_transforms.evaluation.benchmarking import interleaved, machine_info, pillow_jpeg_round_trip
from medsecure_transforms.evaluation.fr_benchmark import throughput_markdown, time_frequency_refine

BAR_KEYS = {"success_rate_at_0.8", "mean_linf_x255", "benign_disc_iou", "adversarial_disc_iou", "disc_iou_drop_points"}


def aggregate(success: float, linf: float, benign: float, adversarial: float) -> dict:
    return {
        "attack/success_rate": {"mean": success},
        "attack/linf": {"mean": linf},
        "benign/disc/iou": {"mean": benign},
        "adversarial/disc/iou": {"mean": adversarial},
    }


def test_quality_bar_by_hand():
    bar = quality_bar(aggregate(0.95, 8 / 255 + 1e-9, 0.9, 0.5))
    assert bar["disc_iou_drop_points"] == pytest.approx(40.0) and bar["mean_linf_x255"] == pytest.approx(8.0)
    assert all(bar["passes"].values())  # one float32 ulp over the budget still passes
    failed = quality_bar(aggregate(0.5, 9 / 255, 0.9, 0.7))["passes"]
    assert not any(failed.values())


def test_tiny_quality_bar_and_resume(data_root, tmp_path):
    require_dataset(data_root, "fundus-drishti-gs1")
    if not (bundle_dir("fundus_disc_seg") / "models" / "model.pt").is_file():
        pytest.skip("fundus_disc_seg has no trained weights")
    torch.set_num_threads(1)
    attack = asma_preset("authors_x1000", max_iter=2)
    out = tmp_path / "run"
    report, bar = run_quality_bar(
        "fundus_disc_seg", attack, partial(scale_mask, factor=0.6), out, limit=1, tracking_dir=tmp_path / "mlflow"
    )
    assert BAR_KEYS | {"passes", "command", "wall_seconds", "machine"} == set(bar)
    assert json.loads((out / "quality_bar.json").read_text()) == bar
    assert report["aggregate"]["attack/iterations"]["mean"] <= 2
    assert bar["mean_linf_x255"] <= 8 + 1e-3 and bar["passes"]["mean_linf<=8/255"]
    assert 50 < bar["benign_disc_iou"] <= 100
    # an interrupted run: only the per-sample rows are left; the summary keeps the earlier keys and says so
    (out / "robustness.json").unlink()
    resumed = summarise_quality_bar(out, attack)
    assert resumed["partial"].startswith("interrupted run: first 1 images")
    assert resumed["command"] == bar["command"] and (out / "robustness_partial.md").is_file()
    for key in BAR_KEYS:
        assert resumed[key] == pytest.approx(bar[key])


class TinySegmenter(torch.nn.Module):
    """1x1 convolution: 3 channels -> 3 classes."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 1)
        torch.nn.init.normal_(self.conv.weight, generator=torch.Generator().manual_seed(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def test_batched_asma_matches_paper_loop():
    torch.manual_seed(0)
    model = TinySegmenter().eval()
    images = torch.rand(2, 3, 12, 12)
    with torch.no_grad():
        target = shift_mask(model(images).argmax(1, keepdim=True), [0, 4])
    record = compare_with_paper_loop(model, images, target, asma_preset("authors", max_iter=5, beta=0.05, tau=0.01))
    assert record["iterations_equal"] and record["max_abs_difference"] < 1e-5
    assert record["images"] == 2 and record["image_shape"] == [3, 12, 12] and record["attack"]["max_iter"] == 5
    assert set(record["machine"]) == {"cpu", "cores", "threads", "torch", "load_average_1min"}
    with pytest.raises(ValueError, match="Linf"):
        compare_with_paper_loop(model, images, target, asma_preset("authors_x1000"))


def test_timing_helpers_and_fr_throughput():
    calls = []
    times = interleaved([lambda: calls.append("a"), lambda: calls.append("b")], repeats=2)
    assert len(times) == 2 and calls == ["a", "b"] * 3  # one warm-up each, then alternating
    assert set(machine_info()) == {"cpu", "cores", "threads", "torch"}
    ramp = np.linspace(0, 255, 16)
    image = np.stack([ramp[:, None] + 0 * ramp, 0 * ramp[:, None] + ramp, np.full((16, 16), 128.0)], -1)
    image = image.astype(np.uint8)  # smooth [16, 16, 3]: JPEG(95) keeps it within a few grey levels
    decoded = pillow_jpeg_round_trip(image, 95)
    assert decoded.shape == image.shape and np.abs(decoded.astype(int) - image).mean() < 3
    result = time_frequency_refine(np.stack([image, image]), repeats=1)
    assert result["image"] == "16x16 RGB" and result["fr_batch"] == 2
    assert set(result["images_per_s"]) == {"fr", "fr_channels_last_input", "pillow_jpeg85_round_trip", "per_block_loop"}
    assert all(v > 0 for v in result["images_per_s"].values())
    assert throughput_markdown(result).startswith("| method (16x16 RGB, cpu, ")
