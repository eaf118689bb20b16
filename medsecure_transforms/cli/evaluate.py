"""``medsecure evaluate``: attack a bundle's network on a dataset split, with and without defenses.

Example (ASMA towards the ground-truth mask shifted 48 px to the right, JPEG-style defense given as a MONAI config)::

    medsecure evaluate --bundle fundus_disc_seg --split test --attack asma --max-iter 200 \\
        --target shift --shift 0 48 --regions disc=1,2 cup=2 \\
        --defense 'fr={"_target_": "medsecure_transforms.transforms.FrequencyRefine"}' --output-dir eval/asma
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path

import torch

from ..attacks import BPDA, DAG, EOT, FGSM, PGD, SegmentationAttack
from ..attacks.targets import OtherSampleMask, erase_classes, scale_mask, shift_mask
from .arguments import add_attack_arguments, add_bundle_arguments, add_threads_argument, asma_from_args

ATTACKS = ("asma", "dag", "pgd", "fgsm")
TARGETS = ("shift", "scale", "erase", "other")


def register(subparsers) -> None:
    """Add the ``evaluate`` subcommand."""
    parser = subparsers.add_parser(
        "evaluate",
        help="robustness of a bundle's network under attack (and defenses)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_bundle_arguments(parser, None, "test", "evaluate only the first N samples")
    parser.add_argument("--output-dir", required=True, type=Path, help="reports and the MLflow store go here")
    attack = add_attack_arguments(parser, "authors", batch_size=1)
    attack.add_argument("--attack", choices=ATTACKS, default="asma", help="attack (--max-iter: DAG default 200)")
    attack.add_argument("--gamma", type=float, default=0.5 / 255, help="DAG normalised step (image units)")
    attack.add_argument("--epsilon", type=float, default=8 / 255, help="PGD/FGSM ball radius (image units)")
    attack.add_argument("--step-size", type=float, default=2 / 255, help="PGD step size")
    attack.add_argument("--steps", type=int, default=10, help="PGD iterations")
    attack.add_argument("--norm", choices=("linf", "l2"), default="linf", help="PGD/FGSM norm")
    attack.add_argument(
        "--targeted", action="store_true", help="PGD/FGSM towards --target instead of away from the label"
    )
    target = parser.add_argument_group("target mask (targeted attacks)")
    target.add_argument("--target", choices=TARGETS, default="shift")
    target.add_argument("--shift", type=int, nargs="+", default=None, help="voxels per spatial axis (shift)")
    target.add_argument("--scale", type=float, default=0.5, help="foreground scale factor (scale)")
    target.add_argument(
        "--erase-classes", type=int, nargs="*", default=None, help="classes to erase (erase; default all foreground)"
    )
    target.add_argument("--erase-fill", type=int, default=0, help="class written over erased voxels (erase)")
    defense = parser.add_argument_group("defenses")
    defense.add_argument(
        "--defense",
        action="append",
        default=[],
        metavar="NAME=CONFIG",
        help="defense as a MONAI config dict in JSON ('_target_' + arguments), applied per image "
        "[C, *spatial]; repeatable",
    )
    defense.add_argument(
        "--adaptive",
        choices=("none", "bpda", "eot"),
        default="none",
        help="attack through the (single) defense: BPDA identity backward or EOT",
    )
    defense.add_argument("--eot-samples", type=int, default=8)
    report = parser.add_argument_group("report")
    report.add_argument(
        "--regions",
        nargs="*",
        default=None,
        metavar="NAME=C1,C2",
        help="regions scored as unions of classes, e.g. disc=1,2 cup=2 (default: each class)",
    )
    report.add_argument("--panel-samples", type=int, default=4)
    report.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    add_threads_argument(report, None)
    report.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.set_defaults(func=run)


def build_attack(args: argparse.Namespace) -> SegmentationAttack:
    """The attack named by ``--attack`` with its arguments."""
    if args.attack == "asma":
        return asma_from_args(args)
    if args.attack == "dag":
        return DAG(max_iter=args.max_iter or 200, gamma=args.gamma, seed=args.seed)
    if args.attack == "pgd":
        return PGD(
            epsilon=args.epsilon,
            step_size=args.step_size,
            steps=args.steps,
            norm=args.norm,
            targeted=args.targeted,
            seed=args.seed,
        )
    return FGSM(epsilon=args.epsilon, norm=args.norm, targeted=args.targeted, seed=args.seed)


def build_target_fn(args: argparse.Namespace, dataset) -> partial | OtherSampleMask:
    """The target-mask generator named by ``--target`` (``other`` draws from the split's labels)."""
    if args.target == "shift":
        if not args.shift:
            raise SystemExit("--target shift needs --shift with one offset per spatial axis, e.g. --shift 0 48")
        return partial(shift_mask, offset=list(args.shift))
    if args.target == "scale":
        return partial(scale_mask, factor=args.scale)
    if args.target == "erase":
        return partial(erase_classes, classes=args.erase_classes, fill=args.erase_fill)
    return OtherSampleMask([sample["label"] for sample in dataset], seed=args.seed)


def parse_defenses(items: list[str]) -> dict:
    """``["name={json config}", ...]`` -> ``{name: instantiated defense}`` through MONAI's ``ConfigParser``."""
    from monai.bundle import ConfigParser

    defenses = {}
    for item in items:
        name, sep, config = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"--defense expects NAME=CONFIG, got {item!r}")
        try:
            parsed = json.loads(config)
        except json.JSONDecodeError as error:
            raise SystemExit(f"--defense {name}: CONFIG is not valid JSON ({error})") from error
        defenses[name] = ConfigParser({"defense": parsed}).get_parsed_content("defense")
    return defenses


def parse_regions(items: list[str] | None) -> dict[str, list[int]] | None:
    """``["disc=1,2", "cup=2"]`` -> ``{"disc": [1, 2], "cup": [2]}``."""
    if not items:
        return None
    regions = {}
    for item in items:
        name, sep, classes = item.partition("=")
        try:
            regions[name] = [int(c) for c in classes.split(",")]
        except ValueError:
            sep = ""
        if not sep or not name:
            raise SystemExit(f"--regions expects NAME=C1,C2,..., got {item!r}")
    return regions


def run(args: argparse.Namespace) -> int:
    """Load the bundle, build attack/target/defenses, run :func:`evaluate_robustness`, print the Markdown table."""
    from monai.data import Dataset

    from ..bundle import bundle_preprocessing, load_bundle_network
    from ..evaluation.robustness import evaluate_robustness

    if args.threads:
        torch.set_num_threads(args.threads)
    attack = build_attack(args)
    defenses = parse_defenses(args.defense)
    model = load_bundle_network(args.bundle, device=args.device)
    datalist, transform = bundle_preprocessing(args.bundle, args.split, data_root=args.data_root, limit=args.limit)
    dataset = Dataset(datalist, transform)
    attack_model = None
    if args.adaptive != "none":
        if len(defenses) != 1:
            raise SystemExit(f"--adaptive {args.adaptive} attacks through exactly one --defense, got {len(defenses)}")
        (defense,) = defenses.values()
        attack_model = BPDA(model, defense) if args.adaptive == "bpda" else EOT(model, defense, args.eot_samples)
    report = evaluate_robustness(
        model,
        dataset,
        attack,
        args.output_dir,
        defenses=defenses,
        target_fn=build_target_fn(args, dataset) if attack.targeted else None,
        attack_model=attack_model,
        regions=parse_regions(args.regions),
        batch_size=args.batch_size,
        panel_samples=args.panel_samples,
        track=not args.no_mlflow,
        run_name=f"{Path(str(args.bundle)).name}-{args.split}-{args.attack}",
    )
    print(Path(report["files"]["markdown"]).read_text())
    return 0
