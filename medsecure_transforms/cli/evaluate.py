"""``medsecure evaluate``: attack a bundle's network on its data, with and without defenses.

Any MONAI bundle works (model-zoo conventions, docs/bundles.md): the attack differentiates the bundle's own inferer
(sliding window, slice by slice ...) around its network, inputs are clipped to the metadata's value range, and every
condition is scored after the bundle's post-processing, so the benign Dice is the one its ``evaluate.json`` reports.
A defense overlay in ``--config`` (``$(medsecure overlay defend_fr)``) defends every sample before the attack, which
then perturbs the defended image; ``--defense`` sits between the attack and the network (benign and adversarial).

Example (ASMA towards the ground-truth mask shifted 48 px to the right, JPEG-style defense given as a MONAI config)::

    medsecure evaluate --bundle fundus_disc_seg --split test --attack asma --max-iter 200 \\
        --target shift --shift 0 48 --regions disc=1,2 cup=2 \\
        --defense 'fr={"_target_": "medsecure_transforms.transforms.FrequencyRefine"}' --output-dir eval/asma

A model-zoo bundle, its data elsewhere (``--set`` sets a config id as ``monai.bundle run --ID VALUE`` does)::

    medsecure evaluate --bundle spleen_ct_segmentation --set dataset_dir=/data/Task09_Spleen --limit 4 \\
        --attack pgd --epsilon 0.03 --output-dir eval/spleen_pgd

The default ASMA preset (``authors_x1000``, 150 steps in an 8/255 ball) takes seconds per 256x256 image on a CPU;
``--attack-preset authors`` runs the authors' schedule (2500 tiny steps: hours per image).
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from .arguments import (
    adapter_from_args,
    add_adapter_arguments,
    add_attack_arguments,
    add_command,
    add_output_dir_argument,
    add_threads_argument,
    asma_from_args,
    non_negative_int,
    positive_float,
    positive_int,
)
from .outputs import check_outputs, staged_folder

if TYPE_CHECKING:
    from ..attacks import SegmentationAttack
    from ..attacks.targets import OtherSampleMask

ATTACKS = ("asma", "dag", "pgd", "fgsm")
TARGETS = ("shift", "scale", "erase", "other")
DEFAULT_PRESET = "authors_x1000"


def region(text: str) -> tuple[str, list[int]]:
    """``"disc=1,2"`` -> ``("disc", [1, 2])`` (an argparse ``type``)."""
    name, sep, classes = text.partition("=")
    try:
        values = [int(c) for c in classes.split(",")]
    except ValueError:
        sep = ""
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=C1,C2,..., got {text!r}")
    return name, values


def defense_config(text: str) -> tuple[str, dict]:
    """``'name={"_target_": ...}'`` -> ``(name, config dict)`` (an argparse ``type``; instantiated when run)."""
    name, sep, config = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=CONFIG, got {text!r}")
    try:
        parsed = json.loads(config)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"{name}: CONFIG is not valid JSON ({error})") from None
    if not isinstance(parsed, dict) or "_target_" not in parsed:
        raise argparse.ArgumentTypeError(f"{name}: CONFIG must be a JSON object with a '_target_'")
    return name, parsed


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` subcommand."""
    parser = add_command(
        subparsers,
        "evaluate",
        help="robustness of a bundle's network under attack (and defenses)",
        description=__doc__,
        func=run,
    )
    add_adapter_arguments(parser, None, "evaluate only the first N samples")
    add_output_dir_argument(parser, None, "reports and the MLflow store go here")
    attack = add_attack_arguments(parser, DEFAULT_PRESET, batch_size=1)
    attack.add_argument("--attack", choices=ATTACKS, default="asma", help="attack (--max-iter: DAG default 200)")
    attack.add_argument("--gamma", type=positive_float, default=0.5 / 255, help="DAG normalised step (image units)")
    attack.add_argument("--epsilon", type=positive_float, default=8 / 255, help="PGD/FGSM ball radius (image units)")
    attack.add_argument("--step-size", type=positive_float, default=2 / 255, help="PGD step size")
    attack.add_argument("--steps", type=positive_int, default=10, help="PGD iterations")
    attack.add_argument("--norm", choices=("linf", "l2"), default="linf", help="PGD/FGSM norm")
    attack.add_argument(
        "--targeted", action="store_true", help="PGD/FGSM towards --target instead of away from the label"
    )
    target = parser.add_argument_group("target mask (targeted attacks)")
    target.add_argument("--target", choices=TARGETS, default="shift", help="how the target mask is drawn")
    target.add_argument("--shift", type=int, nargs="+", default=None, help="voxels per spatial axis (shift)")
    target.add_argument("--scale", type=positive_float, default=0.5, help="foreground scale factor (scale)")
    target.add_argument(
        "--erase-classes", type=int, nargs="*", default=None, help="classes to erase (erase; default all foreground)"
    )
    target.add_argument("--erase-fill", type=non_negative_int, default=0, help="class written over erased voxels")
    defense = parser.add_argument_group("defenses")
    defense.add_argument(
        "--defense",
        type=defense_config,
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
    defense.add_argument("--eot-samples", type=positive_int, default=8, help="EOT samples per gradient")
    report = parser.add_argument_group("report")
    report.add_argument(
        "--regions",
        type=region,
        nargs="*",
        default=None,
        metavar="NAME=C1,C2",
        help="regions scored as unions of classes, e.g. disc=1,2 cup=2 (default: each class)",
    )
    report.add_argument("--panel-samples", type=non_negative_int, default=4, help="rows of the PNG panel")
    report.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    add_threads_argument(report)
    report.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")


def build_attack(args: argparse.Namespace, clip: tuple[float, float]) -> SegmentationAttack:
    """The attack named by ``--attack`` with its arguments, in the box ``clip`` (the network input's value range)."""
    from ..attacks import DAG, FGSM, PGD

    if args.attack == "asma":
        return asma_from_args(args, clip)
    if args.attack == "dag":
        return DAG(max_iter=args.max_iter or 200, gamma=args.gamma, seed=args.seed, clip=clip)
    if args.attack == "pgd":
        return PGD(
            epsilon=args.epsilon,
            step_size=args.step_size,
            steps=args.steps,
            norm=args.norm,
            targeted=args.targeted,
            seed=args.seed,
            clip=clip,
        )
    return FGSM(epsilon=args.epsilon, norm=args.norm, targeted=args.targeted, seed=args.seed, clip=clip)


def build_target_fn(args: argparse.Namespace, dataset, label_key: str = "label") -> partial | OtherSampleMask:
    """The target-mask generator named by ``--target`` (``other`` draws from the ``label_key`` maps of
    ``dataset``)."""
    from ..attacks.targets import OtherSampleMask, erase_classes, scale_mask, shift_mask

    if args.target == "shift":
        if not args.shift:
            raise ValueError("--target shift needs --shift with one offset per spatial axis, e.g. --shift 0 48")
        return partial(shift_mask, offset=list(args.shift))
    if args.target == "scale":
        return partial(scale_mask, factor=args.scale)
    if args.target == "erase":
        return partial(erase_classes, classes=args.erase_classes, fill=args.erase_fill)
    return OtherSampleMask([sample[label_key] for sample in dataset], seed=args.seed)


def build_defenses(items: list[tuple[str, dict]]) -> dict:
    """``[(name, config), ...]`` of ``--defense`` -> ``{name: instantiated defense}`` via MONAI's ``ConfigParser``."""
    from monai.bundle import ConfigParser

    return {name: ConfigParser({"defense": config}).get_parsed_content("defense") for name, config in items}


def robustness_report(output_dir: str | Path, overwrite: bool, track: bool, run_name: str, **kwargs) -> dict:
    """:func:`~medsecure_transforms.evaluation.robustness.evaluate_robustness` written into a temporary sibling
    folder renamed to ``output_dir`` when it succeeds (``overwrite``: replacing an existing one), then logged to
    MLflow in ``output_dir``. An interrupted run (Ctrl-C) keeps its partial folder, whose path it prints."""
    from ..evaluation.robustness import evaluate_robustness, log_report_to_mlflow

    output_dir = Path(output_dir)
    check_outputs([output_dir], [], overwrite)
    with staged_folder(output_dir, keep_on_interrupt=True) as staging:
        report = evaluate_robustness(output_dir=staging, track=False, run_name=run_name, **kwargs)
    report["files"] = {key: str(output_dir / Path(path).name) for key, path in report["files"].items()}
    if track:
        log_report_to_mlflow(report, output_dir, run_name)
    return report


def run(args: argparse.Namespace) -> int:
    """Read the bundle, build attack/target/defenses, run :func:`robustness_report`, print the Markdown table."""
    import torch
    from monai.data import Dataset

    from ..attacks import BPDA, EOT
    from ..evaluation.robustness import BundleScorer, bundle_record

    check_outputs([args.output_dir], [], args.overwrite)  # before the slow part; checked again when writing
    torch.set_num_threads(args.threads)
    adapter = adapter_from_args(args, args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    attack = build_attack(args, adapter.clip)
    defenses = build_defenses(args.defense)
    dataset = Dataset(adapter.datalist[: args.limit], adapter.load)
    if not len(dataset):
        raise ValueError(f"bundle {adapter.name!r}: its datalist ({adapter.ids['datalist']}) has no samples")
    model = adapter.logits
    attack_model = None
    if args.adaptive != "none":
        if len(defenses) != 1:
            raise ValueError(f"--adaptive {args.adaptive} attacks through exactly one --defense, got {len(defenses)}")
        (defense,) = defenses.values()
        attack_model = BPDA(model, defense) if args.adaptive == "bpda" else EOT(model, defense, args.eot_samples)
    data = args.split or adapter.ids["datalist"]
    report = robustness_report(
        args.output_dir,
        args.overwrite,
        track=not args.no_mlflow,
        run_name=f"{adapter.name}-{data}-{args.attack}".replace("#", "."),
        model=model,
        samples=dataset,
        attack=attack,
        defenses=defenses,
        target_fn=build_target_fn(args, dataset, adapter.label_key) if attack.targeted else None,
        attack_model=attack_model,
        regions=dict(args.regions) if args.regions else None,
        batch_size=args.batch_size,
        panel_samples=args.panel_samples,
        scorer=BundleScorer(adapter),
        image_key=adapter.image_key,
        label_key=adapter.label_key,
        device=adapter.device,
        bundle=bundle_record(adapter),
        defense_configs=dict(args.defense),
    )
    print(Path(report["files"]["markdown"]).read_text())
    return 0
