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
from pathlib import Path

import torch

from medsecure_transforms.bundle import load_bundle_network, load_split_tensors
from medsecure_transforms.evaluation.fft_guard import bench_guard


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
    result = {"bundle": args.bundle, **bench_guard(network, images, args.guard_dir, args.repeats)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
