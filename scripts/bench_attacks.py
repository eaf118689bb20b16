"""Benchmark: batched ASMA vs a one-image-at-a-time loop written as the paper describes
(:mod:`medsecure_transforms.evaluation.asma_benchmark`). Both give the same adversarial images to float tolerance;
prints both times, the ratio, the attack success and the machine. ASMA: the ``authors`` preset, ``--iterations``
steps, box only.

    nice -n 10 python scripts/bench_attacks.py --bundle fundus_disc_seg --images 8 --iterations 100 \
        --output results/attacks/bench_asma_8x100.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from medsecure_transforms.attacks import asma_preset
from medsecure_transforms.attacks.targets import shift_mask
from medsecure_transforms.bundle import load_bundle_network, load_split_tensors
from medsecure_transforms.cli.arguments import add_data_root_argument, add_threads_argument
from medsecure_transforms.evaluation.asma_benchmark import compare_with_paper_loop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default="fundus_disc_seg")
    parser.add_argument("--split", default="test")
    add_data_root_argument(parser)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--beta", type=float, default=None, help="default: the authors' preset (1e-6)")
    parser.add_argument("--tau", type=float, default=None, help="default: the authors' preset (1e-7)")
    parser.add_argument("--target-iou", type=float, default=None, help="default: the authors' preset (0.8)")
    parser.add_argument("--shift", type=int, nargs="+", default=[0, 64], help="target = label shifted by this")
    add_threads_argument(parser, 1)
    parser.add_argument("--output", type=Path, default=None, help="JSON file for the numbers")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    model = load_bundle_network(args.bundle)
    images, labels = load_split_tensors(args.bundle, args.split, args.data_root, args.images)
    overrides = {k: getattr(args, k) for k in ("beta", "tau", "target_iou") if getattr(args, k) is not None}
    attack = asma_preset("authors", max_iter=args.iterations, **overrides)
    record = {"bundle": args.bundle, "split": args.split, "target": f"label shifted by {args.shift}"}
    record |= compare_with_paper_loop(model, images, shift_mask(labels, args.shift), attack)
    print(json.dumps(record, indent=2))
    print(
        f"batched {record['batched_seconds']:.1f} s, loop {record['loop_seconds']:.1f} s, "
        f"speedup {record['speedup']:.2f}x, max |diff| {record['max_abs_difference']:.2e}, "
        f"success {record['success_rate']:.0%}"
    )
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
