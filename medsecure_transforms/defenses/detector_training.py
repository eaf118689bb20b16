"""Train one guard network of Park et al.'s pipeline: an :class:`FFTDetector` (fit on clean training images, threshold
calibrated on clean validation images) or a :class:`Reformer` (fit on noisy copies of the clean training images)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from .fft_detect import FFTDetector
from .reformer import Reformer

__all__ = ["GUARD_KINDS", "GuardRecipe", "build_guard_model", "train_guard_model"]

GUARD_KINDS = ("detector", "reformer")


@dataclass(frozen=True)
class GuardRecipe:
    """Training recipe shared by the detectors and reformers.

    ``epochs``, ``batch_size``, ``lr``, ``weight_decay``: Adam + MSE schedule (:meth:`ReconstructionModel.fit`);
    ``reformer_noise``: std of MagNet's denoising noise for reformers (images in ``[0, 1]``); ``t_fp``: detector
    false-positive rate on the validation images; ``seed``: seeds weight initialisation, shuffling and noise.
    """

    epochs: int = 8
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-5
    reformer_noise: float = field(default=0.025, metadata={"help": "MagNet-style denoising noise std"})
    t_fp: float = 0.05
    seed: int = 0


def build_guard_model(
    kind: str,
    arch: str,
    in_channels: int,
    domain: str = "spatial",
    network_kwargs: dict[str, Any] | None = None,
    seed: int = 0,
) -> FFTDetector | Reformer:
    """An untrained detector (in ``domain``) or reformer (always spatial), weights initialised under ``seed``."""
    if kind not in GUARD_KINDS:
        raise ValueError(f"kind must be one of {GUARD_KINDS}, got {kind!r}")
    torch.manual_seed(seed)
    if kind == "detector":
        return FFTDetector(arch, in_channels, domain, network_kwargs=network_kwargs)
    return Reformer(arch, in_channels, network_kwargs=network_kwargs)


def train_guard_model(
    model: FFTDetector | Reformer, train: torch.Tensor, val: torch.Tensor, recipe: GuardRecipe
) -> dict[str, Any]:
    """Fit ``model`` in place on clean ``train`` ``[N, C, H, W]`` in ``[0, 1]``; calibrate a detector on clean ``val``.

    Returns the training record ``{"loss_per_epoch", "train_seconds"}`` plus, for a detector, ``"threshold"`` and
    ``"calibration"``.
    """
    fit = {
        "epochs": recipe.epochs,
        "batch_size": recipe.batch_size,
        "lr": recipe.lr,
        "weight_decay": recipe.weight_decay,
        "seed": recipe.seed,
    }
    start = time.perf_counter()
    if isinstance(model, FFTDetector):
        history = model.fit(train, **fit)
        model.calibrate(val, recipe.t_fp)
        calibration = {"threshold": model.threshold, "calibration": model.calibration}
    else:
        history = model.fit(train, noise_std=recipe.reformer_noise, **fit)
        calibration = {}
    seconds = time.perf_counter() - start
    return {"loss_per_epoch": history, "train_seconds": round(seconds, 1), **calibration}
