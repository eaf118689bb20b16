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
from typing import Any

import numpy as np
import torch

from .reconstruction import ReconstructionModel, load_artefact, save_artefact

DETECTOR_KIND = "fft_detector"


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


class FFTDetector:
    """Reconstruction-error detector in the spatial, Fourier or shifted-Fourier domain.

    Args:
        arch: ``"unet"``, ``"densenet"``, ``"autoencoder1"`` or ``"autoencoder2"``.
        in_channels: image channels.
        domain: ``"shifted_frequency"`` (the paper's method), ``"frequency"`` or ``"spatial"``.
        p: order of the reconstruction-error norm (``p >= 1``; ``math.inf`` for the max norm).
        network_kwargs: extra architecture arguments.
        device: torch device.
    """

    def __init__(
        self,
        arch: str = "unet",
        in_channels: int = 1,
        domain: str = "shifted_frequency",
        p: float = 2.0,
        network_kwargs: dict[str, Any] | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        if not p >= 1.0:
            raise ValueError(f"p must be >= 1, got {p}")
        self.model = ReconstructionModel(arch, in_channels, domain, network_kwargs, device)
        self.p = float(p)
        self.threshold: float | None = None
        self.calibration: dict[str, Any] = {}
        self.training: dict[str, Any] = {}

    @property
    def domain(self) -> str:
        return self.model.domain

    @property
    def in_channels(self) -> int:
        return self.model.in_channels

    @property
    def name(self) -> str:
        """``<arch>_<domain>`` for the networks, ``autoencoder1``/``autoencoder2`` for the MagNet baselines."""
        return self.model.arch if self.model.arch.startswith("autoencoder") else f"{self.model.arch}_{self.domain}"

    def fit(self, images: torch.Tensor | np.ndarray, **kwargs: Any) -> list[float]:
        """Train on clean ``[N, C, H, W]`` images in ``[0, 1]``; see :meth:`ReconstructionModel.fit` for ``kwargs``."""
        history = self.model.fit(images, **kwargs)
        self.training = {"n_images": len(images), "final_loss": history[-1], **kwargs}
        self.training.pop("progress", None)
        return history

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

    def state(self) -> dict[str, Any]:
        """JSON-serialisable state besides the weights."""
        return {
            "kind": DETECTOR_KIND,
            "p": self.p if math.isfinite(self.p) else "inf",
            "threshold": self.threshold,
            "calibration": self.calibration,
            "training": self.training,
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write weights + JSON state (domain, p, threshold, t_fp, calibration statistics) to one file."""
        save_artefact(path, self.model, self.state())

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        device: str | torch.device = "cpu",
        domain: str | None = None,
        in_channels: int | None = None,
    ) -> FFTDetector:
        """Load an artefact; ``domain`` / ``in_channels``, when given, must match the stored ones (``ValueError``)."""
        model, meta = load_artefact(path, DETECTOR_KIND, device)
        if domain is not None and model.domain != domain:
            raise ValueError(f"{path}: detector was trained on domain {model.domain!r}, expected {domain!r}")
        if in_channels is not None and model.in_channels != in_channels:
            raise ValueError(f"{path}: detector expects {model.in_channels} channels, expected {in_channels}")
        p = math.inf if meta["p"] == "inf" else float(meta["p"])
        detector = cls.__new__(cls)
        detector.model, detector.p = model, p
        detector.threshold = meta["threshold"]
        detector.calibration, detector.training = meta["calibration"], meta["training"]
        return detector
