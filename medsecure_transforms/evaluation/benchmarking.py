"""Benchmark helpers: the machine a number was measured on, interleaved wall-clock timing, reference codecs."""

from __future__ import annotations

import io
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image

__all__ = ["interleaved", "machine_info", "pillow_jpeg_round_trip", "timed"]


def machine_info(load_average: bool = False) -> dict:
    """``{"cpu", "cores", "threads" (torch's), "torch"}`` plus the 1-minute ``load_average_1min`` when asked."""
    info = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    if load_average:
        info["load_average_1min"] = os.getloadavg()[0]
    return info


def interleaved(fns: Sequence[Callable[[], object]], repeats: int) -> list[float]:
    """Median wall times (s) of each of ``fns``, run alternately ``repeats`` times after one warm-up each, so that
    load changes on a shared machine hit all of them alike."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, bucket in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time (s) of ``fn()`` over ``repeats`` runs after one warm-up."""
    return interleaved([fn], repeats)[0]


def pillow_jpeg_round_trip(image: np.ndarray, quality: int = 85) -> np.ndarray:
    """Encode and decode an RGB ``uint8`` image ``[H, W, 3]`` with Pillow's JPEG at ``quality`` (the reference codec
    the block-DCT defenses are timed against)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
