"""Robustness evaluation: attack a segmentation model on a dataset split, with and without defenses.

For every sample it records benign, adversarial, defended-benign and defended-adversarial Dice/IoU per region (MONAI
metrics), the attack's success (IoU of the prediction with the attack target), perturbation L2/Linf, iterations and
times; then aggregates mean +- std and writes ``robustness.json``, ``robustness_per_sample.csv``, ``robustness.md`` and
``robustness_panel.png`` into ``output_dir`` and logs them to MLflow (:mod:`.tracking`). Per-sample rows are also
appended to ``robustness_per_sample.jsonl`` as the run goes, so a long run that is interrupted keeps what it measured.

On a MONAI bundle (:class:`~medsecure_transforms.bundle.BundleAdapter`) the model is the adapter's differentiable
``logits`` (the bundle's own inferer: sliding window, slice by slice ...) and :class:`BundleScorer` scores every
condition after the bundle's post-processing (largest connected component, ``Invertd`` ...), as its ``evaluate.json``
does; :func:`bundle_record` puts the bundle, its config files and ids into the report.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from monai.transforms import Compose
from monai.utils import CommonKeys, convert_to_tensor
from tqdm import tqdm

from ..attacks import AttackResult, SegmentationAttack, apply_defense, foreground_iou
from .metrics import default_regions, region_scores
from .panels import save_panel
from .reporting import aggregate, write_csv, write_json, write_markdown

if TYPE_CHECKING:
    from ..bundle import BundleAdapter

__all__ = [
    "BundleScorer",
    "LabelScorer",
    "Scorer",
    "bundle_record",
    "class_map",
    "describe_transform",
    "evaluate_robustness",
    "log_report_to_mlflow",
]

NAME = re.compile(r"^[A-Za-z0-9_\-]+$")

Scorer = Callable[[Any, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""``(reference, logits [K, *spatial]) -> (predicted classes, label classes)``, both ``[1, *spatial']``: how one
sample's prediction is scored (``reference``: the sample dict, or its label map)."""


def class_map(x: torch.Tensor) -> torch.Tensor:
    """Class indices ``[1, *spatial]`` (int64) from one-hot / probabilities / logits ``[K > 1, *spatial]`` or from
    class indices ``[1, *spatial]``."""
    x = convert_to_tensor(x, track_meta=False)
    return x.argmax(0, keepdim=True) if x.shape[0] > 1 else x.round().long()


class LabelScorer:
    """Argmax of the logits against ``reference[label_key]`` (``label_key=None``: the reference is the label map)."""

    def __init__(self, label_key: str | None = "label") -> None:
        self.label_key = label_key
        self.description = "argmax of the logits" + ("" if label_key is None else f" vs {label_key!r}")

    def __call__(self, reference: Any, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        label = reference if self.label_key is None else reference[self.label_key]
        return logits.argmax(0, keepdim=True), class_map(torch.as_tensor(label).to(logits.device))


class BundleScorer:
    """A bundle's post-processing (:meth:`BundleAdapter.postprocess`, writers removed) on a preprocessed sample's
    logits; its ``pred`` and ``label`` as class maps (what the bundle's ``MeanDice`` compares)."""

    def __init__(self, adapter: BundleAdapter) -> None:
        self.adapter = adapter
        self.description = f"post-processing of bundle {adapter.name!r} (config id {adapter.ids['postprocessing']})"

    def __call__(self, sample: Mapping, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.adapter.postprocess(sample, logits)
        return class_map(out[CommonKeys.PRED]), class_map(out[CommonKeys.LABEL])


def describe_transform(transform: object) -> dict:
    """What a defense / codec / guard transform (array or dictionary version) is, for reports: its type and keys,
    the quantization table with its provenance, colour mode and range (FR, JPEG), the codec state and target ratio
    (MVCompress3D), the detector and policy (FFTDetect)."""
    record: dict[str, Any] = {"transform": _describe(transform)}
    if getattr(transform, "keys", None) is not None and not callable(transform.keys):
        record["keys"] = [str(k) for k in transform.keys]
    inner = getattr(transform, "transform", transform)
    quantizer = getattr(inner, "quantizer", None)
    if quantizer is not None and hasattr(quantizer, "to_dict"):
        color = getattr(inner, "color", quantizer.color)  # JPEGQuantize's "auto": YCbCr on 3 channels, else RGB
        record.update({"table": quantizer.name, "color": color, "quantizer": {**quantizer.to_dict(), "color": color}})
    codec = getattr(inner, "codec", None)
    if codec is not None and hasattr(codec, "to_dict"):
        record.update({"codec": codec.to_dict(), "target_ratio": getattr(inner, "target_ratio", None)})
        record["ratio_against"] = getattr(inner, "ratio_against", None)
    detector = getattr(inner, "detector", None)
    if detector is not None:
        record.update(
            {"detector": getattr(detector, "name", _describe(detector)), "policy": getattr(inner, "policy", None)}
        )
    return record


def bundle_record(adapter: BundleAdapter) -> dict:
    """The bundle a report was computed on: name and version (metadata), folder, config files, the config id of
    each part (``adapter.ids``), checkpoint, keys, clip, and the defenses / codecs / guards its preprocessing runs
    (e.g. merged from an overlay)."""
    steps = adapter.preprocessing
    steps = steps.flatten().transforms if isinstance(steps, Compose) else [steps]
    in_pipeline = [
        describe_transform(t)
        for t in steps
        if any(hasattr(getattr(t, "transform", t), a) for a in ("quantizer", "codec", "detector"))
    ]
    return {
        "name": adapter.name,
        "version": str(adapter.parser.get("_meta_#version", "unknown")),
        "folder": str(adapter.folder),
        "config_files": [str(f) for f in adapter.config_files],
        "ids": adapter.ids,
        "checkpoint": str(adapter.checkpoint),
        "image_key": adapter.image_key,
        "label_key": adapter.label_key,
        "clip": list(adapter.clip),
        "preprocessing_defenses_codecs": in_pipeline,
    }


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


def _batches(samples: Iterable[Mapping], batch_size: int, key: str) -> Iterable[list[tuple[int, Mapping]]]:
    """Consecutive samples in batches of at most ``batch_size`` whose ``key`` entries share one shape."""
    batch: list[tuple[int, Mapping]] = []
    for index, sample in enumerate(samples):
        shape = tuple(getattr(sample.get(key), "shape", ())) if isinstance(sample, Mapping) else ()
        if batch and (len(batch) == batch_size or shape != tuple(getattr(batch[0][1].get(key), "shape", ()))):
            yield batch
            batch = []
        batch.append((index, sample))
    if batch:
        yield batch


def _stack(batch: Sequence[tuple[int, Mapping]], key: str, device: torch.device) -> torch.Tensor:
    tensors = []
    for index, sample in batch:
        if key not in sample:
            raise KeyError(f"sample {index} has no {key!r} entry (keys: {sorted(map(str, sample))})")
        tensors.append(convert_to_tensor(sample[key], track_meta=False))
    return torch.stack(tensors).to(device)


def _logits(model: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(images)


def _device(model: Callable, device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    parameter = next(model.parameters(), None) if isinstance(model, torch.nn.Module) else None
    return parameter.device if parameter is not None else torch.device("cpu")


def evaluate_robustness(
    model: Callable[[torch.Tensor], torch.Tensor],
    samples: Iterable[Mapping],
    attack: SegmentationAttack,
    output_dir: str | Path,
    defenses: Mapping[str, Callable] | None = None,
    target_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
    attack_model: Callable[[torch.Tensor], torch.Tensor] | None = None,
    regions: Mapping[str, Sequence[int]] | None = None,
    batch_size: int = 1,
    per_sample_defense: bool = True,
    success_iou: float = 0.8,
    panel_samples: int = 4,
    track: bool = True,
    tracking_dir: str | Path | None = None,
    run_name: str | None = None,
    progress: bool = True,
    *,
    scorer: Scorer | None = None,
    image_key: str = "image",
    label_key: str = "label",
    device: str | torch.device | None = None,
    bundle: Mapping | None = None,
    defense_configs: Mapping[str, Mapping] | None = None,
) -> dict:
    """Attack ``model`` on ``samples`` and score every condition; write the reports; return the report dict.

    Args:
        model: differentiable ``[B, C, *spatial]`` -> logits ``[B, K, *spatial]``: a network (put in eval mode
            here) or a callable such as :meth:`BundleAdapter.logits <medsecure_transforms.bundle.BundleAdapter.logits>`
            (the bundle's inferer around its network).
        samples: iterable of dicts with ``image_key`` ``[C, *spatial]`` (preprocessed) and ``label_key``
            ``[1, *spatial]`` class indices, e.g. a MONAI ``Dataset`` built from a bundle's preprocessing.
        attack: any attack of :mod:`medsecure_transforms.attacks` (or an adaptive one wrapping a defended model); its
            ``clip`` should be the network input's value range.
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
        batch_size: samples attacked together (consecutive samples of one image shape; a new shape starts a batch).
        per_sample_defense: see ``defenses``.
        success_iou: a targeted attack succeeds on a sample when its target IoU reaches this.
        panel_samples: rows of the PNG panel (the first samples).
        track: log parameters, aggregate metrics and the report files to MLflow.
        tracking_dir: folder of the local MLflow store (default ``output_dir``; ``$MLFLOW_TRACKING_URI`` wins).
        run_name: MLflow run name.
        progress: show a progress bar over samples.
        scorer: how each condition's logits of a sample are scored (Dice / IoU per region): default the argmax
            against ``label_key``; :class:`BundleScorer` applies a bundle's post-processing. The attack's target IoU
            and the panel use the argmax at the network input grid.
        image_key, label_key: keys of the image and the label in ``samples``.
        device: where images go (default: the device of ``model``'s parameters, else CPU).
        bundle: what the model and data come from, recorded in the report (:func:`bundle_record`).
        defense_configs: the configs the ``defenses`` were built from (e.g. ``--defense``), recorded in the report.

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
    if isinstance(model, torch.nn.Module):
        model.eval()
    device = _device(model, device)
    scorer = scorer or LabelScorer(label_key)

    rows: list[dict] = []
    panel: list[dict] = []
    partial_rows = output_dir / "robustness_per_sample.jsonl"  # grows batch by batch: survives an interrupted run
    partial_rows.write_text("")
    num_classes = 0
    total = len(samples) if hasattr(samples, "__len__") else None
    bar = tqdm(total=total, desc=f"{type(attack).__name__} robustness", unit="sample", disable=not progress)
    for batch in _batches(samples, batch_size, image_key):
        images = _stack(batch, image_key, device)
        labels = _stack(batch, label_key, device).long()
        target = target_fn(labels) if attack.targeted else labels
        logits = {"benign": _logits(model, images)}
        num_classes = logits["benign"].shape[1]
        if regions is None:
            regions = default_regions(num_classes)
        result: AttackResult = attack(attack_model if attack_model is not None else model, images, target)
        logits["adversarial"] = _logits(model, result.adversarial)
        defense_seconds: dict[str, float] = {}
        for name, defense in defenses.items():
            start = time.perf_counter()
            defended_benign = apply_defense(defense, images, per_sample_defense)
            defense_seconds[name] = (time.perf_counter() - start) / len(batch)
            logits[f"defended_benign.{name}"] = _logits(model, defended_benign)
            adversarial = apply_defense(defense, result.adversarial, per_sample_defense)
            logits[f"defended_adversarial.{name}"] = _logits(model, adversarial)
        preds = {cond: values.argmax(dim=1, keepdim=True) for cond, values in logits.items()}
        target_ious = {
            cond: foreground_iou(pred, target, num_classes) for cond, pred in preds.items() if "adversarial" in cond
        }
        for j, ((index, sample), attack_row) in enumerate(zip(batch, result.per_sample(), strict=True)):
            row: dict = {
                "sample": _sample_id(sample[image_key], index),
                **{f"attack/{key}": value for key, value in attack_row.items()},
                "attack/seconds": result.seconds / len(batch),
            }
            for cond, values in logits.items():
                pred, label = scorer(sample, values[j])
                metrics = region_scores(pred[None], label[None].to(pred.device), regions)
                row.update({f"{cond}/{key}": float(score[0]) for key, score in metrics.items()})
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
        "defenses": {name: describe_transform(d) for name, d in defenses.items()},
        "regions": {k: list(v) for k, v in regions.items()},
        "num_classes": num_classes,
        "target_fn": _describe(target_fn) if attack.targeted else "label (untargeted)",
        "attack_model": "model" if attack_model is None else _describe(attack_model),
        "scoring": getattr(scorer, "description", None) or _describe(scorer),
        "success_iou": success_iou,
        "batch_size": batch_size,
        "samples": len(rows),
    }
    if defense_configs:
        params["defense_configs"] = {name: dict(config) for name, config in defense_configs.items()}
    if bundle is not None:
        params["bundle"] = dict(bundle)
    markdown = write_markdown(output_dir / "robustness.md", summary, conditions, list(regions), params)
    with markdown.open("a") as handle:
        handle.write(_setup_markdown(params))
    files = {
        "json": write_json(
            output_dir / "robustness.json", {"params": params, "aggregate": summary, "per_sample": rows}
        ),
        "csv": write_csv(output_dir / "robustness_per_sample.csv", rows),
        "markdown": markdown,
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


def _setup_markdown(params: Mapping) -> str:
    """The report's provenance in Markdown: bundle, config files and ids, defenses (table), codecs, scoring."""
    lines = ["", "## Setup", ""]
    bundle = params.get("bundle")
    if bundle:
        lines.append(f"- bundle: `{bundle['name']}` version {bundle['version']} ({bundle['folder']})")
        lines.append("- config files: " + ", ".join(f"`{f}`" for f in bundle["config_files"]))
        lines.append("- config ids: " + ", ".join(f"{part} `{i}`" for part, i in bundle["ids"].items()))
        lines.append(f"- checkpoint: `{bundle['checkpoint']}`; attack clip {bundle['clip']}")
        for record in bundle["preprocessing_defenses_codecs"]:
            lines.append(f"- in the bundle's preprocessing: {_record_line(record)}")
    for name, record in params["defenses"].items():
        lines.append(f"- defense `{name}`: {_record_line(record)}")
    lines.append(f"- scoring: {params['scoring']}")
    return "\n".join(lines) + "\n"


def _record_line(record: Mapping) -> str:
    parts = [f"`{record['transform']}`"]
    if "table" in record:
        parts.append(f"table {record['table']} ({record['color']})")
    if "codec" in record:
        parts.append(f"codec {json.dumps(record['codec'])}, target ratio {record['target_ratio']}")
    if "detector" in record:
        parts.append(f"detector {record['detector']}, policy {record['policy']}")
    return ", ".join(parts)


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
