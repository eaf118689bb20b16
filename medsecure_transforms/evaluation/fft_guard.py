"""The guard networks of the FFTDetect study (Park et al.): train the 12 detectors and reformers its tables need, and
time them against the target segmentation network.

Detectors (Table 1 of the paper): MagNet autoencoders I and II (spatial), UNet and FC-DenseNet in the spatial,
frequency and shifted-frequency domains. Reformers: autoencoders I and II, UNet, FC-DenseNet (spatial). One artefact
per network in the guard directory: ``detector_<name>.pt`` / ``reformer_<name>.pt`` plus ``training.json`` (setup,
losses, thresholds, wall times).
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from ..defenses import FFTDetector, Reformer
from ..defenses.detector_training import GuardRecipe, build_guard_model, train_guard_model
from .benchmarking import interleaved

__all__ = ["GUARD_JOBS", "GUARD_NETWORK_KWARGS", "bench_guard", "train_guard_suite"]

# CPU-sized widths (the paper does not state its widths); recorded in every artefact's metadata.
GUARD_NETWORK_KWARGS: dict[str, dict[str, Any]] = {
    "unet": {"channels": [8, 16, 32, 64]},
    "densenet": {"stem_channels": 8, "growth_rate": 6, "layers_per_block": 2, "levels": 3},
    "autoencoder1": {},
    "autoencoder2": {},
}
# (kind, arch, domain) in training order: what the 16 detector/reformer combinations need first, the Table-1-only
# detectors last.
GUARD_JOBS: tuple[tuple[str, str, str], ...] = (
    ("detector", "unet", "shifted_frequency"),
    ("detector", "autoencoder1", "spatial"),
    ("detector", "autoencoder2", "spatial"),
    ("reformer", "unet", "spatial"),
    ("reformer", "autoencoder1", "spatial"),
    ("reformer", "autoencoder2", "spatial"),
    ("detector", "unet", "frequency"),
    ("detector", "densenet", "shifted_frequency"),
    ("reformer", "densenet", "spatial"),
    ("detector", "densenet", "frequency"),
    ("detector", "unet", "spatial"),
    ("detector", "densenet", "spatial"),
)


def train_guard_suite(
    train: torch.Tensor,
    val: torch.Tensor,
    out: Path,
    recipe: GuardRecipe,
    header: Mapping[str, Any] | None = None,
    only: Sequence[str] | None = None,
    jobs: Sequence[tuple[str, str, str]] = GUARD_JOBS,
) -> dict[str, Any]:
    """Train, calibrate and save every network of ``jobs`` on clean ``train`` / ``val`` ``[N, C, H, W]`` in ``[0, 1]``.

    ``only`` keeps the jobs whose name (``unet_shifted_frequency``, ``autoencoder1``) or file stem
    (``reformer_unet``) it lists. ``out/training.json`` gets ``"setup"`` (``header``, data sizes, ``recipe``,
    threads, machine) and one record per network; it is re-read before each write, so runs training different
    networks into the same directory in parallel keep each other's records. Returns the log.
    """
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "training.json"
    log = json.loads(log_path.read_text()) if log_path.is_file() else {}
    setup = {
        **(header or {}),
        "train_slices": len(train),
        "val_slices": len(val),
        "shape": list(train.shape[1:]),
        **asdict(recipe),
        "threads": torch.get_num_threads(),
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}",
    }
    for kind, arch, domain in jobs:
        model = build_guard_model(kind, arch, train.shape[1], domain, GUARD_NETWORK_KWARGS[arch], recipe.seed)
        name = f"{kind}_{model.name}"
        if only is not None and model.name not in only and name not in only:
            continue
        entry = train_guard_model(model, train, val, recipe)
        model.save(out / f"{name}.pt")
        log = json.loads(log_path.read_text()) if log_path.is_file() else log
        log["setup"] = setup
        log[name] = entry
        log_path.write_text(json.dumps(log, indent=2))
        print(f"{name}: loss {entry['loss_per_epoch'][-1]:.5f}, {entry['train_seconds']:.0f} s", flush=True)
    return log


def bench_guard(network: torch.nn.Module, images: torch.Tensor, guard_dir: Path, repeats: int = 5) -> dict[str, Any]:
    """Per-image wall time of every detector / reformer artefact in ``guard_dir`` next to ``network``'s forward pass.

    For each artefact, after one warm-up, the artefact and the segmentation pass run alternately ``repeats`` times on
    the batch ``images`` ``[B, C, H, W]`` (both sides see the same machine load); medians in ms per image and their
    ratio go to ``"results"``, with the machine, its load average and the thread count.
    """
    candidates = {
        **{p.stem: FFTDetector.load(p).scores for p in sorted(guard_dir.glob("detector_*.pt"))},
        **{p.stem: Reformer.load(p) for p in sorted(guard_dir.glob("reformer_*.pt"))},
    }
    rows = {}
    for name, fn in candidates.items():
        with torch.no_grad():
            seg_s, guard_s = interleaved([lambda: network(images), lambda fn=fn: fn(images)], repeats)
        seg_ms, guard_ms = 1000 * seg_s / len(images), 1000 * guard_s / len(images)
        rows[name] = {
            "ms_per_image": round(guard_ms, 3),
            "segmentation_ms_per_image": round(seg_ms, 3),
            "ratio_to_segmentation": round(guard_ms / seg_ms, 3),
        }
        ratio = rows[name]["ratio_to_segmentation"]
        print(f"{name:32s} {guard_ms:8.2f} ms/image, segmentation {seg_ms:8.2f} ms/image, ratio {ratio}")
    return {
        "batch": len(images),
        "image_shape": list(images.shape[1:]),
        "repeats": repeats,
        "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()} {platform.processor()}".strip(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "torch": torch.__version__,
        "results": rows,
    }
