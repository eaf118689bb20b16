"""Frequency-Refinement study helpers: craft adversarial examples once, score many block-quantization defenses on
them, search the DQ-table grid (auto-tuning), and screen glaucoma from the cup-to-disc ratio (paper Table 3).

Defenses here are batched callables ``[B, C, *spatial] -> [B, C, *spatial]`` such as
:class:`~medsecure_transforms.defenses.BlockDCTQuantizer`; ``None`` means no defense. Images are a sequence of
``[C, *spatial]`` tensors (a stacked ``[N, C, *spatial]`` tensor is one); their shapes may differ from sample to
sample: consecutive images of one shape go through the network together.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..attacks import SegmentationAttack
from ..defenses import BlockDCTQuantizer, QuantTable, defensive_table, jpeg_quantizer
from .metrics import region_iou
from .robustness import LabelScorer, Scorer

PAPER_GRID = {"qs1": (20, 30, 40, 50), "qs2": (5, 10, 15, 20), "qs3": (50, 60, 80, 100)}
JPEG_CURVE = (95, 90, 85, 75, 60, 50, 40, 30, 20)

Defense = Callable[[torch.Tensor], torch.Tensor] | None


def shape_batches(images: Sequence[torch.Tensor], batch_size: int) -> Iterator[list[int]]:
    """Indices of ``images`` in batches of at most ``batch_size`` consecutive images of one shape."""
    batch: list[int] = []
    for index, image in enumerate(images):
        if batch and (len(batch) == batch_size or image.shape != images[batch[0]].shape):
            yield batch
            batch = []
        batch.append(index)
    if batch:
        yield batch


def craft_adversarial(
    model: Callable[[torch.Tensor], torch.Tensor],
    images: Sequence[torch.Tensor],
    targets: Sequence[torch.Tensor],
    attack: SegmentationAttack,
    batch_size: int = 4,
    attack_model: Callable[[torch.Tensor], torch.Tensor] | None = None,
    desc: str = "attack",
) -> list[torch.Tensor]:
    """Adversarial images ``[C, *spatial]``, one per image of ``images``, towards ``targets`` ``[1, *spatial]``
    (batches of consecutive images of one shape)."""
    out: list[torch.Tensor] = []
    batches = list(shape_batches(images, batch_size))
    for batch in tqdm(batches, desc=desc, unit="batch"):
        x = torch.stack([torch.as_tensor(images[i]) for i in batch])
        t = torch.stack([torch.as_tensor(targets[i]) for i in batch])
        out.extend(attack(attack_model or model, x, t).adversarial.detach().unbind(0))
    return out


def predict_scored(
    model: Callable[[torch.Tensor], torch.Tensor],
    images: Sequence[torch.Tensor],
    references: Sequence[Any],
    scorer: Scorer | None = None,
    defense: Defense = None,
    batch_size: int = 8,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """``(predicted classes, label classes)``, one ``[1, *spatial]`` each per image: ``model`` on
    ``defense(images)`` (batches of consecutive images of one shape), each sample's logits scored by ``scorer``
    against its reference (default: argmax vs ``references`` being the label maps; a
    :class:`~medsecure_transforms.evaluation.robustness.BundleScorer` with the samples as references applies the
    bundle's post-processing)."""
    scorer = scorer or LabelScorer(None)
    preds: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    for batch in shape_batches(images, batch_size):
        x = torch.stack([torch.as_tensor(images[i]) for i in batch])
        with torch.no_grad():
            logits = model(x if defense is None else defense(x))
        for j, i in enumerate(batch):
            pred, label = scorer(references[i], logits[j])
            preds.append(pred)
            labels.append(label)
    return preds, labels


def score_defense(
    model: Callable[[torch.Tensor], torch.Tensor],
    defense: Defense,
    images: Sequence[torch.Tensor],
    adversarial: Sequence[torch.Tensor],
    references: Sequence[Any],
    classes: Sequence[int],
    scorer: Scorer | None = None,
) -> dict[str, Any]:
    """Per-sample benign and adversarial IoU ``[N]`` of ``classes`` under ``defense``, plus the predictions (lists of
    ``[1, *spatial]``); ``references`` and ``scorer`` as in :func:`predict_scored`."""
    scores: dict[str, Any] = {}
    for cond, x in (("benign", images), ("adversarial", adversarial)):
        preds, labels = predict_scored(model, x, references, scorer, defense)
        scores[f"{cond}_iou"] = np.array(
            [region_iou(p[None], y[None].to(p.device), classes)[0] for p, y in zip(preds, labels, strict=True)]
        )
        scores[f"{cond}_pred"] = preds
    return scores


def grid_search(
    model: Callable[[torch.Tensor], torch.Tensor],
    images: Sequence[torch.Tensor],
    adversarial: Sequence[torch.Tensor],
    references: Sequence[Any],
    classes: Sequence[int],
    band_std: np.ndarray,
    grid: Mapping[str, Sequence[float]] = PAPER_GRID,
    max_benign_drop: float = 0.01,
    color: str = "rgb",
    jpeg_qualities: Sequence[int] = JPEG_CURVE,
    dataset: str | None = None,
    *,
    scorer: Scorer | None = None,
    intensity_range: tuple[float, float] = (0.0, 1.0),
) -> dict:
    """Score every DQ-table of ``grid`` (and the JPEG curve, in the same ``color`` mode); choose the best adversarial
    IoU whose mean benign IoU is at most ``max_benign_drop`` below the undefended one (ties: higher benign IoU).

    ``references`` / ``scorer`` as in :func:`predict_scored`; ``intensity_range``: the images' value range, mapped
    to the 8-bit scale of the tables.

    Returns ``{"reference", "fr": [rows], "jpeg": [rows], "best": row, "table": QuantTable}``; a row holds
    ``qs`` (or ``quality``) and mean/std of benign and adversarial IoU.
    """

    def summary(defense: Defense) -> dict:
        scores = score_defense(model, defense, images, adversarial, references, classes, scorer)
        return {k: float(np.mean(scores[k])) for k in ("benign_iou", "adversarial_iou")} | {
            f"{k}_std": float(np.std(scores[k])) for k in ("benign_iou", "adversarial_iou")
        }

    reference = summary(None)
    combos = list(itertools.product(grid["qs1"], grid["qs2"], grid["qs3"]))
    fr_rows = []
    for qs in tqdm(combos, desc="DQ-table grid", unit="table"):
        table = defensive_table(band_std, qs, dataset=dataset)
        defense = BlockDCTQuantizer(table, color=color, intensity_range=intensity_range)
        fr_rows.append({"qs": list(qs)} | summary(defense))
    jpeg_rows = [
        {"quality": q} | summary(jpeg_quantizer(q, color, intensity_range))
        for q in tqdm(jpeg_qualities, desc="JPEG curve", unit="QF")
    ]
    allowed = [r for r in fr_rows if r["benign_iou"] >= reference["benign_iou"] - max_benign_drop]
    if not allowed:
        raise ValueError(f"no table keeps benign IoU within {max_benign_drop} of {reference['benign_iou']:.4f}")
    best = max(allowed, key=lambda r: (round(r["adversarial_iou"], 6), r["benign_iou"]))
    table = defensive_table(band_std, best["qs"], dataset=dataset)
    provenance = {
        **table.provenance,
        "color": color,
        "intensity_range": list(intensity_range),
        "selection": {
            "criterion": f"max mean adversarial IoU s.t. benign IoU >= undefended - {max_benign_drop}",
            "undefended": reference,
            "chosen": best,
            "grid": {k: list(v) for k, v in grid.items()},
        },
    }
    table = QuantTable(table.steps, table.name, provenance)
    return {"reference": reference, "fr": fr_rows, "jpeg": jpeg_rows, "best": best, "table": table}


def save_pareto_plot(search: dict, path, title: str = "") -> None:
    """Benign vs adversarial IoU: every FR grid point, the JPEG(QF) curve, the chosen table, no defense."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    fr = search["fr"]
    ax.scatter([r["benign_iou"] for r in fr], [r["adversarial_iou"] for r in fr], s=14, c="tab:blue", label="FR grid")
    jp = search["jpeg"]
    ax.plot(
        [r["benign_iou"] for r in jp], [r["adversarial_iou"] for r in jp], "o-", c="tab:orange", ms=4, label="JPEG(QF)"
    )
    for r in jp:
        ax.annotate(str(r["quality"]), (r["benign_iou"], r["adversarial_iou"]), fontsize=7)
    best, ref = search["best"], search["reference"]
    ax.scatter(
        [best["benign_iou"]],
        [best["adversarial_iou"]],
        marker="*",
        s=160,
        c="tab:red",
        label=f"chosen FR{tuple(best['qs'])}",
    )
    ax.scatter([ref["benign_iou"]], [ref["adversarial_iou"]], marker="x", s=60, c="k", label="no defense")
    ax.axvline(ref["benign_iou"] - 0.01, ls=":", c="grey", lw=1)
    ax.set_xlabel("benign IoU (defended)")
    ax.set_ylabel("adversarial IoU (defended)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def vertical_cdr(pred: torch.Tensor, disc_classes: Sequence[int] = (1, 2), cup_classes: Sequence[int] = (2,)):
    """Vertical cup-to-disc ratio ``[N]`` of class maps ``[N, 1, H, W]`` (rows = vertical axis; 0 if no disc).

    MONAI's PIL reader stores 2D images as ``[C, W, H]``, so pass ``pred.transpose(-1, -2)`` for such data.
    """

    def extent(mask: torch.Tensor) -> torch.Tensor:
        rows = mask.any(dim=-1)  # [N, H]
        idx = torch.arange(rows.shape[-1], device=rows.device)
        top = torch.where(rows, idx, rows.shape[-1]).min(-1).values
        bottom = torch.where(rows, idx, -1).max(-1).values
        return (bottom - top + 1).clamp(min=0).float()

    p = pred[:, 0]
    disc = extent(torch.isin(p, torch.tensor(list(disc_classes), device=p.device)))
    cup = extent(torch.isin(p, torch.tensor(list(cup_classes), device=p.device)))
    return torch.where(disc > 0, cup / disc.clamp(min=1), torch.zeros_like(disc)).numpy()


def youden_threshold(score: np.ndarray, positive: np.ndarray) -> float:
    """Threshold ``t`` (predict positive when ``score >= t``) maximising sensitivity + specificity - 1."""
    candidates = np.unique(score)
    best, best_j = float(candidates[0]), -np.inf
    for t in candidates:
        pred = score >= t
        j = pred[positive].mean() + (~pred[~positive]).mean() - 1
        if j > best_j:
            best, best_j = float(t), j
    return best


def screening(score: np.ndarray, positive: np.ndarray, threshold: float) -> dict:
    """Sensitivity and specificity of ``score >= threshold`` against ``positive`` (bool)."""
    pred = score >= threshold
    return {
        "sensitivity": float(pred[positive].mean()) if positive.any() else float("nan"),
        "specificity": float((~pred[~positive]).mean()) if (~positive).any() else float("nan"),
        "positives": int(positive.sum()),
        "negatives": int((~positive).sum()),
    }
