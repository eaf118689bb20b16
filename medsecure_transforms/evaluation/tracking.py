"""The project's one MLflow helper.

Runs go to ``sqlite:///<output_dir>/mlflow.db`` with artifacts under ``<output_dir>/mlartifacts`` so nothing needs a
server; ``$MLFLOW_TRACKING_URI`` overrides the store (artifacts then follow that server's settings). Nested parameter
dicts are flattened to dotted keys, non-finite metrics are skipped (MLflow rejects NaN on some stores).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import mlflow

__all__ = ["TRACKING_ENV_VAR", "flatten_params", "log_metrics", "mlflow_run", "tracking_uri"]

TRACKING_ENV_VAR = "MLFLOW_TRACKING_URI"


def tracking_uri(output_dir: str | Path) -> str:
    """``$MLFLOW_TRACKING_URI`` when set, else ``sqlite:///<absolute output_dir>/mlflow.db``."""
    env = os.environ.get(TRACKING_ENV_VAR)
    if env:
        return env
    return f"sqlite:///{(Path(output_dir).resolve() / 'mlflow.db').as_posix()}"


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


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    """Log the finite numeric entries of ``metrics`` to the active run (keys may contain ``/`` and ``.``)."""
    finite = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and math.isfinite(float(v))}
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
            artifacts = (output_dir.resolve() / "mlartifacts").as_uri() if local_store else None
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
