"""Robustness evaluation: attack a segmentation model on a dataset split, with and without defenses.

For every sample it records benign, adversarial, defended-benign and defended-adversarial Dice/IoU per region (MONAI
metrics), the attack's success (IoU of the prediction with the attack target), perturbation L2/Linf, iterations and
times; then aggregates mean +- std and writes ``robustness.json``, ``robustness_per_sample.csv``, ``robustness.md`` and
``robustness_panel.png`` into ``output_dir`` and logs them to MLflow (:mod:`.tracking`). Per-sample rows are also
appended to ``robustness_per_sample.jsonl`` as the run goes, so a long run that is interrupted keeps what it measured.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..attacks import AttackResult, SegmentationAttack, apply_defense, foreground_iou
from .metrics import default_regions, region_scores
from .panels import save_panel
from .reporting import aggregate, write_csv, write_json, write_markdown

__all__ = ["evaluate_robustness", "log_report_to_mlflow"]

NAME = re.compile(r"^[A-Za-z0-9_\-]+$")


def _sample_id(image: object, index: int) -> str:
    meta = getattr(image, "meta", None) or {}
    source = meta.get("filename_or_obj")
    return Path(str(source)).name if source else str(index)


def _describe(obj: object) -> str:
    """Short, address-free description of a callable for reports: ``shift_mask(offset=[0, 48])``, ``BPDA``."""
    if isinstance(obj, partial):
        arguments = [repr(a) for a in obj.args] + [f"{k}={v!r}" for k, v in obj.keywords.items()]
        return f"{_describe(obj.func)}({', '.join(arguments)})"
    return getattr(obj, "__qualname__", None) or type(obj).__name__


def _batches(samples: Iterable[Mapping], batch_size: int) -> Iterable[list[tuple[int, Mapping]]]:
    batch: list[tuple[int, Mapping]] = []
    for index, sample in enumerate(samples):
        batch.append((index, sample))
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _stack(batch: Sequence[tuple[int, Mapping]], key: str, device: torch.device) -> torch.Tensor:
    tensors = []
    for index, sample in batch:
        if key not in sample:
            raise KeyError(f"sample {index} has no {key!r} entry (keys: {sorted(sample)})")
        tensors.append(torch.as_tensor(sample[key]).as_subclass(torch.Tensor))
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) != 1:
        raise ValueError(f"{key!r} tensors in one batch must share a shape, got {sorted(shapes)}; use batch_size=1")
    return torch.stack(tensors).to(device)


def _predict(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(images).argmax(dim=1, keepdim=True)


def evaluate_robustness(
    model: torch.nn.Module,
    samples: Iterable[Mapping],
    attack: SegmentationAttack,
    output_dir: str | Path,
    defenses: Mapping[str, Callable] | None = None,
    target_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
    attack_model: torch.nn.Module | None = None,
    regions: Mapping[str, Sequence[int]] | None = None,
    batch_size: int = 1,
    per_sample_defense: bool = True,
    success_iou: float = 0.8,
    panel_samples: int = 4,
    track: bool = True,
    tracking_dir: str | Path | None = None,
    run_name: str | None = None,
    progress: bool = True,
) -> dict:
    """Attack ``model`` on ``samples`` and score every condition; write the reports; return the report dict.

    Args:
        model: network returning logits ``[B, K, *spatial]``; put in eval mode here. Its device is used throughout.
        samples: iterable of dicts with ``image`` ``[C, *spatial]`` (preprocessed, e.g. in [0, 1]) and ``label``
            ``[1, *spatial]`` class indices, e.g. a MONAI ``Dataset`` built from a bundle's preprocessing.
        attack: any attack of :mod:`medsecure_transforms.attacks` (or an adaptive one wrapping a defended model).
        output_dir: folder for the reports and the MLflow store.
        defenses: ``{name: defense}``; a defense maps one image ``[C, *spatial]`` to a same-shape image (a MONAI array
            transform), or a batch ``[B, C, *spatial]`` when ``per_sample_defense=False``. Names: letters, digits,
            ``_``, ``-``.
        target_fn: maps labels ``[B, 1, *spatial]`` to attack targets (see :mod:`medsecure_transforms.attacks.targets`);
            required for targeted attacks, ignored for untargeted ones (they attack the label).
        attack_model: the network the attacker differentiates, default ``model``; pass e.g.
            ``BPDA(model, defense)`` or ``EOT(model, defense)`` for an adaptive attack on that defense (the attack's
            ``attack/target_iou`` then refers to the defended prediction).
        regions: ``{name: classes}`` scored as binary structures, e.g. ``{"disc": [1, 2], "cup": [2]}``; default one
            region per foreground class.
        batch_size: samples attacked together (samples of one batch must share a shape).
        per_sample_defense: see ``defenses``.
        success_iou: a targeted attack succeeds on a sample when its target IoU reaches this.
        panel_samples: rows of the PNG panel (the first samples).
        track: log parameters, aggregate metrics and the report files to MLflow.
        tracking_dir: folder of the local MLflow store (default ``output_dir``; ``$MLFLOW_TRACKING_URI`` wins).
        run_name: MLflow run name.
        progress: show a progress bar over samples.

    Returns:
        ``{"params", "aggregate", "per_sample", "files"}``; aggregate maps every per-sample column to
        ``{"mean", "std", "n"}`` (population std) plus ``attack/success_rate`` for targeted attacks.
    """
    defenses = dict(defenses or {})
    for name in defenses:
        if not NAME.match(name):
            raise ValueError(f"defense name {name!r} must use letters, digits, '_' or '-' only")
    if attack.targeted and target_fn is None:
        raise ValueError(f"{type(attack).__name__} is targeted: pass target_fn (e.g. attacks.targets.shift_mask)")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model.eval()
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")

    rows: list[dict] = []
    panel: list[dict] = []
    partial_rows = output_dir / "robustness_per_sample.jsonl"  # grows batch by batch: survives an interrupted run
    partial_rows.write_text("")
    num_classes = 0
    total = len(samples) if hasattr(samples, "__len__") else None
    bar = tqdm(total=total, desc=f"{type(attack).__name__} robustness", unit="sample", disable=not progress)
    for batch in _batches(samples, batch_size):
        images = _stack(batch, "image", device)
        labels = _stack(batch, "label", device).long()
        target = target_fn(labels) if attack.targeted else labels
        with torch.no_grad():
            clean_logits = model(images)
        num_classes = clean_logits.shape[1]
        if regions is None:
            regions = default_regions(num_classes)
        result: AttackResult = attack(attack_model if attack_model is not None else model, images, target)
        preds = {"benign": clean_logits.argmax(dim=1, keepdim=True), "adversarial": _predict(model, result.adversarial)}
        defense_seconds: dict[str, float] = {}
        for name, defense in defenses.items():
            start = time.perf_counter()
            defended_benign = apply_defense(defense, images, per_sample_defense)
            defense_seconds[name] = (time.perf_counter() - start) / len(batch)
            preds[f"defended_benign.{name}"] = _predict(model, defended_benign)
            preds[f"defended_adversarial.{name}"] = _predict(
                model, apply_defense(defense, result.adversarial, per_sample_defense)
            )
        scores = {cond: region_scores(pred, labels, regions) for cond, pred in preds.items()}
        target_ious = {
            cond: foreground_iou(pred, target, num_classes) for cond, pred in preds.items() if "adversarial" in cond
        }
        for j, ((index, sample), attack_row) in enumerate(zip(batch, result.per_sample(), strict=True)):
            row: dict = {
                "sample": _sample_id(sample["image"], index),
                **{f"attack/{key}": value for key, value in attack_row.items()},
                "attack/seconds": result.seconds / len(batch),
            }
            for cond, metrics in scores.items():
                row.update({f"{cond}/{key}": float(values[j]) for key, values in metrics.items()})
            row.update({f"{cond}/target_iou": float(values[j]) for cond, values in target_ious.items()})
            row.update({f"defense.{name}/seconds": seconds for name, seconds in defense_seconds.items()})
            rows.append(row)
            with partial_rows.open("a") as handle:
                handle.write(json.dumps(row) + "\n")
            if len(panel) < panel_samples:
                panel.append(
                    {
                        "image": images[j],
                        "adversarial": result.adversarial[j],
                        "target": target[j],
                        **{f"pred/{cond}": pred[j] for cond, pred in preds.items()},
                    }
                )
        bar.update(len(batch))
    bar.close()
    if not rows:
        raise ValueError("samples is empty: nothing to evaluate")

    summary = aggregate(rows)
    if attack.targeted:
        summary["attack/success_rate"] = {
            "mean": float(np.mean([r["attack/target_iou"] >= success_iou for r in rows])),
            "std": 0.0,
            "n": len(rows),
        }
    conditions = list(preds)
    params = {
        "attack": attack.params(),
        "defenses": {name: _describe(d) for name, d in defenses.items()},
        "regions": {k: list(v) for k, v in regions.items()},
        "num_classes": num_classes,
        "target_fn": _describe(target_fn) if attack.targeted else "label (untargeted)",
        "attack_model": "model" if attack_model is None else _describe(attack_model),
        "success_iou": success_iou,
        "batch_size": batch_size,
        "samples": len(rows),
    }
    files = {
        "json": write_json(
            output_dir / "robustness.json", {"params": params, "aggregate": summary, "per_sample": rows}
        ),
        "csv": write_csv(output_dir / "robustness_per_sample.csv", rows),
        "markdown": write_markdown(output_dir / "robustness.md", summary, conditions, list(regions), params),
        "panel": save_panel(
            panel,
            conditions,
            output_dir / "robustness_panel.png",
            title=f"{attack.params()['name']} (rows: first {len(panel)} samples)",
        ),
    }
    report = {
        "params": params,
        "aggregate": summary,
        "per_sample": rows,
        "files": {k: str(v) for k, v in files.items()},
    }
    if track:
        log_report_to_mlflow(report, tracking_dir or output_dir, run_name)
    return report


def log_report_to_mlflow(report: Mapping, tracking_dir: str | Path, run_name: str | None = None) -> None:
    """Log a report of :func:`evaluate_robustness` (parameters, aggregate means and stds, its files) as one MLflow
    run in the store of ``tracking_dir`` (see :mod:`.tracking`)."""
    import mlflow  # imported here: MLflow takes seconds to import and is only needed when tracking

    from .tracking import log_metrics, mlflow_run

    summary = report["aggregate"]
    with mlflow_run(Path(tracking_dir), experiment="robustness", run_name=run_name, params=report["params"]):
        log_metrics({f"{key}/mean": value["mean"] for key, value in summary.items()})
        log_metrics({f"{key}/std": value["std"] for key, value in summary.items()})
        for path in report["files"].values():
            mlflow.log_artifact(str(path))
