"""Parameter optimisation of MVCompress3D (paper Sec. 3.2.2): ``Q_min`` and ``Q_max`` from two corner cases.

* Lower corner: one step ``q`` for every subband; ``Q_min`` is the largest ``q`` whose mean score drop (vs the
  uncompressed volumes) stays within ``tolerance`` -- if the most significant subband tolerates it, all do.
* Upper corner: every subband at ``Q_min`` except the least significant one (smallest std, per volume and
  channel), which gets ``q``; ``Q_max`` is the largest tolerated ``q``.

``a`` and ``b`` of Eq. (4) then follow per volume from ``(Q_min, delta_max)`` and ``(Q_max, delta_min)``. The score
is any "higher is better" function of a decoded volume (e.g. mean Dice of a segmentation network).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from .codec import MVWaveletCodec

__all__ = ["PAPER_CANDIDATES", "calibrate_step_bounds"]

PAPER_CANDIDATES = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
"""Step candidates (powers of two around the paper's Q_min = 1, Q_max = 16)."""


def calibrate_step_bounds(
    volumes: Sequence[np.ndarray],
    score: Callable[[int, np.ndarray], float],
    codec: MVWaveletCodec | None = None,
    candidates: Sequence[float] = PAPER_CANDIDATES,
    tolerance: float = 0.01,
) -> tuple[MVWaveletCodec, dict]:
    """Run both corner cases and return the codec with the calibrated bounds and a JSON-ready report.

    Args:
        volumes: stored volumes (``[*spatial]`` or ``[C, *spatial]``).
        score: ``score(index, decoded_volume)``, higher is better; also called on the originals.
        codec: the codec whose wavelet, levels and value range are kept (default the paper's).
        candidates: increasing positive steps to try.
        tolerance: largest accepted drop of the mean score.

    Raises:
        ValueError: no volumes, or candidates not increasing and positive.
    """
    codec = codec or MVWaveletCodec()
    candidates = [float(q) for q in candidates]
    if not volumes:
        raise ValueError("calibrate_step_bounds needs at least one volume")
    if (
        len(candidates) < 2
        or min(candidates) <= 0
        or any(b <= a for a, b in zip(candidates[:-1], candidates[1:], strict=True))
    ):
        raise ValueError(f"candidates must be >= 2 increasing positive steps, got {candidates}")
    analyses = [codec.analyse(v) for v in volumes]
    reference = float(np.mean([score(i, np.asarray(v)) for i, v in enumerate(volumes)]))

    def mean_score(steps_of: Callable[[int, dict[str, float]], dict[str, float]]) -> float:
        values = []
        for i, analysis in enumerate(analyses):
            steps = [steps_of(i, stds) for stds in analysis.stds]
            decoded, _ = codec.decode(codec.encode(analysis, steps=steps))
            values.append(score(i, decoded))
        return float(np.mean(values))

    lower = []
    for q in candidates:
        lower.append({"step": q, "score": mean_score(lambda _i, stds, q=q: dict.fromkeys(stds, q))})
        if reference - lower[-1]["score"] > tolerance:
            break
    passed = [r["step"] for r in lower if reference - r["score"] <= tolerance]
    q_min = passed[-1] if passed else candidates[0]

    def upper_steps(_i, stds, q):
        weakest = min(stds, key=stds.get)
        return {name: (q if name == weakest else q_min) for name in stds}

    upper = []
    for q in [c for c in candidates if c > q_min]:
        upper.append({"step": q, "score": mean_score(lambda i, stds, q=q: upper_steps(i, stds, q))})
        if reference - upper[-1]["score"] > tolerance:
            break
    passed_upper = [r["step"] for r in upper if reference - r["score"] <= tolerance]
    larger = [c for c in candidates if c > q_min]
    q_max = passed_upper[-1] if passed_upper else (larger[0] if larger else 2 * q_min)
    report = {
        "reference_score": reference,
        "tolerance": tolerance,
        "lower_corner": lower,
        "upper_corner": upper,
        "q_min": q_min,
        "q_max": q_max,
        "lower_corner_met": bool(passed),
        "upper_corner_met": bool(passed_upper),
        "volumes": len(volumes),
    }
    return replace(codec, q_min=q_min, q_max=q_max, mapping="machine_vision"), report
