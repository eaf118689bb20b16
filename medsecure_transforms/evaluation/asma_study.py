"""ASMA quality bar on a fundus optic-disc bundle, run through the robustness engine.

The bar: target IoU >= 0.8 on at least 90 % of the images, mean Linf of the perturbation <= 8/255, and an optic disc
IoU drop of at least 30 points from the benign level. The engine's regions are ``disc`` (classes 1, 2) and ``cup``
(class 2).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
from monai.data import Dataset

from ..attacks import ASMA, SegmentationAttack
from ..bundle import bundle_preprocessing, load_bundle_network
from .benchmarking import machine_info
from .reporting import aggregate, write_markdown
from .robustness import evaluate_robustness

__all__ = ["FUNDUS_REGIONS", "quality_bar", "run_quality_bar", "summarise_quality_bar"]

FUNDUS_REGIONS = {"disc": [1, 2], "cup": [2]}
FLOAT32_SLACK = 1e-6  # x - clean of a projected float32 image can exceed the budget by one ulp (~2e-9 here)


def quality_bar(agg: dict) -> dict:
    """The three criteria (and the numbers behind them, IoU in points, Linf x255) from the engine's aggregate."""
    drop = 100 * (agg["benign/disc/iou"]["mean"] - agg["adversarial/disc/iou"]["mean"])
    return {
        "success_rate_at_0.8": agg["attack/success_rate"]["mean"],
        "mean_linf_x255": 255 * agg["attack/linf"]["mean"],
        "benign_disc_iou": 100 * agg["benign/disc/iou"]["mean"],
        "adversarial_disc_iou": 100 * agg["adversarial/disc/iou"]["mean"],
        "disc_iou_drop_points": drop,
        "passes": {
            "success_rate>=0.9": agg["attack/success_rate"]["mean"] >= 0.9,
            "mean_linf<=8/255": agg["attack/linf"]["mean"] <= 8 / 255 + FLOAT32_SLACK,
            "disc_iou_drop>=30": drop >= 30,
        },
    }


def run_quality_bar(
    bundle: str,
    attack: SegmentationAttack,
    target_fn: Callable[[torch.Tensor], torch.Tensor],
    output_dir: str | os.PathLike,
    *,
    split: str = "test",
    limit: int | None = None,
    data_root: str | None = None,
    batch_size: int = 1,
    tracking_dir: str | os.PathLike | None = None,
    success_iou: float = 0.8,
    command: str | None = None,
) -> tuple[dict, dict]:
    """Attack ``split`` of ``bundle`` towards ``target_fn(label)``; write the engine's reports and
    ``quality_bar.json`` (bar + ``command``, wall time, machine) into ``output_dir``. Returns ``(report, bar)``."""
    output_dir = Path(output_dir)
    model = load_bundle_network(bundle)
    datalist, transform = bundle_preprocessing(bundle, split, data_root=data_root, limit=limit)
    start = time.perf_counter()
    report = evaluate_robustness(
        model,
        Dataset(datalist, transform),
        attack,
        output_dir,
        target_fn=target_fn,
        regions=FUNDUS_REGIONS,
        batch_size=batch_size,
        tracking_dir=tracking_dir,
        run_name=f"{bundle}-{split}-{type(attack).__name__.lower()}",
        success_iou=success_iou,
    )
    bar = quality_bar(report["aggregate"])
    bar.update({"command": command, "wall_seconds": time.perf_counter() - start, "machine": machine_info()})
    (output_dir / "quality_bar.json").write_text(json.dumps(bar, indent=2) + "\n")
    return report, bar


def summarise_quality_bar(output_dir: str | os.PathLike, attack: ASMA) -> dict:
    """Rewrite ``quality_bar.json`` from a finished run's ``robustness.json``, else from the rows of an interrupted
    run's ``robustness_per_sample.jsonl`` (also writing ``robustness_partial.md``); keys of the earlier
    ``quality_bar.json`` (command, machine) are kept. ``attack`` is the run's attack (its success IoU and the
    parameters shown in the partial report)."""
    output_dir = Path(output_dir)
    bar_path = output_dir / "quality_bar.json"
    previous = json.loads(bar_path.read_text()) if bar_path.is_file() else {}
    finished = output_dir / "robustness.json"
    if finished.is_file():
        summary = json.loads(finished.read_text())["aggregate"]
        partial_note = {}
    else:
        lines = (output_dir / "robustness_per_sample.jsonl").read_text().splitlines()
        rows = [json.loads(line) for line in lines if line.strip()]
        summary = aggregate(rows)
        summary["attack/success_rate"] = {
            "mean": sum(r["attack/target_iou"] >= attack.target_iou for r in rows) / len(rows),
            "std": 0.0,
            "n": len(rows),
        }
        params = {
            "attack": {"name": "ASMA"}
            | {k: getattr(attack, k) for k in ("max_iter", "beta", "tau", "target_iou", "max_linf")},
            "samples": len(rows),
            "success_iou": attack.target_iou,
        }
        write_markdown(
            output_dir / "robustness_partial.md", summary, ["benign", "adversarial"], list(FUNDUS_REGIONS), params
        )
        partial_note = {
            "partial": f"interrupted run: first {len(rows)} images of the split "
            "(robustness_per_sample.jsonl, robustness_partial.md)"
        }
    bar = {**previous, **quality_bar(summary), **partial_note}
    bar_path.write_text(json.dumps(bar, indent=2) + "\n")
    return bar
