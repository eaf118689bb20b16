"""Park et al.'s FFTDetect study: Table 1 (detector ROC-AUC), Table 2 (Dice of 16 detector/reformer combinations),
and an adaptive attacker who also minimises the detector's reconstruction error.

Pipeline per combination (the paper's Fig. 1): the detector rejects flagged inputs; accepted inputs pass through the
reformer and the target network. Reported per combination and attack set:

* ``rejected``: fraction of adversarial inputs flagged (and of clean inputs: the false-positive rate);
* ``dice_accepted``: mean Dice of the accepted adversarial inputs after reforming;
* ``dice_recovered``: mean Dice over all adversarial inputs where a rejected input counts with the Dice of its clean
  image (rejection = the attack is stopped and the image re-acquired) -- the number compared with the undefended
  adversarial Dice and the clean Dice for "Dice recovered";
* ``dice_clean_pipeline``: mean Dice of the clean inputs through the same pipeline (rejected ones count as clean).

Attack sets (50% clean / 50% adversarial for every AUC): DAG (target: all foreground erased), ASMA (target: the mask
shifted by 12 pixels), PGD (untargeted, Linf). Dice is the per-image mean foreground Dice.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from tqdm import tqdm

from ..attacks import ASMA, DAG, PGD, SegmentationAttack
from ..attacks.targets import erase_classes, shift_mask
from ..bundle import bundle_dir, load_bundle_network, load_split_tensors
from ..defenses import FFTDetector, Reformer
from .metrics import mean_foreground_dice, predict_classes
from .roc import roc_auc, roc_points
from .study_cache import cached, content_key, module_digest, tensor_digest

__all__ = [
    "ADAPTIVE_DETECTOR",
    "COMBINATIONS",
    "DETECTOR_ORDER",
    "REFORMER_ORDER",
    "FFTStudySettings",
    "adaptive_attack",
    "fft_study",
    "load_guard",
    "pick_slices",
    "plot_dice",
    "plot_roc",
    "run_bundle_study",
    "study_markdown",
    "write_study",
]

DETECTOR_ORDER = (
    "autoencoder1",
    "autoencoder2",
    "unet_spatial",
    "densenet_spatial",
    "unet_frequency",
    "densenet_frequency",
    "unet_shifted_frequency",
    "densenet_shifted_frequency",
)
REFORMER_ORDER = ("autoencoder1", "autoencoder2", "unet", "densenet")
# Table 2 of the paper: (detector, reformer) for combinations 1..16.
COMBINATIONS = (
    ("autoencoder1", "autoencoder1"),
    ("autoencoder1", "autoencoder2"),
    ("autoencoder2", "autoencoder1"),
    ("autoencoder2", "autoencoder2"),
    ("autoencoder1", "unet"),
    ("autoencoder1", "densenet"),
    ("autoencoder2", "unet"),
    ("autoencoder2", "densenet"),
    ("unet_frequency", "unet"),
    ("unet_frequency", "densenet"),
    ("densenet_frequency", "unet"),
    ("densenet_frequency", "densenet"),
    ("unet_shifted_frequency", "unet"),
    ("unet_shifted_frequency", "densenet"),
    ("densenet_shifted_frequency", "unet"),
    ("densenet_shifted_frequency", "densenet"),
)
# The detector the adaptive attacker evades (the paper's method).
ADAPTIVE_DETECTOR = "unet_shifted_frequency"


@dataclass(frozen=True)
class FFTStudySettings:
    """The attacks of the study. Budgets are in image units (images in ``[0, 1]``); ``seed`` seeds every attack."""

    dag_iter: int = 30
    dag_gamma: float = 1.0 / 255
    asma_iter: int = 30
    asma_linf: float = 8.0 / 255
    asma_beta: float = field(default=1e-3, metadata={"help": "authors' 1e-6 x 1000 (docs/attacks.md)"})
    asma_tau: float = field(default=1e-4, metadata={"help": "authors' 1e-7 x 1000"})
    pgd_eps: float = 4.0 / 255
    pgd_steps: int = 10
    adaptive_steps: int = 10
    adaptive_weight: float = 1.0
    seed: int = 0

    def attacks(
        self, labels: torch.Tensor, clean_pred: torch.Tensor
    ) -> dict[str, tuple[SegmentationAttack, torch.Tensor]]:
        """``{"DAG", "ASMA", "PGD"}`` -> (attack, target ``[N, 1, H, W]``) for ``labels`` and the clean prediction."""
        asma = ASMA(
            max_iter=self.asma_iter, beta=self.asma_beta, tau=self.asma_tau, max_linf=self.asma_linf, seed=self.seed
        )
        pgd = PGD(epsilon=self.pgd_eps, step_size=self.pgd_eps / 4, steps=self.pgd_steps, seed=self.seed)
        return {
            "DAG": (DAG(max_iter=self.dag_iter, gamma=self.dag_gamma, seed=self.seed), erase_classes(clean_pred)),
            "ASMA": (asma, shift_mask(labels, (12, 12))),
            "PGD": (pgd, labels),
        }


def pick_slices(
    images: torch.Tensor, labels: torch.Tensor, count: int, min_fraction: float = 0.01
) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` evenly spaced slices whose foreground covers at least ``min_fraction`` of the image."""
    fg = (labels > 0).flatten(1).float().mean(1) >= min_fraction
    index = torch.nonzero(fg).flatten()
    if len(index) < count:
        raise ValueError(f"only {len(index)} test slices have >= {min_fraction:.0%} foreground, asked for {count}")
    chosen = index[torch.linspace(0, len(index) - 1, count).round().long()]
    return images[chosen], labels[chosen]


def load_guard(guard_dir: Path) -> tuple[dict[str, FFTDetector], dict[str, Reformer]]:
    """The detectors (:data:`DETECTOR_ORDER`) and reformers (:data:`REFORMER_ORDER`) present in ``guard_dir``."""
    detectors = {n: FFTDetector.load(p) for n in DETECTOR_ORDER if (p := guard_dir / f"detector_{n}.pt").is_file()}
    reformers = {n: Reformer.load(p) for n in REFORMER_ORDER if (p := guard_dir / f"reformer_{n}.pt").is_file()}
    return detectors, reformers


def adaptive_attack(
    network: torch.nn.Module,
    detector: FFTDetector,
    images: torch.Tensor,
    labels: torch.Tensor,
    epsilon: float,
    step: float,
    steps: int,
    weight: float,
) -> torch.Tensor:
    """Untargeted Linf PGD (no random start) on ``images`` ``[N, C, H, W]`` that maximises
    ``CE(f(x), y) - weight * RE(x) / threshold`` (fool the network and evade the detector); returns ``[N, C, H, W]``."""
    adversarial = images.clone()
    for _ in tqdm(range(steps), desc="adaptive", leave=False):
        x = adversarial.requires_grad_(True)
        ce = F.cross_entropy(network(x), labels[:, 0], reduction="none").flatten(1).mean(1)
        evade = detector.scores(x) / detector.threshold
        (grad,) = torch.autograd.grad((ce - weight * evade).sum(), x)
        moved = x.detach() + step * grad.sign()
        adversarial = (images + (moved - images).clamp(-epsilon, epsilon)).clamp(0.0, 1.0)
    return adversarial.detach()


def fft_study(
    network: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    detectors: Mapping[str, FFTDetector],
    reformers: Mapping[str, Reformer],
    settings: FFTStudySettings,
    cache_dir: Path | None = None,
    cache_key: Sequence[Any] = (),
) -> tuple[dict[str, Any], dict[str, dict[str, torch.Tensor]]]:
    """Attack ``images`` ``[N, C, H, W]`` in ``[0, 1]`` (labels ``[N, 1, H, W]``), score every detector and every
    :data:`COMBINATIONS` row, and run the adaptive attacker against :data:`ADAPTIVE_DETECTOR` when present.

    Adversarial images are cached under ``cache_dir`` (none: no cache, :func:`study_cache.cached`), keyed by what they
    were computed from: the digests of ``images``, the attack's target (or ``labels``) and the network's weights, the
    attack's parameters (for the adaptive attacker also the detector's weights, domain, ``p`` and threshold), plus the
    JSON-ready labels ``cache_key`` (e.g. bundle and slice count). Other data or weights never read a stale entry.

    Returns ``(results, scores)``: ``results`` holds ``num_classes``, ``dice_clean``, ``dice_adversarial``,
    ``attacks``, ``table1_auc``, ``table2``, ``adaptive``, ``detector_thresholds``; ``scores[detector]`` maps
    ``"clean"`` and each attack to the reconstruction errors ``[N]``.
    """
    with torch.no_grad():
        num_classes = network(images[:1]).shape[1]
    clean_pred = predict_classes(network, images, batch_size=16)
    network_digest = module_digest(network)
    adversarial, attack_info = {}, {}
    for name, (attack, target) in settings.attacks(labels, clean_pred).items():

        def run(attack=attack, target=target):
            result = attack(network, images, target)
            return {
                "adversarial": result.adversarial,
                "linf": result.linf,
                "l2": result.l2,
                "seconds": torch.tensor(result.seconds),
            }

        key = content_key(*cache_key, name, attack.params(), network_digest, tensor_digest(images, target))
        record = cached(cache_dir, name, key, run)
        adversarial[name] = record["adversarial"]
        attack_info[name] = {
            "params": attack.params(),
            "mean_linf": float(record["linf"].mean()),
            "mean_l2": float(record["l2"].mean()),
            "seconds": float(record["seconds"]),
        }

    def dice(pred: torch.Tensor) -> torch.Tensor:
        return mean_foreground_dice(pred, labels, num_classes)

    clean_dice = dice(clean_pred)
    adv_dice = {name: dice(predict_classes(network, x, batch_size=16)) for name, x in adversarial.items()}

    # Table 1: ROC-AUC per detector and attack (clean slices vs their adversarial versions).
    scores = {
        d: {"clean": det.score_batches(images)} | {a: det.score_batches(x) for a, x in adversarial.items()}
        for d, det in detectors.items()
    }
    table1 = {d: {a: roc_auc(s["clean"], s[a]) for a in adversarial} for d, s in scores.items()}

    # Table 2: the 16 combinations.
    reformed_dice = {
        r: {
            a: dice(predict_classes(network, ref(x), batch_size=16))
            for a, x in {"clean": images, **adversarial}.items()
        }
        for r, ref in reformers.items()
    }
    table2 = []
    for number, (d, r) in enumerate(COMBINATIONS, start=1):
        row: dict[str, Any] = {"combination": number, "detector": d, "reformer": r}
        if d not in detectors or r not in reformers:
            row["missing"] = [n for n, have in ((d, d in detectors), (r, r in reformers)) if not have]
            table2.append(row)
            continue
        threshold = detectors[d].threshold
        flagged_clean = scores[d]["clean"] > threshold
        row["clean_rejected"] = float(flagged_clean.float().mean())
        row["dice_clean_pipeline"] = float(torch.where(flagged_clean, clean_dice, reformed_dice[r]["clean"]).nanmean())
        for a in adversarial:
            flagged = scores[d][a] > threshold
            dice_ref = reformed_dice[r][a]
            row[f"{a}_rejected"] = float(flagged.float().mean())
            row[f"{a}_dice_accepted"] = float(dice_ref[~flagged].nanmean()) if (~flagged).any() else None
            row[f"{a}_dice_recovered"] = float(torch.where(flagged, clean_dice, dice_ref).nanmean())
        table2.append(row)

    adaptive = {}
    if ADAPTIVE_DETECTOR in detectors:
        detector = detectors[ADAPTIVE_DETECTOR]
        eps, steps, weight = settings.pgd_eps, settings.adaptive_steps, settings.adaptive_weight
        key = content_key(
            *cache_key,
            eps,
            steps,
            weight,
            detector.threshold,
            detector.domain,
            detector.p,
            module_digest(detector.model.network),
            network_digest,
            tensor_digest(images, labels),
        )
        x_adapt = cached(
            cache_dir,
            "adaptive",
            key,
            lambda: adaptive_attack(network, detector, images, labels, eps, eps / 4, steps, weight),
        )
        s_adapt = detector.score_batches(x_adapt)
        adaptive = {
            "detector": ADAPTIVE_DETECTOR,
            "epsilon": eps,
            "steps": steps,
            "weight": weight,
            "auc_adaptive": roc_auc(scores[ADAPTIVE_DETECTOR]["clean"], s_adapt),
            "auc_plain_pgd": table1[ADAPTIVE_DETECTOR]["PGD"],
            "detected_adaptive": float((s_adapt > detector.threshold).float().mean()),
            "dice_adaptive_undefended": float(dice(predict_classes(network, x_adapt, batch_size=16)).nanmean()),
        }

    results = {
        "num_classes": num_classes,
        "dice_clean": float(clean_dice.nanmean()),
        "dice_adversarial": {a: float(v.nanmean()) for a, v in adv_dice.items()},
        "attacks": attack_info,
        "table1_auc": table1,
        "table2": table2,
        "adaptive": adaptive,
        "detector_thresholds": {d: det.threshold for d, det in detectors.items()},
    }
    return results, scores


def run_bundle_study(
    bundle: str,
    guard_dir: Path,
    out: Path,
    settings: FFTStudySettings,
    slices: int = 16,
    test_cases: int | None = None,
    cache: Path | None = Path("runs/fft_detect"),
    data_root: str | None = None,
    record: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The study on ``slices`` test slices of a bundle (picked from its first ``test_cases`` test cases) with the
    guard networks in ``guard_dir``; writes ``out/results.json``, ``tables.md``, ``roc.png``,
    ``dice_combinations.png`` (:func:`write_study`) and returns the results.

    Attacks are cached under ``cache/<bundle name>``, keyed by the slices' content, the weights and the attack
    parameters (see :func:`fft_study`). ``record`` (e.g. the command-line arguments) is stored as ``"args"``.
    """
    torch.manual_seed(settings.seed)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    network = load_bundle_network(bundle)
    weights_sha256 = hashlib.sha256((bundle_dir(bundle) / "models" / "model.pt").read_bytes()).hexdigest()
    all_images, all_labels = load_split_tensors(bundle, "test", data_root, test_cases, slices=True, progress=True)
    images, labels = pick_slices(all_images, all_labels, slices)
    detectors, reformers = load_guard(guard_dir)
    cache_dir = None if cache is None else cache / Path(bundle).name
    study, scores = fft_study(network, images, labels, detectors, reformers, settings, cache_dir, [bundle, slices])
    results = {
        "bundle": bundle,
        "weights_sha256": weights_sha256,
        "slices": slices,
        **study,
        "seconds": round(time.perf_counter() - start, 1),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "args": {k: str(v) for k, v in (record or {}).items()},
    }
    write_study(out, results, scores)
    return results


def write_study(out: Path, results: Mapping[str, Any], scores: Mapping[str, Mapping[str, torch.Tensor]]) -> None:
    """``results.json``, ``tables.md`` (Tables 1, 2 and the adaptive attacker), ``roc.png`` (one panel per detector)
    and ``dice_combinations.png`` (Dice recovered per combination) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "tables.md").write_text(study_markdown(results))
    plot_roc(out / "roc.png", scores)
    plot_dice(out / "dice_combinations.png", results)


def study_markdown(r: Mapping[str, Any]) -> str:
    """The study's tables as Markdown."""
    attacks = list(r["dice_adversarial"])
    lines = [
        f"# FFTDetect study on `{r['bundle']}` ({r['slices']} test slices, clean vs each attack 50/50)",
        "",
        f"Clean Dice {r['dice_clean']:.3f}; undefended adversarial Dice "
        + ", ".join(f"{a} {v:.3f}" for a, v in r["dice_adversarial"].items()),
        "",
        "## Table 1: ROC-AUC of each detector",
        "",
        "| detector | " + " | ".join(attacks) + " | mean |",
        "|---|" + "---|" * (len(attacks) + 1),
    ]
    for d, row in r["table1_auc"].items():
        vals = [row[a] for a in attacks]
        lines.append(f"| {d} | " + " | ".join(f"{v:.3f}" for v in vals) + f" | {np.mean(vals):.3f} |")
    lines += [
        "",
        "## Table 2: detector/reformer combinations (Dice recovered = rejected inputs count as clean)",
        "",
        "| # | detector | reformer | clean FPR | clean Dice | "
        + " | ".join(f"{a} rejected | {a} Dice accepted | {a} Dice recovered" for a in attacks)
        + " |",
        "|---|---|---|---|---|" + "---|" * (3 * len(attacks)),
    ]

    def fmt(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    for row in r["table2"]:
        head = f"| {row['combination']} | {row['detector']} | {row['reformer']} | "
        if "missing" in row:
            lines.append(head + f"not trained: {', '.join(row['missing'])} |")
            continue
        cells = [fmt(row["clean_rejected"]), fmt(row["dice_clean_pipeline"])]
        for a in attacks:
            cells += [fmt(row[f"{a}_rejected"]), fmt(row[f"{a}_dice_accepted"]), fmt(row[f"{a}_dice_recovered"])]
        lines.append(head + " | ".join(cells) + " |")
    if r["adaptive"]:
        a = r["adaptive"]
        lines += [
            "",
            "## Adaptive attacker (PGD + detector-evasion term)",
            "",
            f"Detector {a['detector']}, eps {a['epsilon']:.4f}, {a['steps']} steps, weight {a['weight']}: "
            f"AUC {a['auc_adaptive']:.3f} (plain PGD {a['auc_plain_pgd']:.3f}), detected "
            f"{a['detected_adaptive']:.2f}, undefended Dice {a['dice_adaptive_undefended']:.3f}",
        ]
    lines += ["", f"Run time {r['seconds']} s on {r['machine']}."]
    return "\n".join(lines) + "\n"


def plot_roc(path: Path, scores: Mapping[str, Mapping[str, torch.Tensor]]) -> None:
    """One ROC panel per detector, one curve per attack (nothing written without detectors)."""
    names = list(scores)
    if not names:
        return
    cols = min(4, len(names))
    rows = (len(names) + cols - 1) // cols
    fig = Figure(figsize=(3.2 * cols, 3.0 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        for a, adv in scores[name].items():
            if a == "clean":
                continue
            fpr, tpr = roc_points(scores[name]["clean"].numpy(), adv.numpy())
            ax.plot(fpr, tpr, label=a)
        ax.plot([0, 1], [0, 1], "k:", lw=0.8)
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("FPR", fontsize=7)
        ax.set_ylabel("TPR", fontsize=7)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def plot_dice(path: Path, r: Mapping[str, Any]) -> None:
    """Mean Dice recovered per trained combination and attack, beside the undefended and clean Dice."""
    attacks = list(r["dice_adversarial"])
    rows = [row for row in r["table2"] if "missing" not in row]
    labels = ["none"] + [str(row["combination"]) for row in rows]
    width = 0.8 / len(attacks)
    fig = Figure(figsize=(max(6, 0.45 * len(labels) * len(attacks)), 3.5))
    ax = fig.subplots()
    for i, a in enumerate(attacks):
        values = [r["dice_adversarial"][a]] + [row[f"{a}_dice_recovered"] for row in rows]
        ax.bar(np.arange(len(labels)) + i * width, values, width, label=a)
    ax.axhline(r["dice_clean"], color="k", ls="--", lw=0.8, label="clean")
    ax.set_xticks(np.arange(len(labels)) + 0.4 - width / 2, labels)
    ax.set_xlabel("combination (Table 2 numbering; none = no defense)")
    ax.set_ylabel("mean Dice (rejected = clean)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
