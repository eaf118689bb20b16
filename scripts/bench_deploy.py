"""End-to-end wall time and peak memory of the deploy app on hippocampus DICOM series, and the share of the
defense (FrequencyRefine) and the detector (FFTDetect) in it.

Each case: a ``hippocampus-msd`` test volume written as a DICOM series, then ``run_app`` (validation, Holoscan graph
with DICOM loading, series selection, volume assembly, bundle preprocessing, defense, network, postprocessing,
DICOM SEG writing, detector report). The bundle is ``bundles/hippocampus_seg`` when its trained weights exist;
otherwise a copy of its configs with seeded random weights of the same network (same cost; the masks are then
meaningless and only the timings are reported). Writes ``results/deploy/bench.{json,md}``.

    nice -n 10 python scripts/bench_deploy.py --cases 3
"""

from __future__ import annotations

import argparse
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

from medsecure_transforms.bundle import bundle_config, bundle_dir
from medsecure_transforms.data import load_datalist, resolve_data_root
from medsecure_transforms.data.dicom_series import nifti_to_dicom_series
from medsecure_transforms.deploy.app import DEFAULT_BUNDLE, run_app
from medsecure_transforms.deploy.components import default_defense, default_detector, network_inputs

OUT = Path(__file__).resolve().parents[1] / "results" / "deploy"
STAGES = ("validation_s", "preprocessing_s", "defense_s", "network_s", "postprocessing_s", "detector_s")


def rss_mib() -> float:
    """Current resident set size of this process (MiB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bundle_for_timing(workdir: Path, seed: int) -> tuple[Path, str]:
    """The trained bundle, or a copy of its configs with seeded random weights (same architecture)."""
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


def seg_dice(seg_file: Path, series: Path, label_file: str) -> list[float]:
    """Dice of the SEG's segments 1 and 2 against the dataset's label map (SEG frames matched by SOP UID)."""
    sources = [pydicom.dcmread(f).SOPInstanceUID for f in sorted(series.glob("*.dcm"))]
    frames = hd.seg.segread(seg_file).get_pixels_by_source_instance(sources, combine_segments=True)
    pred, label = np.transpose(frames, (2, 1, 0)), np.asanyarray(nib.load(label_file).dataobj)
    return [
        round(2 * float(((pred == c) & (label == c)).sum()) / max(1, int((pred == c).sum() + (label == c).sum())), 4)
        for c in (1, 2)
    ]


def detector_noise_check(detector, cases: int, epsilon: float, seed: int) -> dict:
    """Share of clean test volumes and of volumes with +-``epsilon`` random-sign noise that FFTDetect flags.

    A sanity check that the detector responds to added high-frequency energy, not an attack evaluation.
    """
    volumes = network_inputs("test", cases)
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=3)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise-cases", type=int, default=20, help="test volumes for the detector noise check")
    parser.add_argument("--epsilon", type=float, default=8 / 255, help="noise amplitude of the detector check")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    items = load_datalist("hippocampus-msd", "test", resolve_data_root(args.data_root), limit=args.cases)
    defense, detector = default_defense(), default_detector()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bundle, bundle_kind = bundle_for_timing(work, args.seed)
        baseline_rss = rss_mib()
        for n, item in enumerate(items):
            series = work / f"dicom_{n}"
            nifti_to_dicom_series(item["image"], series, uid_seed=f"bench-{n}")
            summary = run_app(series, work / f"out_{n}", bundle=bundle, defense=defense, detector=detector)
            t = summary["timings"]
            report = json.loads((work / f"out_{n}" / "detector_report.json").read_text())
            seg_file = next((work / f"out_{n}").glob("*.dcm"))
            rows.append(
                {
                    "case": Path(item["image"]).name,
                    "slices": len(list(series.glob("*.dcm"))),
                    **{k: round(t[k], 4) for k in (*STAGES, "graph_s", "total_s")},
                    "defense_detector_share": round((t["defense_s"] + t["detector_s"]) / t["total_s"], 4),
                    "detector_score": round(report["fft_detect_score"], 5),
                    "flagged": report["fft_detect_flagged"],
                    "seg_dice_anterior_posterior": seg_dice(seg_file, series, item["label"]),
                }
            )
            print(json.dumps(rows[-1]))
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    median = {k: round(statistics.median(r[k] for r in rows), 4) for k in (*STAGES, "graph_s", "total_s")}
    share = (median["defense_s"] + median["detector_s"]) / median["total_s"]
    result = {
        "command": f"nice -n 10 python scripts/bench_deploy.py --cases {args.cases} --threads {args.threads} "
        f"--noise-cases {args.noise_cases}",
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_average_1_5_15": [round(v, 2) for v in os.getloadavg()],
            "torch": torch.__version__,
        },
        "bundle": bundle_kind,
        "cases": rows,
        "median": median,
        "defense_detector_share_of_median_total": round(share, 4),
        "target_share": 0.25,
        "peak_rss_mib": round(peak_rss, 1),
        "rss_before_first_run_mib": round(baseline_rss, 1),
    }
    result["detector_noise_check"] = detector_noise_check(detector, args.noise_cases, args.epsilon, args.seed)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bench.json").write_text(json.dumps(result, indent=2))
    lines = [
        "# Deploy app: end-to-end time per hippocampus DICOM series",
        "",
        f"Machine: {result['machine']['platform']}, {os.cpu_count()} CPUs shared with other jobs "
        f"(load average {result['machine']['load_average_1_5_15']}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch thread(s). Bundle: {bundle_kind}.",
        "",
        "| stage | median s | share of total |",
        "|---|---|---|",
        *(f"| {k[:-2]} | {median[k]:.4f} | {median[k] / median['total_s']:.1%} |" for k in (*STAGES, "graph_s")),
        f"| **total** | {median['total_s']:.4f} | 100% |",
        "",
        f"Defense + detector: {share:.1%} of the end-to-end time (target <= 25%). "
        f"Peak RSS {peak_rss:.0f} MiB ({baseline_rss:.0f} MiB after imports, before the first run). "
        "`graph` is the whole Holoscan run (it contains the bundle stages above plus DICOM loading, "
        "series selection, volume assembly and SEG writing).",
        "",
        "SEG Dice vs the dataset labels (anterior, posterior) per case: "
        f"{[r['seg_dice_anterior_posterior'] for r in rows]}.",
        "",
        f"Detector sanity check (random-sign noise, not an attack): {result['detector_noise_check']}.",
        "",
        f"Command: `{result['command']}`",
    ]
    (OUT / "bench.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    start = time.perf_counter()
    code = main()
    print(f"bench finished in {time.perf_counter() - start:.1f} s")
    raise SystemExit(code)
