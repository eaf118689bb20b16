"""End-to-end wall time and peak memory of the deploy app on hippocampus DICOM series, and the share of the defense
(FrequencyRefine) and the detector (FFTDetect) in it.

Each case: a ``hippocampus-msd`` test volume written as a DICOM series, then :func:`~..deploy.app.run_app`
(validation, Holoscan graph with DICOM loading, series selection, volume assembly, bundle preprocessing, defense,
network, postprocessing, DICOM SEG writing, detector report). The bundle is ``bundles/hippocampus_seg`` when its
trained weights exist; otherwise a copy of its configs with seeded random weights of the same network (same cost;
the masks are then meaningless and only the timings count).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import torch

from ..bundle import bundle_config, bundle_dir
from ..data import load_datalist, resolve_data_root
from ..data.dicom_series import nifti_to_dicom_series
from ..evaluation.benchmarking import machine_info
from ..evaluation.metrics import pooled_binary_dice
from ..transforms import FFTDetect
from .app import DEFAULT_BUNDLE, run_app
from .components import default_defense, default_detector, network_inputs

__all__ = ["STAGES", "benchmark_deploy", "bundle_for_timing", "deploy_markdown", "detector_noise_check", "seg_dice"]

STAGES = ("validation_s", "preprocessing_s", "defense_s", "network_s", "postprocessing_s", "detector_s")


def rss_mib() -> float:
    """Current resident set size of this process (MiB; NaN where ``/proc`` is missing)."""
    status = Path("/proc/self/status")
    for line in status.read_text().splitlines() if status.is_file() else ():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bundle_for_timing(workdir: Path, seed: int) -> tuple[Path, str]:
    """The trained bundle and its description, or a copy of its configs in ``workdir`` with seeded random weights
    (same architecture)."""
    folder = bundle_dir(DEFAULT_BUNDLE)
    weights = folder / "models" / "model.pt"
    if weights.is_file():
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(weights.stat().st_mtime))
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:12]
        return folder, f"trained bundles/hippocampus_seg (models/model.pt sha256 {digest}..., written {stamp})"
    copy = workdir / "hippocampus_seg_random"
    shutil.copytree(folder / "configs", copy / "configs")
    (copy / "models").mkdir()
    torch.manual_seed(seed)
    network = bundle_config(folder, "inference.json").get_parsed_content("network_def", instantiate=True)
    torch.save(network.state_dict(), copy / "models" / "model.pt")
    return copy, "bundles/hippocampus_seg configs with seeded random weights (weights not trained yet)"


def seg_dice(seg_file: Path, series: Path, label_file: str | os.PathLike) -> list[float]:
    """Dice (4 decimals) of the SEG's segments 1 and 2 against the dataset's label map (frames matched by SOP UID)."""
    sources = [pydicom.dcmread(f).SOPInstanceUID for f in sorted(series.glob("*.dcm"))]
    frames = hd.seg.segread(seg_file).get_pixels_by_source_instance(sources, combine_segments=True)
    pred, label = np.transpose(frames, (2, 1, 0)), np.asanyarray(nib.load(label_file).dataobj)
    return [round(pooled_binary_dice([pred == c], [label == c])[0], 4) for c in (1, 2)]


def detector_noise_check(
    detector: FFTDetect, cases: int, epsilon: float, seed: int, data_root: str | os.PathLike | None = None
) -> dict:
    """Share of clean test volumes and of volumes with +-``epsilon`` random-sign noise that FFTDetect flags.

    A sanity check that the detector responds to added high-frequency energy, not an attack evaluation.
    """
    volumes = network_inputs("test", cases, data_root)
    g = torch.Generator().manual_seed(seed)
    clean, noisy = [], []
    for v in volumes:
        sign = torch.randint(0, 2, v.shape, generator=g).float() * 2 - 1
        clean.append(detector.inspect(v)[1]["fft_detect_flagged"])
        noisy.append(detector.inspect((v + epsilon * sign).clamp(0, 1))[1]["fft_detect_flagged"])
    return {
        "cases": len(volumes),
        "epsilon": epsilon,
        "flagged_clean": sum(clean) / len(clean),
        "flagged_noisy": sum(noisy) / len(noisy),
    }


def benchmark_deploy(
    cases: int = 3,
    data_root: str | os.PathLike | None = None,
    seed: int = 0,
    noise_cases: int = 20,
    epsilon: float = 8 / 255,
    command: str = "",
    progress: bool = True,
) -> dict:
    """Run the app on the first ``cases`` hippocampus test volumes (each row printed as JSON when ``progress``).

    Returns:
        ``{"command", "machine", "bundle", "cases" (per case: stage seconds, defense + detector share, detector score
        and flag, SEG Dice), "median" (stage seconds), "defense_detector_share_of_median_total", "target_share",
        "peak_rss_mib" (this process), "rss_before_first_run_mib", "detector_noise_check"}``.
    """
    items = load_datalist("hippocampus-msd", "test", resolve_data_root(data_root), limit=cases)
    defense, detector = default_defense(), default_detector()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bundle, bundle_kind = bundle_for_timing(work, seed)
        baseline_rss = rss_mib()
        for n, item in enumerate(items):
            series, out = work / f"dicom_{n}", work / f"out_{n}"
            nifti_to_dicom_series(item["image"], series, uid_seed=f"bench-{n}")
            t = run_app(series, out, bundle=bundle, defense=defense, detector=detector)["timings"]
            report = json.loads((out / "detector_report.json").read_text())
            rows.append(
                {
                    "case": Path(item["image"]).name,
                    "slices": len(list(series.glob("*.dcm"))),
                    **{k: round(t[k], 4) for k in (*STAGES, "graph_s", "total_s")},
                    "defense_detector_share": round((t["defense_s"] + t["detector_s"]) / t["total_s"], 4),
                    "detector_score": round(report["fft_detect_score"], 5),
                    "flagged": report["fft_detect_flagged"],
                    "seg_dice_anterior_posterior": seg_dice(next(out.glob("*.dcm")), series, item["label"]),
                }
            )
            if progress:
                print(json.dumps(rows[-1]))
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    median = {k: round(statistics.median(r[k] for r in rows), 4) for k in (*STAGES, "graph_s", "total_s")}
    machine = {"platform": platform.platform(), **machine_info()}
    machine["load_average_1_5_15"] = [round(v, 2) for v in os.getloadavg()]
    return {
        "command": command,
        "machine": machine,
        "bundle": bundle_kind,
        "cases": rows,
        "median": median,
        "defense_detector_share_of_median_total": round(
            (median["defense_s"] + median["detector_s"]) / median["total_s"], 4
        ),
        "target_share": 0.25,
        "peak_rss_mib": round(peak_rss, 1),
        "rss_before_first_run_mib": round(baseline_rss, 1),
        "detector_noise_check": detector_noise_check(detector, noise_cases, epsilon, seed, data_root),
    }


def deploy_markdown(result: dict) -> str:
    """The per-stage median table, the defense + detector share and the checks of a :func:`benchmark_deploy`
    result."""
    machine, median = result["machine"], result["median"]
    share = (median["defense_s"] + median["detector_s"]) / median["total_s"]
    lines = [
        "# Deploy app: end-to-end time per hippocampus DICOM series",
        "",
        f"Machine: {machine['platform']}, {machine['cores']} CPUs shared with other jobs "
        f"(load average {machine['load_average_1_5_15']}), torch {machine['torch']}, "
        f"{machine['threads']} torch thread(s). Bundle: {result['bundle']}.",
        "",
        "| stage | median s | share of total |",
        "|---|---|---|",
        *(f"| {k[:-2]} | {median[k]:.4f} | {median[k] / median['total_s']:.1%} |" for k in (*STAGES, "graph_s")),
        f"| **total** | {median['total_s']:.4f} | 100% |",
        "",
        f"Defense + detector: {share:.1%} of the end-to-end time (target <= {result['target_share']:.0%}). "
        f"Peak RSS {result['peak_rss_mib']:.0f} MiB ({result['rss_before_first_run_mib']:.0f} MiB after imports, "
        "before the first run). `graph` is the whole Holoscan run (it contains the bundle stages above plus DICOM "
        "loading, series selection, volume assembly and SEG writing).",
        "",
        "SEG Dice vs the dataset labels (anterior, posterior) per case: "
        f"{[r['seg_dice_anterior_posterior'] for r in result['cases']]}.",
        "",
        f"Detector sanity check (random-sign noise, not an attack): {result['detector_noise_check']}.",
        "",
        f"Command: `{result['command']}`",
    ]
    return "\n".join(lines) + "\n"
