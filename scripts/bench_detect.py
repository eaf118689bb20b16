"""Detector and reformer overhead relative to the target segmentation network's own forward pass, same batch.

For each detector / reformer artefact in ``--guard-dir`` the median wall time of ``--repeats`` runs (after one warm-up)
is measured side by side with the segmentation forward pass on the same batch of ``--batch`` test slices, and printed
as per-image milliseconds and as the ratio to the segmentation pass (target: detector <= 0.5x on CPU). The machine
and its load average are recorded, since the shared CPU makes absolute numbers noisy; ratios are measured
interleaved, so both sides see the same load.

    nice -n 10 python scripts/bench_detect.py --bundle cardiac_slice_seg \
        --guard-dir bundles/cardiac_slice_seg/models/guard --out results/fft_detect/bench_cardiac_slice_seg.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from medsecure_transforms.bundle import load_bundle_network, load_split_tensors
from medsecure_transforms.defenses import FFTDetector, Reformer


def timed(fn, x: torch.Tensor) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        fn(x)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default="cardiac_slice_seg")
    parser.add_argument("--guard-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    network = load_bundle_network(args.bundle)
    images = load_split_tensors(args.bundle, "test", args.data_root, slices=True, progress=True)[0][: args.batch]
    candidates = {
        **{p.stem: FFTDetector.load(p).scores for p in sorted(args.guard_dir.glob("detector_*.pt"))},
        **{p.stem: Reformer.load(p) for p in sorted(args.guard_dir.glob("reformer_*.pt"))},
    }
    rows = {}
    for name, fn in candidates.items():
        timed(network, images), timed(fn, images)  # warm-up
        seg, guard = [], []
        for _ in range(args.repeats):
            seg.append(timed(network, images))
            guard.append(timed(fn, images))
        seg_ms = 1000 * statistics.median(seg) / len(images)
        guard_ms = 1000 * statistics.median(guard) / len(images)
        rows[name] = {
            "ms_per_image": round(guard_ms, 3),
            "segmentation_ms_per_image": round(seg_ms, 3),
            "ratio_to_segmentation": round(guard_ms / seg_ms, 3),
        }
        ratio = rows[name]["ratio_to_segmentation"]
        print(f"{name:32s} {guard_ms:8.2f} ms/image, segmentation {seg_ms:8.2f} ms/image, ratio {ratio}")
    result = {
        "bundle": args.bundle,
        "batch": len(images),
        "image_shape": list(images.shape[1:]),
        "repeats": args.repeats,
        "threads": args.threads,
        "machine": f"{platform.machine()} {platform.processor()}".strip(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "torch": torch.__version__,
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
