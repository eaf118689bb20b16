"""Reproduce Liu et al. (MICCAI 2020) Tables 1-3 with our bundles: benign / ASMA-adversarial IoU under JPEG(QF) and
FR DQ-tables, glaucoma screening from the predicted cup-to-disc ratio, and the adaptive BPDA attack (not in the paper).

    nice -n 10 python scripts/reproduce_fr.py --bundle fundus_disc_seg --classes 1 2 \
        --auto-table results/fr/calibration/fundus_disc_seg/fr_table.json --output results/fr/fundus_disc_seg

Adversarial examples are cached under ``--cache`` (keyed by weights, images, targets and attack settings) so a rerun
that only adds a defense does not attack again. Writes ``fr_reproduction.json`` and ``fr_reproduction.md`` into
``--output`` (:func:`medsecure_transforms.evaluation.fr_reproduction.reproduce_fr`).
"""

from __future__ import annotations

import argparse

import torch

from medsecure_transforms.cli.arguments import (
    add_attack_arguments,
    add_bundle_arguments,
    add_threads_argument,
    asma_from_args,
)
from medsecure_transforms.evaluation.fr_reproduction import fr_markdown, reproduce_fr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_bundle_arguments(parser, "fundus_disc_seg", "test")
    parser.add_argument("--classes", type=int, nargs="+", default=[1, 2], help="scored structure (disc: 1 2)")
    parser.add_argument("--auto-table", nargs="*", default=[], help="table JSONs from `medsecure calibrate fr`")
    parser.add_argument("--bpda-samples", type=int, default=8, help="first N test samples attacked adaptively")
    parser.add_argument(
        "--bpda-defenses", nargs="*", default=["JPEG(85)", "auto"], help="defense names (prefixes), in this order"
    )
    parser.add_argument(
        "--bpda-pgd-steps",
        type=int,
        default=50,
        help="targeted Linf PGD steps against each BPDA defense (ASMA budget, 1/255 steps); 0: off",
    )
    parser.add_argument("--cdr", action="store_true", help="glaucoma screening from the vertical cup-to-disc ratio")
    add_threads_argument(parser, 2)
    parser.add_argument("--calibration-split", default="training", help="split for band statistics and CDR threshold")
    parser.add_argument("--calibration-data-root", default=None, help="its data root (default: --data-root)")
    parser.add_argument("--cache", default="/tmp/medsecure_fr_cache")
    parser.add_argument("--output", required=True)
    add_attack_arguments(parser, "small_steps", batch_size=4)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report = reproduce_fr(
        args.bundle,
        args.classes,
        asma_from_args(args),
        args.output,
        split=args.split,
        limit=args.limit,
        data_root=args.data_root,
        auto_tables=args.auto_table,
        cdr=args.cdr,
        bpda_samples=args.bpda_samples,
        bpda_defenses=args.bpda_defenses,
        bpda_pgd_steps=args.bpda_pgd_steps,
        batch_size=args.batch_size,
        seed=args.seed,
        cache_dir=args.cache,
        calibration_split=args.calibration_split,
        calibration_data_root=args.calibration_data_root,
    )
    print(fr_markdown(report))


if __name__ == "__main__":
    main()
