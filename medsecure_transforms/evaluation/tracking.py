"""The project's MLflow helpers and the bundles' run report.

One store layout for ``medsecure evaluate`` and the bundles (the one ``python -m monai.bundle run --tracking mlflow``
uses): ``sqlite:///<output_dir>/mlruns.db`` with artifacts under ``<output_dir>/mlruns``, so nothing needs a server;
``$MLFLOW_TRACKING_URI`` overrides the store (artifacts then follow that server's settings). Nested parameter dicts
are flattened to dotted keys, non-finite metrics are skipped (MLflow rejects NaN on some stores).

:class:`BundleRunReport` is the ignite handler the bundles (and the overlays of :mod:`medsecure_transforms.overlays`)
append to an engine's handlers: ``run.json`` records the bundle, the defense, table, codec and guard that ran, and
completes MONAI's ``MLFlowHandler`` (added by ``--tracking mlflow``) with these parameters, per-class metrics as
scalars and the report files.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.data import MetaTensor
from monai.transforms import Compose

__all__ = [
    "ARTIFACTS_DIR",
    "STORE_FILE",
    "TRACKING_ENV_VAR",
    "BundleRunReport",
    "describe_pipeline",
    "engine_mlflow_run",
    "flatten_params",
    "log_metrics",
    "mlflow_run",
    "tracking_uri",
]

TRACKING_ENV_VAR = "MLFLOW_TRACKING_URI"
STORE_FILE = "mlruns.db"
ARTIFACTS_DIR = "mlruns"


def tracking_uri(output_dir: str | Path) -> str:
    """``$MLFLOW_TRACKING_URI`` when set, else ``sqlite:///<absolute output_dir>/mlruns.db``."""
    env = os.environ.get(TRACKING_ENV_VAR)
    if env:
        return env
    return f"sqlite:///{(Path(output_dir).resolve() / STORE_FILE).as_posix()}"


def flatten_params(params: Mapping, prefix: str = "") -> dict[str, str]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": "1"}``; values become strings (MLflow parameters are strings)."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, prefix=f"{name}."))
        else:
            flat[name] = str(value)
    return flat


def _finite(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and math.isfinite(float(v))}


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    """Log the finite numeric entries of ``metrics`` to the active run (keys may contain ``/`` and ``.``)."""
    finite = _finite(metrics)
    if finite:
        mlflow.log_metrics(finite, step=step)


@contextmanager
def mlflow_run(
    output_dir: str | Path,
    experiment: str = "medsecure",
    run_name: str | None = None,
    params: Mapping | None = None,
    tags: Mapping[str, str] | None = None,
) -> Iterator[mlflow.ActiveRun]:
    """Start an MLflow run in the project's default store for ``output_dir``; log ``params`` and ``tags``.

    The previous tracking URI is restored on exit, so library users keep their own MLflow settings.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    uri = tracking_uri(output_dir)
    local_store = not os.environ.get(TRACKING_ENV_VAR)  # read before set_tracking_uri, which exports the variable
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        existing = mlflow.get_experiment_by_name(experiment)
        if existing is None:
            artifacts = (output_dir.resolve() / ARTIFACTS_DIR).as_uri() if local_store else None
            experiment_id = mlflow.create_experiment(experiment, artifact_location=artifacts)
        else:
            experiment_id = existing.experiment_id
        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
            if params:
                mlflow.log_params(flatten_params(params))
            if tags:
                mlflow.set_tags(dict(tags))
            yield run
    finally:
        mlflow.set_tracking_uri(previous)
        if local_store:
            os.environ.pop(TRACKING_ENV_VAR, None)


# ---------------------------------------------------------------- bundles: MONAI's MLFlowHandler and the run report


def engine_mlflow_run(engine: Engine) -> tuple[mlflow.MlflowClient, str] | None:
    """``(client, run_id)`` of the active run of a MONAI ``MLFlowHandler`` attached to ``engine`` (what
    ``monai.bundle run --tracking mlflow`` adds), else ``None``."""
    from monai.handlers import MLFlowHandler

    for handlers in engine._event_handlers.values():  # ignite keeps no public list of attached handlers
        for handler, *_ in handlers:
            owner = getattr(handler, "__self__", None)
            if isinstance(owner, MLFlowHandler) and owner.cur_run is not None:
                return owner.client, owner.cur_run.info.run_id
    return None


def _transforms(engine: Engine) -> list:
    transform = getattr(getattr(getattr(engine, "data_loader", None), "dataset", None), "transform", None)
    if transform is None:
        return []
    return list(transform.flatten().transforms) if isinstance(transform, Compose) else [transform]


def describe_pipeline(transforms: Iterable) -> dict[str, list[dict]]:
    """What the package's transforms in ``transforms`` (flattened MONAI transforms) do, for reports:
    ``{"defense": [...], "guard": [...], "codec": [...]}``, one record per transform (empty lists: none ran).

    Defense: transform, keys, table name, colour mode, intensity range (FR / JPEG); guard: detector, threshold,
    policy; codec: the MVCompress3D state, target ratio and what it refers to.
    """
    from ..transforms import FFTDetectd, MVCompress3Dd
    from ..transforms.frequency_refine import BlockQuantized

    found: dict[str, list[dict]] = {"defense": [], "guard": [], "codec": []}
    for t in transforms:
        keys = [str(k) for k in getattr(t, "keys", ())]
        if isinstance(t, BlockQuantized):
            q = t.transform.quantizer
            found["defense"].append(
                {
                    "transform": type(t).__name__,
                    "keys": keys,
                    "table": q.name,
                    "color": getattr(t.transform, "color", q.color),  # JPEG's "auto" picks per image
                    "intensity_range": list(q.intensity_range),
                }
            )
        elif isinstance(t, FFTDetectd):
            g = t.transform
            found["guard"].append(
                {
                    "transform": type(t).__name__,
                    "keys": keys,
                    "detector": g.detector.name,
                    "threshold": float(g.detector.threshold),
                    "policy": g.policy,
                    "reformer": None if g.reformer is None else g.reformer.name,
                }
            )
        elif isinstance(t, MVCompress3Dd):
            c = t.transform
            found["codec"].append(
                {
                    "transform": type(t).__name__,
                    "keys": keys,
                    "state": c.codec.to_dict(),
                    "target_ratio": c.target_ratio,
                    "ratio_against": c.ratio_against,
                }
            )
    return found


def _pipeline_params(pipeline: Mapping[str, list[dict]]) -> dict[str, Any]:
    """``describe_pipeline`` as flat-able MLflow parameters: ``defense``/``guard``/``codec`` = ``"none"`` or records."""
    params: dict[str, Any] = {}
    for kind, records in pipeline.items():
        if not records:
            params[kind] = "none"
        for i, record in enumerate(records):
            params[kind if len(records) == 1 else f"{kind}{i}"] = dict(record)
    return params


def _sample_stats(sample: Mapping) -> dict[str, float]:
    """Per-sample numbers the package's transforms leave in a sample (MetaTensor metadata, guard reports)."""
    stats: dict[str, float] = {}
    for value in sample.values():
        if isinstance(value, MetaTensor):
            meta = value.meta
            if "defense_mean_abs_change" in meta:
                stats["pipeline/defense_mean_abs_change"] = float(meta["defense_mean_abs_change"])
            codec = meta.get("mv_compress3d")
            if isinstance(codec, Mapping):
                stats["pipeline/compression_ratio"] = float(codec["compression_ratio"])
                stats["pipeline/bits_per_voxel"] = float(codec["bits_per_voxel"])
        elif isinstance(value, Mapping) and "fft_detect_flagged" in value:
            stats["pipeline/guard_flagged"] = float(bool(value["fft_detect_flagged"]))
            stats["pipeline/guard_score"] = float(value["fft_detect_score"])
    return stats


def _class_labels(meta: Mapping | None, count: int, class_names: Sequence[str] | None) -> list[str]:
    """Names of ``count`` per-class values: ``class_names``, else the metadata's output ``channel_def`` without the
    background when that fits, else ``0..count-1``."""
    if class_names is not None and len(class_names) == count:
        return [str(n) for n in class_names]
    outputs = ((meta or {}).get("network_data_format") or {}).get("outputs") or {}
    channels = next(iter(outputs.values()), {}).get("channel_def", {}) if outputs else {}
    names = [str(v).replace(" ", "_") for _, v in sorted(channels.items(), key=lambda kv: int(kv[0]))]
    if len(names) == count + 1:
        return names[1:]
    if len(names) == count:
        return names
    return [str(i) for i in range(count)]


class BundleRunReport:
    """Ignite handler for a bundle's engine (evaluator or trainer): a run report, per-class scalars, MLflow.

    - ``EPOCH_COMPLETED``: a metric with one value per class (e.g. ``MeanDice(reduction="mean_batch")``) becomes
      scalars ``<metric>/<class>`` in ``engine.state.metrics`` for the loggers that follow (MONAI's
      ``MLFlowHandler`` logs scalars only); the tensor is put back at ``COMPLETED``.
    - ``ITERATION_COMPLETED``: per-sample numbers the package's transforms record (defense mean change, compression
      ratio, guard flag and score) are collected.
    - ``COMPLETED``: writes ``metrics_file`` (:func:`~medsecure_transforms.bundle.save_engine_metrics`, when given)
      and ``report_file`` in ``output_dir``: ``{"params": {"bundle": {name, version}, "defense", "table" ...},
      "metrics": {...}}`` with the engine's scalar metrics and the means of the per-sample numbers. With a MONAI
      ``MLFlowHandler`` on the engine, its run gets the flattened parameters, the per-sample means and the sample
      count ``pipeline/samples`` (the engine's metrics it logs itself, per epoch) and the report files (plus
      ``artifacts``) as artifacts.

    One report per engine: a second ``BundleRunReport`` (an overlay's, on a bundle that has its own) attaches nothing.

    Args:
        output_dir: folder of the report files.
        meta: the bundle's metadata (``"@_meta_"``): name and version, class names.
        class_names: names of the per-class values (default from the metadata's output ``channel_def``).
        metrics_file: file name of the per-class, per-case metrics report (``None``: not written).
        report_file: file name of the run report.
        artifacts: other files or folders to log as MLflow artifacts.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        meta: Mapping | None = None,
        class_names: Sequence[str] | None = None,
        metrics_file: str | None = None,
        report_file: str = "run.json",
        artifacts: Sequence[str | os.PathLike] = (),
    ) -> None:
        self.output_dir = Path(output_dir)
        self.meta = dict(meta or {})
        self.class_names = None if class_names is None else [str(n) for n in class_names]
        self.metrics_file, self.report_file = metrics_file, report_file
        self.artifacts = [Path(a) for a in artifacts]
        self._tensors: dict[str, torch.Tensor] = {}
        self._stats: dict[str, list[float]] = {}
        self._samples = 0

    def attach(self, engine: Engine) -> None:
        for handlers in engine._event_handlers.values():
            if any(isinstance(getattr(h, "__self__", None), BundleRunReport) for h, *_ in handlers):
                return
        engine.add_event_handler(Events.STARTED, self.started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.iteration_completed)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.epoch_completed)
        engine.add_event_handler(Events.COMPLETED, self.completed)

    def started(self, engine: Engine) -> None:
        self._tensors, self._stats, self._samples = {}, {}, 0

    def iteration_completed(self, engine: Engine) -> None:
        batch = engine.state.batch
        for sample in batch if isinstance(batch, list) else []:  # decollated by MONAI's workflows
            if isinstance(sample, Mapping):
                self._samples += 1
                for key, value in _sample_stats(sample).items():
                    self._stats.setdefault(key, []).append(value)

    def epoch_completed(self, engine: Engine) -> None:
        for name, value in list(engine.state.metrics.items()):
            if isinstance(value, torch.Tensor) and value.numel() > 1:
                flat = value.detach().cpu().reshape(-1)
                self._tensors[name] = value
                del engine.state.metrics[name]
                for label, v in zip(_class_labels(self.meta, len(flat), self.class_names), flat.tolist(), strict=True):
                    engine.state.metrics[f"{name}/{label}"] = v

    def params(self, engine: Engine) -> dict[str, Any]:
        """The run's parameters: bundle name and version, and :func:`describe_pipeline` of the engine's data."""
        bundle = {"name": self.meta.get("name", "unknown"), "version": self.meta.get("version", "unknown")}
        return {"bundle": bundle, **_pipeline_params(describe_pipeline(_transforms(engine)))}

    def completed(self, engine: Engine) -> None:
        scalars = {k: v for k, v in engine.state.metrics.items() if not isinstance(v, torch.Tensor | Mapping)}
        for name in self._tensors:
            for key in [k for k in engine.state.metrics if k.startswith(f"{name}/")]:
                del engine.state.metrics[key]
        engine.state.metrics.update(self._tensors)
        self._tensors = {}
        metrics = {**_finite(scalars), **{k: float(np.mean(v)) for k, v in self._stats.items()}}
        params = self.params(engine)
        written = []
        if self.metrics_file:
            from ..bundle import save_engine_metrics

            save_engine_metrics(engine, self.output_dir / self.metrics_file, self.class_names)
            written.append(self.output_dir / self.metrics_file)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        report = {"params": params, "metrics": metrics, "samples": self._samples}
        (self.output_dir / self.report_file).write_text(json.dumps(report, indent=2))
        written.append(self.output_dir / self.report_file)
        run = engine_mlflow_run(engine)
        if run is None:
            return
        client, run_id = run
        logged = client.get_run(run_id).data.params
        new = {k: v[:6000] for k, v in flatten_params(params).items() if k not in logged}
        stamp = int(time.time() * 1000)
        pipeline = _finite({k: v for k, v in metrics.items() if k.startswith("pipeline/")})  # the rest: per epoch
        pipeline["pipeline/samples"] = float(self._samples)
        client.log_batch(
            run_id,
            metrics=[mlflow.entities.Metric(k, v, stamp, 0) for k, v in pipeline.items()],
            params=[mlflow.entities.Param(k, v) for k, v in new.items()],
        )
        for path in [*written, *self.artifacts]:
            if path.is_dir():
                client.log_artifacts(run_id, str(path), path.name)
            elif path.is_file():
                client.log_artifact(run_id, str(path))
