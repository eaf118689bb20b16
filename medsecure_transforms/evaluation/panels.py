"""PNG panel of an attack: image, perturbation x10, target, and predictions clean / adversarial / defended.

3D volumes show their middle slice along the last spatial axis. Images with 3 channels are shown as RGB, others by
their first channel in grey; label maps use one fixed colour per class (``tab10``, classes 0..9).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

__all__ = ["PanelRow", "save_panel"]

PanelRow = Mapping[str, torch.Tensor]
"""One sample: ``image``, ``adversarial`` ``[C, *spatial]``; ``target`` and ``pred/<condition>`` ``[1, *spatial]``."""

PERTURBATION_GAIN = 10.0


def _plane(array: torch.Tensor) -> np.ndarray:
    """``[C, *spatial]`` -> ``[C, H, W]`` numpy, the middle slice of the last axis for 3D."""
    array = array.detach().float().cpu()
    if array.ndim == 4:
        array = array[..., array.shape[-1] // 2]
    return array.numpy()


def _as_picture(image: np.ndarray) -> tuple[np.ndarray, str | None]:
    """``[C, H, W]`` -> an ``imshow``-able array in [0, 1] and its colour map."""
    if image.shape[0] == 3:
        return np.clip(np.moveaxis(image, 0, -1), 0, 1), None
    return np.clip(image[0], 0, 1), "gray"


def save_panel(rows: Sequence[PanelRow], conditions: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Write a grid with one row per sample and columns image, perturbation, target, ``pred/<condition>``..."""
    columns = ["image", f"perturbation x{PERTURBATION_GAIN:g}", "target", *conditions]
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(2.2 * len(columns), 2.2 * len(rows)), squeeze=False)
    for r, row in enumerate(rows):
        image = _plane(row["image"])
        delta = _plane(row["adversarial"]) - image
        pictures = [
            _as_picture(image),
            _as_picture(0.5 + PERTURBATION_GAIN * delta),
            (_plane(row["target"])[0], "tab10"),
            *[(_plane(row[f"pred/{c}"])[0], "tab10") for c in conditions],
        ]
        for c, (picture, cmap) in enumerate(pictures):
            ax = axes[r, c]
            labels = c >= 2
            ax.imshow(picture, cmap=cmap, vmin=0, vmax=9 if labels else 1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(columns[c].replace("_", " "), fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
