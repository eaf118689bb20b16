"""``medsecure calibrate fr``: fit and auto-tune the FrequencyRefine DQ-table on a bundle's data.

Band statistics come from the ``--std-split`` (training) images; the (QS1, QS2, QS3) grid is scored on the
``--split`` (validation) images and their ASMA adversarial examples (crafted once; default ``--attack-preset
small_steps``); the chosen table maximises the mean adversarial IoU of ``--classes`` with mean benign IoU at most
``--max-benign-drop`` below the undefended one.
Writes ``<output-dir>/fr_table.json`` (table + provenance), ``fr_grid.json`` and ``fr_pareto.png``.

    medsecure calibrate fr --bundle fundus_disc_seg --classes 1 2 --output-dir results/fr/calibration/fundus
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .arguments import (
    add_attack_arguments,
    add_bundle_arguments,
    add_command,
    add_output_dir_argument,
    add_threads_argument,
    asma_from_args,
    positive_float,
    probability,
)
from .outputs import check_outputs, staged_folder


def run(args: argparse.Namespace) -> int:
    import torch

    from ..attacks.targets import OtherSampleMask
    from ..bundle import load_bundle_network, load_split_tensors, weights_digest
    from ..defenses import coding_space_band_std
    from ..evaluation.fr_study import JPEG_CURVE, PAPER_GRID, craft_adversarial, grid_search, save_pareto_plot

    check_outputs([args.output_dir], [], args.overwrite)
    torch.set_num_threads(args.threads)
    model = load_bundle_network(args.bundle)
    std_images, _ = load_split_tensors(args.bundle, args.std_split, args.data_root)
    std = coding_space_band_std(std_images, args.color)
    images, labels = load_split_tensors(args.bundle, args.split, args.data_root, args.limit)
    targets = OtherSampleMask(list(labels), seed=args.seed)(labels)
    attack = asma_from_args(args)
    adversarial = craft_adversarial(model, images, targets, attack, args.batch_size, desc=f"ASMA on {args.split}")
    grid = {name: getattr(args, name) or list(PAPER_GRID[name]) for name in ("qs1", "qs2", "qs3")}
    search = grid_search(
        model,
        images,
        adversarial,
        labels,
        args.classes,
        std,
        grid,
        args.max_benign_drop,
        args.color,
        args.jpeg_qualities or list(JPEG_CURVE),
        dataset=f"{args.bundle}:{args.std_split}",
    )
    out = Path(args.output_dir)
    table = search["table"]
    provenance = {
        **table.provenance,
        "bundle": args.bundle,
        "weights_sha256_16": weights_digest(args.bundle),
        "std_split": args.std_split,
        "tune_split": args.split,
        "tune_samples": len(images),
        "classes": list(args.classes),
        "attack": attack.params(),
    }
    table = type(table)(table.steps, table.name, provenance)
    with staged_folder(out) as staging:
        table.save(staging / "fr_table.json")
        grid_report = {k: v for k, v in search.items() if k != "table"}
        (staging / "fr_grid.json").write_text(json.dumps(grid_report, indent=2) + "\n")
        save_pareto_plot(
            search,
            staging / "fr_pareto.png",
            f"{args.bundle} {args.split} (n={len(images)}), ASMA {attack.max_iter} it, "
            + ("no Linf budget" if attack.max_linf is None else f"Linf {attack.max_linf:.3f}"),
        )
    best, ref = search["best"], search["reference"]
    print(f"undefended: benign IoU {ref['benign_iou']:.4f}, adversarial IoU {ref['adversarial_iou']:.4f}")
    print(f"chosen {table.name}: benign IoU {best['benign_iou']:.4f}, adversarial IoU {best['adversarial_iou']:.4f}")
    print(f"wrote {out / 'fr_table.json'}, {out / 'fr_grid.json'}, {out / 'fr_pareto.png'}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers,
        "fr",
        help="fit + auto-tune the FrequencyRefine DQ-table (grid over QS1-3)",
        description=__doc__,
        func=run,
    )
    add_bundle_arguments(parser, "fundus_disc_seg", "validation", "first N samples of --split")
    parser.add_argument(
        "--classes",
        type=int,
        nargs="+",
        default=[1, 2],
        help="classes forming the scored structure (fundus optic disc: 1 2; skin lesion: 1)",
    )
    parser.add_argument("--std-split", default="training", help="split whose images give the band std")
    parser.add_argument("--color", choices=("rgb", "ycbcr"), default="rgb", help="colour space of the quantization")
    for name, paper in (("qs1", "20 30 40 50"), ("qs2", "5 10 15 20"), ("qs3", "50 60 80 100")):
        parser.add_argument(
            f"--{name}", type=positive_float, nargs="+", help=f"{name.upper()} values of the grid (default: {paper})"
        )
    parser.add_argument(
        "--max-benign-drop", type=probability, default=0.01, help="allowed mean benign IoU drop (0.01 = 1 pt)"
    )
    parser.add_argument(
        "--jpeg-qualities", type=int, nargs="+", help="JPEG(QF) curve (default: 95 90 85 75 60 50 40 30 20)"
    )
    add_threads_argument(parser)
    add_output_dir_argument(parser, None, "folder for fr_table.json, fr_grid.json, fr_pareto.png")
    add_attack_arguments(parser, "small_steps", batch_size=4)
