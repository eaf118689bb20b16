"""ASMA quality bar on the fundus_disc_seg bundle (Drishti-GS1 test split) with the robustness engine
(:mod:`medsecure_transforms.evaluation.asma_study`; ASMA preset ``authors_x1000``, docs/attacks.md).

Targets: the ground-truth label with its disc scaled by ``--scale`` about its centroid (default 0.6: 36 % of its
area) or shifted by ``--shift`` voxels. Bar: target IoU >= 0.8 on >= 90 % of the images, mean Linf <= 8/255, disc
IoU down >= 30 points. Writes the engine's reports and ``quality_bar.json`` into ``--output-dir``, the MLflow store
into ``--tracking-dir``. ``--attack pgd``: targeted Linf PGD (same targets and budget, ``--max-iter`` steps), the
reference for whether a strong first-order attack can meet the bar at that budget at all.

    nice -n 10 python scripts/reproduce_asma_fundus.py --output-dir results/attacks/fundus_asma
    nice -n 10 python scripts/reproduce_asma_fundus.py --attack pgd --output-dir results/attacks/fundus_pgd_reference
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path

import torch

from medsecure_transforms.attacks import PGD
from medsecure_transforms.attacks.targets import scale_mask, shift_mask
from medsecure_transforms.cli.arguments import (
    add_attack_arguments,
    add_bundle_arguments,
    add_threads_argument,
    asma_from_args,
    command_line,
)
from medsecure_transforms.evaluation.asma_study import run_quality_bar, summarise_quality_bar


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_bundle_arguments(parser, "fundus_disc_seg", "test")
    parser.add_argument("--attack", choices=("asma", "pgd"), default="asma")
    parser.add_argument("--pgd-step-size", type=float, default=1 / 255)
    parser.add_argument("--target", choices=("scale", "shift"), default="scale")
    parser.add_argument("--scale", type=float, default=0.6)
    parser.add_argument("--shift", type=int, nargs="+", default=[0, 64])
    add_threads_argument(parser, 1)
    parser.add_argument("--output-dir", type=Path, default=Path("results/attacks/fundus_asma"))
    parser.add_argument("--tracking-dir", type=Path, default=Path("eval/mlflow"))
    parser.add_argument(
        "--summarise-only", action="store_true", help="recompute quality_bar.json from the reports in --output-dir"
    )
    add_attack_arguments(parser, "authors_x1000", batch_size=1)
    args = parser.parse_args()
    asma = asma_from_args(args)
    if args.summarise_only:
        print(json.dumps(summarise_quality_bar(args.output_dir, asma), indent=2))
        return

    torch.set_num_threads(args.threads)
    attack = asma
    if args.attack == "pgd":
        attack = PGD(asma.max_linf, args.pgd_step_size, asma.max_iter, targeted=True, seed=args.seed)
    target_fn = (
        partial(scale_mask, factor=args.scale) if args.target == "scale" else partial(shift_mask, offset=args.shift)
    )
    report, bar = run_quality_bar(
        args.bundle,
        attack,
        target_fn,
        args.output_dir,
        split=args.split,
        limit=args.limit,
        data_root=args.data_root,
        batch_size=args.batch_size,
        tracking_dir=args.tracking_dir,
        success_iou=asma.target_iou,
        command=command_line("nice -n 10 python scripts/reproduce_asma_fundus.py", args),
    )
    print(Path(report["files"]["markdown"]).read_text())
    print(json.dumps(bar, indent=2))


if __name__ == "__main__":
    main()
