"""FFTDetect (Park et al.): adversarial-input detection by reconstruction error in the Fourier-magnitude domain.

A network ``D`` trained on clean images reconstructs ``x' = to_domain(x)`` (default the fftshift-ed log magnitude).
The score of an image is its reconstruction error

``RE(x) = ||x' - D(x')||_p / N^(1/p)``  (``N = C H W`` elements; ``p = 2`` by default),

the paper's ``||x' - D(x')||_p`` divided by a constant, so thresholds do not depend on the image size. An image is
flagged adversarial when ``RE(x) > t_re``; :meth:`FFTDetector.calibrate` sets ``t_re`` on clean validation images as
the largest validation error that keeps the validation false-positive rate at most ``t_fp`` (default 0.05).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from .reconstruction import ReconstructionDefense, ReconstructionModel


class AdversarialInputRejected(RuntimeError):
    """Raised when a guarded pipeline rejects an input whose detector score exceeds the threshold."""

    def __init__(self, message: str, score: float, threshold: float) -> None:
        super().__init__(message)
        self.score, self.threshold = score, threshold


def min_calibration_size(t_fp: float) -> int:
    """Fewest clean validation images that resolve a false-positive rate of ``t_fp`` (``ceil(1 / t_fp)``)."""
    return math.ceil(1.0 / t_fp - 1e-9)


def threshold_at_fpr(scores: torch.Tensor | np.ndarray, t_fp: float) -> tuple[float, dict[str, Any]]:
    """Threshold ``t_re`` such that at most ``floor(t_fp * n)`` of the clean ``scores`` exceed it.

    ``t_re`` is the ``(n - k)``-th smallest score with ``k = floor(t_fp * n)``: the largest validation error still
    accepted. Returns ``(t_re, stats)`` with the realised validation false-positive rate and score statistics.

    Raises:
        ValueError: ``t_fp`` outside ``(0, 1)``, non-finite scores, or fewer than ``ceil(1 / t_fp)`` scores (the
            requested rate cannot be resolved: every threshold would give a rate of 0 or at least ``1/n > t_fp``).
    """
    if not 0.0 < t_fp < 1.0:
        raise ValueError(f"t_fp must be in (0, 1), got {t_fp}")
    s = torch.as_tensor(scores, dtype=torch.float64).flatten()
    if not torch.isfinite(s).all():
        raise ValueError("calibration scores contain NaN or infinite values")
    n, needed = len(s), min_calibration_size(t_fp)
    if n < needed:
        raise ValueError(
            f"calibrating at a false-positive rate of {t_fp} needs at least {needed} clean validation images, got {n}"
        )
    k = math.floor(t_fp * n + 1e-9)
    ordered = torch.sort(s).values
    threshold = float(ordered[n - 1 - k])
    stats = {
        "n": n,
        "t_fp": t_fp,
        "allowed_false_positives": k,
        "validation_fpr": float((s > threshold).double().mean()),
        "mean": float(s.mean()),
        "std": float(s.std()) if n > 1 else 0.0,
        "min": float(ordered[0]),
        "median": float(ordered[(n - 1) // 2]),
        "max": float(ordered[-1]),
    }
    return threshold, stats


def _check_threshold(threshold: float | None) -> float | None:
    if threshold is None:
        return None
    if not (math.isfinite(threshold) and threshold >= 0):
        raise ValueError(f"threshold must be a finite reconstruction error >= 0 (or None), got {threshold}")
    return float(threshold)


class FFTDetector(ReconstructionDefense):
    """Reconstruction-error detector in the spatial, Fourier or shifted-Fourier domain.

    Args:
        arch: ``"unet"``, ``"densenet"``, ``"autoencoder1"`` or ``"autoencoder2"``.
        in_channels: image channels.
        domain: ``"shifted_frequency"`` (the paper's method), ``"frequency"`` or ``"spatial"``.
        p: order of the reconstruction-error norm (``p >= 1``; ``math.inf`` for the max norm).
        network_kwargs: extra architecture arguments.
        device: torch device.
        threshold: ``t_re`` (finite, ``>= 0``), ``None`` until :meth:`calibrate` sets it.
    """

    FORMAT = "medsecure.fft_detector"
    VERSION = 1
    NOUN = "detector"

    def __init__(
        self,
        arch: str = "unet",
        in_channels: int = 1,
        domain: str = "shifted_frequency",
        p: float = 2.0,
        network_kwargs: dict[str, Any] | None = None,
        device: str | torch.device = "cpu",
        threshold: float | None = None,
    ) -> None:
        if not p >= 1.0:
            raise ValueError(f"p must be >= 1, got {p}")
        self.model = ReconstructionModel(arch, in_channels, domain, network_kwargs, device)
        self.p = float(p)
        self.threshold = threshold
        self.calibration: dict[str, Any] = {}
        self.training: dict[str, Any] = {}

    @property
    def threshold(self) -> float | None:
        """``t_re``: scores above it are flagged (checked finite and ``>= 0`` when set)."""
        return self._threshold

    @threshold.setter
    def threshold(self, value: float | None) -> None:
        self._threshold = _check_threshold(value)

    @property
    def domain(self) -> str:
        return self.model.domain

    @property
    def name(self) -> str:
        """``<arch>_<domain>`` for the networks, ``autoencoder1``/``autoencoder2`` for the MagNet baselines."""
        return self.model.arch if self.model.arch.startswith("autoencoder") else f"{self.model.arch}_{self.domain}"

    def scores(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Reconstruction errors ``[B]`` of a batch ``[B, C, H, W]`` (differentiable, for adaptive attacks)."""
        features, recon = self.model.reconstruct(x)
        diff = (features - recon).flatten(1)
        if math.isinf(self.p):
            return diff.abs().amax(dim=1)
        return diff.abs().pow(self.p).mean(dim=1).pow(1.0 / self.p)

    def score_batches(self, x: torch.Tensor | np.ndarray, batch_size: int = 32) -> torch.Tensor:
        """:meth:`scores` without gradients, ``batch_size`` images at a time, on the CPU."""
        t = torch.as_tensor(x)
        with torch.no_grad():
            return torch.cat([self.scores(t[i : i + batch_size]).cpu() for i in range(0, len(t), batch_size)])

    def calibrate(self, clean_images: torch.Tensor | np.ndarray, t_fp: float = 0.05) -> float:
        """Set the threshold from clean validation images; returns ``t_re`` (see :func:`threshold_at_fpr`)."""
        self.threshold, self.calibration = threshold_at_fpr(self.score_batches(clean_images), t_fp)
        return self.threshold

    def detect(self, x: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scores [B], flagged [B] bool)`` for a batch; requires a calibrated threshold."""
        if self.threshold is None:
            raise RuntimeError("the detector has no threshold: call calibrate() or load a calibrated artefact")
        with torch.no_grad():
            scores = self.scores(x)
        return scores, scores > self.threshold

    def config(self) -> dict[str, Any]:
        """Constructor arguments (network, ``p``, ``threshold``) and the calibration and training records."""
        return {
            **self.model.config(),
            "p": self.p,
            "threshold": self.threshold,
            "calibration": self.calibration,
            "training": self.training,
        }

    @classmethod
    def from_state(
        cls, config: Mapping[str, Any], state: Mapping[str, torch.Tensor], device: str | torch.device = "cpu"
    ) -> FFTDetector:
        """A detector from :meth:`config` and network weights, built (and checked) by the constructor."""
        detector = cls(
            config["arch"],
            config["in_channels"],
            config["domain"],
            config["p"],
            config["network_kwargs"],
            device,
            config["threshold"],
        )
        detector.model.load_weights(state)
        detector.calibration, detector.training = dict(config["calibration"]), dict(config["training"])
        return detector

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        device: str | torch.device = "cpu",
        domain: str | None = None,
        in_channels: int | None = None,
    ) -> FFTDetector:
        """Load an artefact; ``domain`` / ``in_channels``, when given, must match the stored ones (``ValueError``)."""
        detector = super().load(path, device, in_channels)
        if domain is not None and detector.domain != domain:
            raise ValueError(f"{path}: detector was trained on domain {detector.domain!r}, expected {domain!r}")
        return detector
