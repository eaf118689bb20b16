"""``medsecure calibrate fr``: fit and auto-tune the FrequencyRefine DQ-table on a bundle's data.

Band statistics come from the ``--std-split`` (training) images; the (QS1, QS2, QS3) grid is scored on the
``--split`` (validation) images and their ASMA adversarial examples (crafted once); the chosen table maximises the
mean adversarial IoU of ``--classes`` with mean benign IoU at most ``--max-benign-drop`` below the undefended one.
Writes ``<output>/fr_table.json`` (table + provenance), ``fr_grid.json`` and ``fr_pareto.png``.

    medsecure calibrate fr --bundle fundus_disc_seg --classes 1 2 --output results/fr/calibration/fundus
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import torch

from ..attacks import ASMA
from ..attacks.targets import OtherSampleMask
from ..bundle import bundle_dir, load_bundle_network, load_split_tensors
from ..defenses import coding_space_band_std
from ..evaluation.fr_study import JPEG_CURVE, PAPER_GRID, craft_adversarial, grid_search, save_pareto_plot
from .main import add_data_root_argument


def add_attack_arguments(parser: argparse.ArgumentParser) -> None:
    """ASMA settings shared by calibration and reproduction. Defaults: many small steps as the authors' schedule
    (2500 x 1e-7..1e-6), shortened to 200 x 5e-5..5e-4 for CPU; it reaches ~0.9 target IoU on Drishti-GS1."""
    parser.add_argument("--max-iter", type=int, default=200, help="ASMA iterations (authors: 2500)")
    parser.add_argument("--tau", type=float, default=5e-5, help="ASMA constant step multiplier (authors: 1e-7)")
    parser.add_argument(
        "--beta", type=float, default=5e-4, help="ASMA IoU-proportional step multiplier (authors: 1e-6)"
    )
    parser.add_argument("--max-linf", type=float, default=8 / 255, help="ASMA Linf budget (image units)")
    parser.add_argument("--target-iou", type=float, default=0.9, help="ASMA stopping IoU with the target")
    parser.add_argument("--seed", type=int, default=0, help="seed of the target-mask draws")
    parser.add_argument("--batch-size", type=int, default=4)


def build_asma(args: argparse.Namespace) -> ASMA:
    return ASMA(
        max_iter=args.max_iter,
        beta=args.beta,
        tau=args.tau,
        target_iou=args.target_iou,
        max_linf=args.max_linf,
        seed=args.seed,
    )


def weights_digest(bundle: str) -> str:
    return hashlib.sha256((bundle_dir(bundle) / "models" / "model.pt").read_bytes()).hexdigest()[:16]


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    model = load_bundle_network(args.bundle)
    std_images, _ = load_split_tensors(args.bundle, args.std_split, args.data_root)
    std = coding_space_band_std(std_images, args.color)
    images, labels = load_split_tensors(args.bundle, args.split, args.data_root, args.limit)
    targets = OtherSampleMask(list(labels), seed=args.seed)(labels)
    attack = build_asma(args)
    adversarial = craft_adversarial(model, images, targets, attack, args.batch_size, desc=f"ASMA on {args.split}")
    grid = {"qs1": args.qs1, "qs2": args.qs2, "qs3": args.qs3}
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
        args.jpeg_qualities,
        dataset=f"{args.bundle}:{args.std_split}",
    )
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
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
    table.save(out / "fr_table.json")
    (out / "fr_grid.json").write_text(json.dumps({k: v for k, v in search.items() if k != "table"}, indent=2) + "\n")
    save_pareto_plot(
        search,
        out / "fr_pareto.png",
        f"{args.bundle} {args.split} (n={len(images)}), ASMA {args.max_iter} it, Linf {args.max_linf:.3f}",
    )
    best, ref = search["best"], search["reference"]
    print(f"undefended: benign IoU {ref['benign_iou']:.4f}, adversarial IoU {ref['adversarial_iou']:.4f}")
    print(f"chosen {table.name}: benign IoU {best['benign_iou']:.4f}, adversarial IoU {best['adversarial_iou']:.4f}")
    print(f"wrote {out / 'fr_table.json'}, {out / 'fr_grid.json'}, {out / 'fr_pareto.png'}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("fr", help="fit + auto-tune the FrequencyRefine DQ-table (grid over QS1-3)")
    add_data_root_argument(parser)
    parser.add_argument("--bundle", default="fundus_disc_seg")
    parser.add_argument(
        "--classes",
        type=int,
        nargs="+",
        default=[1, 2],
        help="classes forming the scored structure (fundus optic disc: 1 2; skin lesion: 1)",
    )
    parser.add_argument("--std-split", default="training", help="split whose images give the band std")
    parser.add_argument("--split", default="validation", help="split the grid is scored on")
    parser.add_argument("--limit", type=int, default=None, help="first N samples of --split")
    parser.add_argument("--color", choices=("rgb", "ycbcr"), default="rgb")
    parser.add_argument("--qs1", type=float, nargs="+", default=list(PAPER_GRID["qs1"]))
    parser.add_argument("--qs2", type=float, nargs="+", default=list(PAPER_GRID["qs2"]))
    parser.add_argument("--qs3", type=float, nargs="+", default=list(PAPER_GRID["qs3"]))
    parser.add_argument(
        "--max-benign-drop", type=float, default=0.01, help="allowed mean benign IoU drop (0.01 = 1 pt)"
    )
    parser.add_argument("--jpeg-qualities", type=int, nargs="+", default=list(JPEG_CURVE), help="JPEG(QF) curve")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", required=True, help="output folder")
    add_attack_arguments(parser)
    parser.set_defaults(func=run)
