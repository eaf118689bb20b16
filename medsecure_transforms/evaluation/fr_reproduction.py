"""Reproduction of Liu et al. (MICCAI 2020) Tables 1-3 on a segmentation bundle, plus adaptive BPDA attacks.

Benign and ASMA-adversarial IoU of a structure (``classes``) under JPEG(QF) and FR DQ-tables (Tables 1-2), glaucoma
screening from the predicted vertical cup-to-disc ratio (Table 3 analogue), and ASMA / targeted PGD through each
chosen defense with a straight-through (BPDA) gradient (not in the paper). Adversarial examples are cached on disk,
keyed by what they were computed from (weights, images, targets, attack settings, the BPDA defense), so a rerun that
only adds a defense does not attack again and a run on other data never reads stale examples.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..attacks import ASMA, BPDA, PGD, SegmentationAttack
from ..attacks.targets import OtherSampleMask
from ..bundle import bundle_preprocessing, load_bundle_network, load_split_tensors, weights_digest
from ..defenses import (
    BlockDCTQuantizer,
    QuantTable,
    coding_space_band_std,
    defensive_table,
    fixed_layout_table,
    jpeg_quantizer,
)
from .fr_study import craft_adversarial, score_defense, screening, vertical_cdr, youden_threshold
from .metrics import predict_classes, region_iou
from .study_cache import cached, content_key, module_digest, tensor_digest

__all__ = ["AdversarialCache", "fr_markdown", "glaucoma_screening", "paper_defenses", "reproduce_fr"]


def paper_defenses(
    train_images: torch.Tensor, dataset: str, auto_tables: Sequence[str | os.PathLike] = ()
) -> dict[str, BlockDCTQuantizer | None]:
    """The paper's columns (none, JPEG(85), JPEG(50), FR(20,10,60), FR(30,5,80)), the fixed-layout FR(30,5,80), its
    YCbCr variant (RGB data) and one ``auto <name>`` column per table JSON in ``auto_tables``.

    Ranked tables are fitted on ``train_images`` ``[N, C, H, W]`` in [0, 1]; ``dataset`` goes into their provenance.
    """
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
    for path in auto_tables:
        table = QuantTable.load(path)
        color = table.provenance.get("color", "rgb")
        defenses[f"auto {table.name}" + ("-YCbCr" if color == "ycbcr" else "")] = BlockDCTQuantizer(table, color=color)
    return defenses


class AdversarialCache:
    """Adversarial examples crafted once and kept in ``folder/<bundle name>_<key>.pt``.

    The key (:func:`study_cache.content_key`) hashes what the examples were computed from: the attacked network's
    weights (:func:`study_cache.module_digest`), the images and targets (:func:`study_cache.tensor_digest`), the
    attack's ``params()``, ``tag``, the state of the ``defense`` a BPDA attack goes through, ``seed`` (of the target
    draws) and the batch size, so other data, weights or settings never read a stale entry. ``weights`` is the
    bundle's weights file digest (for reports).
    """

    def __init__(self, folder: str | os.PathLike, bundle: str, seed: int, batch_size: int = 4) -> None:
        self.folder, self.bundle, self.seed, self.batch_size = Path(folder), bundle, seed, batch_size
        self.weights = weights_digest(bundle)

    def __call__(
        self,
        model: torch.nn.Module,
        images: torch.Tensor,
        targets: torch.Tensor,
        attack: SegmentationAttack,
        attack_model: torch.nn.Module | None = None,
        tag: str = "asma",
        defense: BlockDCTQuantizer | None = None,
    ) -> tuple[torch.Tensor, float]:
        """Adversarial images ``[N, C, H, W]`` and the seconds crafting them took (when they were crafted).

        ``attack_model`` (e.g. BPDA through ``defense``) is what the attack differentiates; ``defense``'s state goes
        into the key. Each batch of ``batch_size`` images is crafted and stored on its own (keyed by its own images
        and targets), so an interrupted run loses at most the batch in progress and a rerun resumes after it.
        """
        state = None if defense is None else defense.to_dict()
        network = module_digest(model)  # once per call, not per batch
        settings = (attack.params(), tag, state, self.seed, self.batch_size)
        batches, seconds = [], 0.0
        for start in range(0, len(images), self.batch_size):
            batch = slice(start, start + self.batch_size)
            key = content_key(network, tensor_digest(images[batch], targets[batch]), *settings)

            def craft(batch: slice = batch) -> dict:
                begin = time.perf_counter()
                crafted = craft_adversarial(
                    model, images[batch], targets[batch], attack, self.batch_size, attack_model, desc=tag
                )
                return {"adversarial": torch.stack(crafted), "seconds": time.perf_counter() - begin}

            record = cached(self.folder, Path(self.bundle).name, key, craft)
            batches.append(record["adversarial"])
            seconds += float(record["seconds"])
        return torch.cat(batches), seconds


def glaucoma_screening(
    model: torch.nn.Module,
    bundle: str,
    split: str,
    train_images: torch.Tensor,
    scores: dict[str, dict],
    data_root: str | None = None,
    limit: int | None = None,
    calibration_split: str = "training",
    calibration_data_root: str | None = None,
) -> dict:
    """Table 3 analogue: the vertical CDR threshold maximising Youden's J on the calibration split (``train_images``
    are its images), then sensitivity and specificity of ``CDR >= threshold`` on ``split`` for every
    ``"{benign,adversarial}/<defense>"`` of ``scores`` (:func:`score_defense` outputs). Diagnoses come from the
    datalists' ``diagnosis`` (``"glaucomatous"``)."""
    datalist, _ = bundle_preprocessing(bundle, split, data_root=data_root, limit=limit)
    train_list, _ = bundle_preprocessing(bundle, calibration_split, data_root=calibration_data_root or data_root)
    positive = np.array([item["diagnosis"] == "glaucomatous" for item in datalist])
    train_positive = np.array([item["diagnosis"] == "glaucomatous" for item in train_list])
    # PIL-read 2D data is [C, W, H]: transpose so rows are the vertical axis
    train_cdr = vertical_cdr(predict_classes(model, train_images).transpose(-1, -2))
    threshold = youden_threshold(train_cdr, train_positive)
    table3 = {"threshold_from_training": threshold, "training": screening(train_cdr, train_positive, threshold)}
    for name, s in scores.items():
        for cond in ("benign", "adversarial"):
            cdr = vertical_cdr(torch.stack(s[f"{cond}_pred"]).transpose(-1, -2))
            table3[f"{cond}/{name}"] = screening(cdr, positive, threshold)
    return table3


def reproduce_fr(
    bundle: str,
    classes: Sequence[int],
    attack: ASMA,
    output: str | os.PathLike,
    *,
    split: str = "test",
    limit: int | None = None,
    data_root: str | None = None,
    auto_tables: Sequence[str | os.PathLike] = (),
    cdr: bool = False,
    bpda_samples: int = 8,
    bpda_defenses: Sequence[str] = ("JPEG(85)", "auto"),
    bpda_pgd_steps: int = 50,
    batch_size: int = 4,
    seed: int = 0,
    cache_dir: str | os.PathLike = "/tmp/medsecure_fr_cache",
    calibration_split: str = "training",
    calibration_data_root: str | None = None,
) -> dict:
    """Run the study and write ``fr_reproduction.{json,md}`` into ``output`` (rewritten after each BPDA defense).

    Targets are other test images' masks (``OtherSampleMask(seed)``). BPDA attacks the first ``bpda_samples`` images
    through the defenses whose names start with the ``bpda_defenses`` prefixes (first match each, in that order): ASMA
    with ``attack``'s settings and, when ``bpda_pgd_steps > 0``, targeted Linf PGD in ``attack.max_linf`` with 1/255
    steps. Band statistics (ranked tables) and the CDR threshold come from ``calibration_split`` of
    ``calibration_data_root`` (default: ``data_root``), so a test-only folder can be evaluated with calibration data
    from elsewhere. Returns the report (the JSON's content).
    """
    if bpda_samples > 0 and bpda_pgd_steps > 0 and attack.max_linf is None:
        raise ValueError("PGD through BPDA needs the attack's Linf budget (max_linf); set one or bpda_pgd_steps=0")
    model = load_bundle_network(bundle)
    calibration_root = calibration_data_root or data_root
    train_images, _ = load_split_tensors(bundle, calibration_split, calibration_root)
    defenses = paper_defenses(train_images, f"{bundle}:{calibration_split}", auto_tables)
    images, labels = load_split_tensors(bundle, split, data_root, limit)
    targets = OtherSampleMask(list(labels), seed=seed)(labels)
    cache = AdversarialCache(cache_dir, bundle, seed, batch_size)
    adversarial, attack_seconds = cache(model, images, targets, attack)
    target_iou = region_iou(predict_classes(model, adversarial), targets, classes)

    scores = {name: score_defense(model, d, images, adversarial, labels, classes) for name, d in defenses.items()}
    report: dict = {
        "bundle": bundle,
        "weights_sha256_16": cache.weights,
        "split": split,
        "calibration_split": calibration_split,
        "samples": len(images),
        "classes": list(classes),
        "attack": attack.params() | {"target": f"OtherSampleMask(seed={seed})"},
        "attack_seconds_per_image": attack_seconds / len(images),
        "attack_target_iou_mean": float(np.mean(target_iou)),
        "linf_mean": float((adversarial - images).abs().flatten(1).max(1).values.mean()),
        "machine": f"{platform.machine()} CPU, torch {torch.__version__}, {torch.get_num_threads()} threads",
        "defenses": {name: (d.to_dict() if d is not None else None) for name, d in defenses.items()},
        "iou": {
            name: {k: [float(v) for v in s[k]] for k in ("benign_iou", "adversarial_iou")} for name, s in scores.items()
        },
    }
    if cdr:
        report["screening"] = glaucoma_screening(
            model, bundle, split, train_images, scores, data_root, limit, calibration_split, calibration_root
        )

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)

    def write() -> None:
        (out / "fr_reproduction.json").write_text(json.dumps(report, indent=2) + "\n")
        (out / "fr_reproduction.md").write_text(fr_markdown(report))

    bpda = report["bpda"] = {}
    write()
    n = min(bpda_samples, len(images))
    pgd = None
    if n and bpda_pgd_steps > 0:  # one targeted PGD through each BPDA defense
        pgd = PGD(epsilon=attack.max_linf, step_size=1 / 255, steps=bpda_pgd_steps, targeted=True, seed=seed)
    for prefix in bpda_defenses if n else []:  # in the order given, each written as soon as done
        name = next((k for k in defenses if k.startswith(prefix) and defenses[k] is not None), None)
        if name is None:
            continue
        defense = defenses[name]
        adaptive = BPDA(model, defense, per_sample=False)
        adv, seconds = cache(model, images[:n], targets[:n], attack, adaptive, f"bpda-{name}", defense)
        s = score_defense(model, defense, images[:n], adv, labels[:n], classes)
        bpda[name] = {
            "samples": n,
            "benign_iou": [float(v) for v in s["benign_iou"]],
            "nonadaptive_adversarial_iou": [float(v) for v in scores[name]["adversarial_iou"][:n]],
            "bpda_adversarial_iou": [float(v) for v in s["adversarial_iou"]],
            "seconds_per_image": seconds / n,
        }
        if pgd is not None:
            adv, seconds = cache(model, images[:n], targets[:n], pgd, adaptive, f"bpda-pgd-{name}", defense)
            s = score_defense(model, defense, images[:n], adv, labels[:n], classes)
            bpda[name]["pgd"] = pgd.params()
            bpda[name]["bpda_pgd_adversarial_iou"] = [float(v) for v in s["adversarial_iou"]]
            bpda[name]["pgd_seconds_per_image"] = seconds / n
        write()
    return report


def _pct(values: Sequence[float]) -> str:
    return f"{100 * np.mean(values):.1f}±{100 * np.std(values):.1f}"


def _table(head: str, names: Sequence[str], rows: dict[str, list[str]]) -> list[str]:
    """Markdown table lines: a column of row labels under ``head``, one column per name; ``rows`` ``{label: cells}``."""
    lines = [(f"| {head} | " if head else "| | ") + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    return lines + [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows.items()]


def fr_markdown(report: dict) -> str:
    """The Markdown tables of a :func:`reproduce_fr` report: Tables 1-2, Table 3 analogue, BPDA (IoU in %)."""
    iou = report["iou"]
    names = list(iou)
    a = report["attack"]
    budget = "none" if a["max_linf"] is None else f"{a['max_linf']:.4f}"
    lines = [
        f"# FR reproduction: {report['bundle']} ({report['split']}, n={report['samples']}, "
        f"classes {report['classes']})",
        "",
        f"ASMA {a['max_iter']} iterations, beta={a['beta']}, tau={a['tau']}, Linf budget {budget}, "
        f"target {a['target']}; mean target IoU reached {report['attack_target_iou_mean']:.3f}, mean Linf "
        f"{report['linf_mean']:.4f}, {report['attack_seconds_per_image']:.1f} s/image ({report['machine']}); "
        f"weights sha256[:16] {report['weights_sha256_16']}. IoU in %, mean±std over images.",
        "",
        *_table(
            "",
            names,
            {
                "Table 1: benign IoU": [_pct(iou[n]["benign_iou"]) for n in names],
                "Table 2: adversarial IoU (ASMA)": [_pct(iou[n]["adversarial_iou"]) for n in names],
            },
        ),
    ]
    if "screening" in report:
        sc = report["screening"]
        lines += [
            "",
            f"Table 3 analogue: glaucoma screening by vertical CDR >= {sc['threshold_from_training']:.3f} "
            f"(threshold maximising Youden's J on the {report.get('calibration_split', 'training')} split: sensitivity "
            f"{sc['training']['sensitivity']:.3f}, specificity {sc['training']['specificity']:.3f}).",
            "",
            *_table(
                "condition",
                names,
                {
                    f"{cond} {metric}": [f"{100 * sc[f'{cond}/{n}'][metric]:.1f}" for n in names]
                    for cond in ("benign", "adversarial")
                    for metric in ("sensitivity", "specificity")
                },
            ),
        ]
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
            pgd = f"{_pct(b['bpda_pgd_adversarial_iou'])} ({b['pgd']['steps']})" if "pgd" in b else "-"
            lines.append(
                f"| {name} | {b['samples']} | {_pct(b['benign_iou'])} | {_pct(b['nonadaptive_adversarial_iou'])} "
                f"| {_pct(b['bpda_adversarial_iou'])} | {pgd} | {b['seconds_per_image']:.1f} |"
            )
    return "\n".join(lines) + "\n"
