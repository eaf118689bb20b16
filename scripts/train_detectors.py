"""Train and calibrate the FFTDetect detectors and the reformers of Park et al.'s study on a bundle's clean images.

Every network learns to reconstruct the clean *training* slices of the bundle; every detector is calibrated on the
clean *validation* slices at false-positive rate ``--t-fp``. One artefact per network: ``<out>/detector_<name>.pt`` /
``<out>/reformer_<name>.pt`` plus ``<out>/training.json`` (recipe, losses, thresholds, wall times); the networks are
listed in :mod:`medsecure_transforms.evaluation.fft_guard`.

    nice -n 10 python scripts/train_detectors.py --bundle cardiac_slice_seg \
        --out bundles/cardiac_slice_seg/models/guard --epochs 8
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

import torch

from medsecure_transforms.bundle import load_split_tensors
from medsecure_transforms.defenses.detector_training import GuardRecipe
from medsecure_transforms.evaluation.fft_guard import train_guard_suite


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default="cardiac_slice_seg")
    parser.add_argument("--out", type=Path, required=True)
    for f in fields(GuardRecipe):  # --epochs ... --t-fp, --seed
        parser.add_argument(
            "--" + f.name.replace("_", "-"), type=type(f.default), default=f.default, help=f.metadata.get("help")
        )
    parser.add_argument("--limit", type=int, default=None, help="training cases (volumes or images); all validation")
    parser.add_argument("--only", nargs="*", default=None, help="train only these names (e.g. unet_shifted_frequency)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    recipe = GuardRecipe(**{f.name: getattr(args, f.name) for f in fields(GuardRecipe)})
    train, _ = load_split_tensors(args.bundle, "training", args.data_root, args.limit, slices=True, progress=True)
    val, _ = load_split_tensors(args.bundle, "validation", args.data_root, slices=True, progress=True)
    train_guard_suite(train, val, args.out, recipe, header={"bundle": args.bundle}, only=args.only)


if __name__ == "__main__":
    main()
