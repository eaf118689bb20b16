"""``medsecure calibrate fr``: fit and auto-tune the FrequencyRefine DQ-table on a bundle's data.

Band statistics come from the training images (``--std-datalist`` / ``--std-split``; default the ``train#dataset#data``
of the bundle's train config, model-zoo style, else the tuning data); the (QS1, QS2, QS3) grid is scored on the tuning
images (``--datalist`` / ``--split``; default ``validate#dataset#data``, else the bundle's evaluation data) and their
ASMA adversarial examples (crafted once through the bundle's inferer; default ``--attack-preset small_steps``),
after the bundle's post-processing; the chosen table maximises the mean adversarial IoU of ``--classes`` with mean
benign IoU at most ``--max-benign-drop`` below the undefended one. Without ``--config`` the bundle's train config is
read before its evaluation configs (which win on shared ids). Images may differ in shape from sample to sample.
Writes ``<output-dir>/fr_table.json`` (table + provenance), ``fr_grid.json`` and ``fr_pareto.png``.

    medsecure calibrate fr --bundle fundus_disc_seg --classes 1 2 --output-dir results/fr/calibration/fundus
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from .arguments import (
    TRAIN_DATALIST,
    VALIDATE_DATALIST,
    add_adapter_arguments,
    add_attack_arguments,
    add_command,
    add_output_dir_argument,
    add_threads_argument,
    asma_from_args,
    calibration_adapter,
    positive_float,
    probability,
)
from .outputs import check_outputs, staged_folder

if TYPE_CHECKING:
    import torch

    from ..bundle import BundleAdapter


def calibration_adapters(args: argparse.Namespace) -> tuple[BundleAdapter, BundleAdapter]:
    """Adapters of the tuning and the band-statistics data (see the module docstring for the defaults)."""
    tune = calibration_adapter(args, args.datalist, args.split, VALIDATE_DATALIST)
    if args.std_datalist is None and args.std_split is None and TRAIN_DATALIST not in tune.parser:
        return tune, tune
    return tune, calibration_adapter(args, args.std_datalist, args.std_split, TRAIN_DATALIST)


def other_sample_targets(labels: list[torch.Tensor], seed: int) -> list[torch.Tensor]:
    """Each label's target: another sample's mask of the same shape (``OtherSampleMask(seed)`` per shape, in order
    of first appearance; one shape: exactly ``OtherSampleMask(labels, seed)(labels)``)."""
    import torch

    from ..attacks.targets import OtherSampleMask

    groups: dict[tuple, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(tuple(label.shape), []).append(i)
    targets: list[torch.Tensor | None] = [None] * len(labels)
    for shape, members in groups.items():
        if len(members) < 2:
            raise ValueError(f"sample {members[0]} is the only one of shape {shape}: no other sample's mask to target")
        pool = [labels[i] for i in members]
        for i, target in zip(members, OtherSampleMask(pool, seed=seed)(torch.stack(pool)), strict=True):
            targets[i] = target
    return targets


def run(args: argparse.Namespace) -> int:
    import hashlib

    import torch
    from monai.utils import convert_to_tensor

    from ..defenses import coding_space_band_std
    from ..evaluation.fr_study import JPEG_CURVE, PAPER_GRID, craft_adversarial, grid_search, save_pareto_plot
    from ..evaluation.robustness import BundleScorer, bundle_record

    check_outputs([args.output_dir], [], args.overwrite)
    torch.set_num_threads(args.threads)
    adapter, std_adapter = calibration_adapters(args)

    def image(sample: dict) -> torch.Tensor:
        return convert_to_tensor(sample[adapter.image_key], dtype=torch.float32, track_meta=False)

    def planes(sample: dict) -> torch.Tensor:  # volumes [C, H, W, D] -> [C, D, H, W]: blocks in the (H, W) planes
        x = image(sample)
        return x.movedim(-1, 1) if x.ndim == 4 else x

    clip = adapter.clip
    std = coding_space_band_std((planes(s) for s in std_adapter.samples()), args.color, clip)
    samples = list(adapter.samples(args.limit))
    if len(samples) < 2:
        raise ValueError(f"bundle {adapter.name!r}: {len(samples)} tuning sample(s); the targets need at least 2")
    missing = [i for i, s in enumerate(samples) if adapter.label_key not in s]
    if missing:
        raise KeyError(f"tuning sample {missing[0]} has no label {adapter.label_key!r} (keys: {sorted(samples[0])})")
    images = [image(s) for s in samples]
    labels = [convert_to_tensor(s[adapter.label_key], dtype=torch.int64, track_meta=False) for s in samples]
    attack = asma_from_args(args, clip)
    tune_data = args.split or adapter.ids["datalist"]
    targets = other_sample_targets(labels, args.seed)
    adversarial = craft_adversarial(
        adapter.logits, images, targets, attack, args.batch_size, desc=f"ASMA on {tune_data}"
    )
    grid = {name: getattr(args, name) or list(PAPER_GRID[name]) for name in ("qs1", "qs2", "qs3")}
    search = grid_search(
        adapter.logits,
        images,
        adversarial,
        samples,
        args.classes,
        std,
        grid,
        args.max_benign_drop,
        args.color,
        args.jpeg_qualities or list(JPEG_CURVE),
        dataset=f"{adapter.name}:{args.std_split or std_adapter.ids['datalist']}",
        scorer=BundleScorer(adapter),
        intensity_range=clip,
    )
    out = Path(args.output_dir)
    table = search["table"]
    provenance = {
        **table.provenance,
        "bundle": bundle_record(adapter),
        "weights_sha256_16": hashlib.sha256(adapter.checkpoint.read_bytes()).hexdigest()[:16],
        "std_data": {"datalist": std_adapter.ids["datalist"], "split": args.std_split},
        "tune_data": {"datalist": adapter.ids["datalist"], "split": args.split},
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
            f"{adapter.name} {tune_data} (n={len(images)}), ASMA {attack.max_iter} it, "
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
    data = add_adapter_arguments(parser, "fundus_disc_seg", "first N tuning samples")
    data.add_argument(
        "--std-datalist",
        default=None,
        help="band-statistics data: a JSON datalist file or a config id (default: train#dataset#data, else the "
        "tuning data)",
    )
    data.add_argument("--std-split", default=None, help="--split of the band-statistics data")
    parser.add_argument(
        "--classes",
        type=int,
        nargs="+",
        default=[1, 2],
        help="classes forming the scored structure (fundus optic disc: 1 2; skin lesion: 1)",
    )
    parser.add_argument(
        "--color",
        choices=("rgb", "ycbcr"),
        default="rgb",
        help="colour space of the quantization, FR grid and JPEG curve alike (ycbcr: 3 channels)",
    )
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
