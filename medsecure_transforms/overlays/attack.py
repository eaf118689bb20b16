"""The ``evaluate_attack`` overlay's handler: the robustness engine run on a bundle evaluator's own data and network."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import islice
from pathlib import Path

import torch
from ignite.engine import Engine, Events
from monai.inferers import Inferer
from monai.utils import convert_to_tensor

from ..attacks.base import SegmentationAttack
from ..evaluation.robustness import evaluate_robustness
from ..evaluation.tracking import engine_mlflow_run, flatten_params


class InfererNetwork(torch.nn.Module):
    """``network`` run through a MONAI ``inferer`` (sliding window, slice by slice ...): ``[B, C, *spatial]`` ->
    logits ``[B, K, *spatial]``, differentiable, so attacks see the bundle's own inference."""

    def __init__(self, network: torch.nn.Module, inferer: Inferer) -> None:
        super().__init__()
        self.network, self.inferer = network, inferer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inferer(x, self.network)


class AttackEvaluation:
    """Ignite handler for a bundle's evaluator: when it has run (``COMPLETED``), attack its data.

    Samples come from the evaluator's own data loader and ``prepare_batch`` (so any key names work), the network
    and inferer are the evaluator's (checkpoint loaded, sliding window / slice inferer included). A sample without
    a label is scored against the benign prediction. Reports (``robustness.json`` ...) go to ``output_dir``
    (:func:`~medsecure_transforms.evaluation.robustness.evaluate_robustness`); under ``--tracking mlflow`` their
    aggregate means, parameters and files are logged to the bundle's MLflow run.

    Args:
        attack: an attack of :mod:`medsecure_transforms.attacks`.
        output_dir: folder of the reports.
        target_fn: attack targets from labels (targeted attacks).
        defenses: ``{name: array transform}`` scored on benign and adversarial images.
        regions: ``{name: classes}`` scored as binary structures (default one per foreground class).
        limit: attack the first ``limit`` samples only.
        run_name: name of the report.
    """

    def __init__(
        self,
        attack: SegmentationAttack,
        output_dir: str | os.PathLike,
        target_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
        defenses: Mapping[str, Callable] | None = None,
        regions: Mapping[str, Sequence[int]] | None = None,
        limit: int | None = None,
        run_name: str | None = None,
    ) -> None:
        self.attack, self.output_dir, self.target_fn = attack, Path(output_dir), target_fn
        self.defenses, self.regions, self.limit, self.run_name = dict(defenses or {}), regions, limit, run_name
        self.report: dict | None = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def samples(self, engine: Engine, model: torch.nn.Module) -> Iterator[dict]:
        """``{"image": [C, *spatial], "label": [1, *spatial]}`` per sample of the evaluator's data."""
        for batch in engine.data_loader:
            prepared = engine.prepare_batch(batch, engine.state.device, engine.non_blocking, **engine.to_kwargs)
            images = convert_to_tensor(prepared[0], track_meta=False).float()
            labels = prepared[1]
            if labels is None:
                with torch.no_grad():
                    labels = model(images).argmax(1, keepdim=True)
            labels = convert_to_tensor(labels, track_meta=False)
            for image, label in zip(images, labels, strict=True):
                yield {"image": image, "label": label}

    def __call__(self, engine: Engine) -> None:
        model = InfererNetwork(engine.network, engine.inferer)
        samples = islice(self.samples(engine, model), self.limit)
        self.report = evaluate_robustness(
            model=model,
            samples=samples,
            attack=self.attack,
            output_dir=self.output_dir,
            defenses=self.defenses,
            target_fn=self.target_fn,
            regions=self.regions,
            track=False,
            run_name=self.run_name,
            progress=False,
        )
        run = engine_mlflow_run(engine)
        if run is not None:
            client, run_id = run
            logged = client.get_run(run_id).data.params
            params = {k: v[:6000] for k, v in flatten_params({"robustness": self.report["params"]}).items()}
            for key, value in params.items():
                if key not in logged:
                    client.log_param(run_id, key, value)
            for key, stats in self.report["aggregate"].items():
                if isinstance(stats.get("mean"), float) and stats["mean"] == stats["mean"]:
                    client.log_metric(run_id, key, stats["mean"])
            for path in self.report["files"].values():
                client.log_artifact(run_id, path, "robustness")
