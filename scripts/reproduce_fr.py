"""Reproduce Liu et al. (MICCAI 2020) Tables 1-3 with our bundles: benign / ASMA-adversarial IoU under JPEG(QF) and
FR DQ-tables, glaucoma screening from the predicted cup-to-disc ratio, and the adaptive BPDA attack (not in the paper).

    nice -n 10 python scripts/reproduce_fr.py --bundle fundus_disc_seg --classes 1 2 \
        --auto-table results/fr/calibration/fundus_disc_seg/fr_table.json --output results/fr/fundus_disc_seg

Adversarial examples are cached under ``--cache`` (keyed by weights and attack settings) so a rerun that only adds a
defense does not attack again. Writes ``fr_reproduction.json`` and ``fr_reproduction.md`` into ``--output``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from medsecure_transforms.attacks import BPDA, PGD
from medsecure_transforms.attacks.targets import OtherSampleMask
from medsecure_transforms.bundle import bundle_preprocessing, load_bundle_network, load_split_tensors
from medsecure_transforms.cli.calibrate_fr import add_attack_arguments, build_asma, weights_digest
from medsecure_transforms.defenses import (
    BlockDCTQuantizer,
    QuantTable,
    coding_space_band_std,
    defensive_table,
    fixed_layout_table,
    jpeg_quantizer,
)
from medsecure_transforms.evaluation.fr_study import (
    craft_adversarial,
    score_defense,
    screening,
    vertical_cdr,
    youden_threshold,
)
from medsecure_transforms.evaluation.metrics import predict_classes, region_iou


def build_defenses(args, train_images: torch.Tensor) -> dict[str, BlockDCTQuantizer | None]:
    """The paper's columns (+ fixed-layout and YCbCr variants, + the auto-tuned table when given)."""
    dataset = f"{args.bundle}:training"
    std_rgb = coding_space_band_std(train_images, "rgb")
    std_ycc = coding_space_band_std(train_images, "ycbcr") if train_images.shape[1] == 3 else None
    defenses: dict[str, BlockDCTQuantizer | None] = {
        "none": None,
        "JPEG(85)": jpeg_quantizer(85, color="ycbcr" if std_ycc is not None else "rgb"),
        "JPEG(50)": jpeg_quantizer(50, color="ycbcr" if std_ycc is not None else "rgb"),
        "FR(20,10,60)": BlockDCTQuantizer(defensive_table(std_rgb, (20, 10, 60), dataset=dataset)),
        "FR(30,5,80)": BlockDCTQuantizer(defensive_table(std_rgb, (30, 5, 80), dataset=dataset)),
        "FRfixed(30,5,80)": BlockDCTQuantizer(fixed_layout_table((30, 5, 80))),
    }
    if std_ycc is not None:
        ycc = defensive_table(std_ycc, (30, 5, 80), dataset=dataset)
        defenses["FR(30,5,80)-YCbCr"] = BlockDCTQuantizer(ycc, color="ycbcr")
    for path in args.auto_table:
        table = QuantTable.load(path)
        color = table.provenance.get("color", "rgb")
        defenses[f"auto {table.name}" + ("-YCbCr" if color == "ycbcr" else "")] = BlockDCTQuantizer(table, color=color)
    return defenses


def cached_adversarial(
    args, model, images, targets, attack, attack_model=None, tag="asma"
) -> tuple[torch.Tensor, float]:
    key = json.dumps([weights_digest(args.bundle), attack.params(), tag, len(images), args.seed], sort_keys=True)
    path = Path(args.cache) / f"{args.bundle}_{hashlib.sha256(key.encode()).hexdigest()[:12]}.pt"
    if path.is_file():
        cached = torch.load(path, weights_only=True)
        return cached["adversarial"], float(cached["seconds"])
    start = time.perf_counter()
    adversarial = craft_adversarial(model, images, targets, attack, args.batch_size, attack_model, desc=tag)
    seconds = time.perf_counter() - start
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"adversarial": adversarial, "seconds": seconds}, path)
    return adversarial, seconds


def pct(values: np.ndarray) -> str:
    return f"{100 * np.mean(values):.1f}±{100 * np.std(values):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default="fundus_disc_seg")
    parser.add_argument("--classes", type=int, nargs="+", default=[1, 2], help="scored structure (disc: 1 2)")
    parser.add_argument("--auto-table", nargs="*", default=[], help="table JSONs from `medsecure calibrate fr`")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--bpda-samples", type=int, default=8, help="first N test samples attacked adaptively")
    parser.add_argument(
        "--bpda-defenses",
        nargs="*",
        default=["JPEG(85)", "auto"],
        help="defense names (prefixes), attacked in this order",
    )
    parser.add_argument(
        "--bpda-pgd-steps",
        type=int,
        default=50,
        help="targeted Linf PGD steps against each BPDA defense (ASMA budget, 1/255 steps); 0: off",
    )
    parser.add_argument("--cdr", action="store_true", help="glaucoma screening from the vertical cup-to-disc ratio")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", default="/tmp/medsecure_fr_cache")
    parser.add_argument("--output", required=True)
    parser.add_argument("--data-root", default=None)
    add_attack_arguments(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = load_bundle_network(args.bundle)
    train_images, train_labels = load_split_tensors(args.bundle, "training", args.data_root)
    defenses = build_defenses(args, train_images)
    images, labels = load_split_tensors(args.bundle, args.split, args.data_root, args.limit)
    targets = OtherSampleMask(list(labels), seed=args.seed)(labels)
    attack = build_asma(args)
    adversarial, attack_seconds = cached_adversarial(args, model, images, targets, attack)
    target_iou = region_iou(predict_classes(model, adversarial), targets, args.classes)

    scores = {name: score_defense(model, d, images, adversarial, labels, args.classes) for name, d in defenses.items()}
    report: dict = {
        "bundle": args.bundle,
        "weights_sha256_16": weights_digest(args.bundle),
        "split": args.split,
        "samples": len(images),
        "classes": args.classes,
        "attack": attack.params() | {"target": f"OtherSampleMask(seed={args.seed})"},
        "attack_seconds_per_image": attack_seconds / len(images),
        "attack_target_iou_mean": float(np.mean(target_iou)),
        "linf_mean": float((adversarial - images).abs().flatten(1).max(1).values.mean()),
        "machine": f"{platform.machine()} CPU, torch {torch.__version__}, {args.threads} threads",
        "defenses": {name: (d.to_dict() if d is not None else None) for name, d in defenses.items()},
        "iou": {
            name: {k: [float(v) for v in s[k]] for k in ("benign_iou", "adversarial_iou")} for name, s in scores.items()
        },
    }

    if args.cdr:
        datalist, _ = bundle_preprocessing(args.bundle, args.split, data_root=args.data_root, limit=args.limit)
        train_list, _ = bundle_preprocessing(args.bundle, "training", data_root=args.data_root)
        positive = np.array([item["diagnosis"] == "glaucomatous" for item in datalist])
        train_positive = np.array([item["diagnosis"] == "glaucomatous" for item in train_list])
        # PIL-read 2D data is [C, W, H]: transpose so rows are the vertical axis
        train_cdr = vertical_cdr(predict_classes(model, train_images).transpose(-1, -2))
        threshold = youden_threshold(train_cdr, train_positive)
        table3 = {"threshold_from_training": threshold, "training": screening(train_cdr, train_positive, threshold)}
        for name, s in scores.items():
            for cond in ("benign", "adversarial"):
                cdr = vertical_cdr(s[f"{cond}_pred"].transpose(-1, -2))
                table3[f"{cond}/{name}"] = screening(cdr, positive, threshold)
        report["screening"] = table3

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)

    def write() -> None:
        (out / "fr_reproduction.json").write_text(json.dumps(report, indent=2) + "\n")
        (out / "fr_reproduction.md").write_text(markdown(report, scores))

    bpda = report["bpda"] = {}
    write()
    n = min(args.bpda_samples, len(images))
    pgd = None
    if args.bpda_pgd_steps > 0:  # one targeted PGD through each BPDA defense
        pgd = PGD(epsilon=args.max_linf, step_size=1 / 255, steps=args.bpda_pgd_steps, targeted=True, seed=args.seed)
    for prefix in args.bpda_defenses if n else []:  # in the order given, each written as soon as done
        name = next((k for k in defenses if k.startswith(prefix) and defenses[k] is not None), None)
        if name is None:
            continue
        defense = defenses[name]
        adaptive = BPDA(model, defense, per_sample=False)
        adv, seconds = cached_adversarial(args, model, images[:n], targets[:n], attack, adaptive, tag=f"bpda-{name}")
        s = score_defense(model, defense, images[:n], adv, labels[:n], args.classes)
        bpda[name] = {
            "samples": n,
            "benign_iou": [float(v) for v in s["benign_iou"]],
            "nonadaptive_adversarial_iou": [float(v) for v in scores[name]["adversarial_iou"][:n]],
            "bpda_adversarial_iou": [float(v) for v in s["adversarial_iou"]],
            "seconds_per_image": seconds / n,
        }
        if pgd is not None:
            adv, seconds = cached_adversarial(
                args, model, images[:n], targets[:n], pgd, adaptive, tag=f"bpda-pgd-{name}"
            )
            s = score_defense(model, defense, images[:n], adv, labels[:n], args.classes)
            bpda[name]["pgd"] = pgd.params()
            bpda[name]["bpda_pgd_adversarial_iou"] = [float(v) for v in s["adversarial_iou"]]
            bpda[name]["pgd_seconds_per_image"] = seconds / n
        write()
    print(markdown(report, scores))


def markdown(report: dict, scores: dict) -> str:
    names = list(scores)
    a = report["attack"]
    lines = [
        f"# FR reproduction: {report['bundle']} ({report['split']}, n={report['samples']}, "
        f"classes {report['classes']})",
        "",
        f"ASMA {a['max_iter']} iterations, beta={a['beta']}, tau={a['tau']}, Linf budget {a['max_linf']:.4f}, "
        f"target {a['target']}; mean target IoU reached {report['attack_target_iou_mean']:.3f}, mean Linf "
        f"{report['linf_mean']:.4f}, {report['attack_seconds_per_image']:.1f} s/image ({report['machine']}); "
        f"weights sha256[:16] {report['weights_sha256_16']}. IoU in %, mean±std over images.",
        "",
        "| | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
        "| Table 1: benign IoU | " + " | ".join(pct(scores[n]["benign_iou"]) for n in names) + " |",
        "| Table 2: adversarial IoU (ASMA) | " + " | ".join(pct(scores[n]["adversarial_iou"]) for n in names) + " |",
    ]
    if "screening" in report:
        sc = report["screening"]
        lines += [
            "",
            f"Table 3 analogue: glaucoma screening by vertical CDR >= {sc['threshold_from_training']:.3f} "
            f"(threshold maximising Youden's J on the training split: sensitivity "
            f"{sc['training']['sensitivity']:.3f}, specificity {sc['training']['specificity']:.3f}).",
            "",
            "| condition | " + " | ".join(names) + " |",
            "|---|" + "---|" * len(names),
        ]
        for cond in ("benign", "adversarial"):
            for metric in ("sensitivity", "specificity"):
                cells = [sc[f"{cond}/{n}"] for n in names]
                lines.append(f"| {cond} {metric} | " + " | ".join(f"{100 * c[metric]:.1f}" for c in cells) + " |")
        first = sc[f"benign/{names[0]}"]
        lines.append(f"\n({first['positives']} glaucomatous, {first['negatives']} normal test images.)")
    if report["bpda"]:
        lines += [
            "",
            "Adaptive attacks (BPDA, identity backward pass through the defense): ASMA with the settings above, and "
            "targeted Linf PGD to the same target masks within the same budget (1/255 steps, random start; "
            "`--bpda-pgd-steps`):",
            "",
            "| defense | n | benign IoU | ASMA (non-adaptive) IoU | ASMA+BPDA IoU | PGD+BPDA IoU (steps) | s/image |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, b in report["bpda"].items():
            pgd = f"{pct(b['bpda_pgd_adversarial_iou'])} ({b['pgd']['steps']})" if "pgd" in b else "-"
            lines.append(
                f"| {name} | {b['samples']} | {pct(b['benign_iou'])} | {pct(b['nonadaptive_adversarial_iou'])} "
                f"| {pct(b['bpda_adversarial_iou'])} | {pgd} | {b['seconds_per_image']:.1f} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
