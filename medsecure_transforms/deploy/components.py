"""The app's defense and detector for 3D volumes, their calibration, and the artefacts shipped with the app.

* Defense: ``FrequencyRefined(keys="image", table=<DQ-table>)`` on the network input ``[1, X, Y, Z]`` in
  ``[0, 1]``; the 8x8 block DCT runs in every axial ``(X, Y)`` slice (the DICOM slice plane).
* Detector: :class:`VolumeDetector` scores each axial slice with a 2D :class:`FFTDetector` (slices zero-padded to
  the network's size multiple) and takes the maximum; the volume is flagged when that maximum exceeds a threshold
  calibrated on clean volumes at a volume-level false-positive rate (``threshold_at_fpr``).

``python -m medsecure_transforms.deploy.components`` calibrates both on ``hippocampus-msd`` training cases and
writes :data:`DEFAULT_TABLE` and :data:`DEFAULT_DETECTOR` (see ``docs/deploy.md`` for the command and numbers).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.transforms import ScaleIntensity, SpatialPad
from tqdm import tqdm

from ..data import load_datalist, loading_transforms, resolve_data_root
from ..defenses import FFTDetector, fit_defensive_table, threshold_at_fpr
from ..transforms import FrequencyRefined

ARTEFACTS = Path(__file__).resolve().parent / "artefacts"
DEFAULT_TABLE = ARTEFACTS / "hippocampus_fr_table.json"
DEFAULT_DETECTOR = ARTEFACTS / "hippocampus_fft_detector.pt"
DEFAULT_QS = (20.0, 10.0, 60.0)  # FR(20, 10, 60), one of the paper's two selected DQ-tables
DATASET = "hippocampus-msd"
CANVAS = (64, 64)  # axial slice canvas of the detector (hippocampus-msd slices are at most 43 x 59)


def default_defense(table: str | Path | None = None) -> FrequencyRefined:
    """``FrequencyRefined`` on key ``image`` with ``table`` (a DQ-table JSON; default :data:`DEFAULT_TABLE`)."""
    return FrequencyRefined(keys="image", table=str(table or DEFAULT_TABLE))


def axial_slices(volume: torch.Tensor, canvas: Sequence[int]) -> torch.Tensor:
    """``[C, X, Y, Z]`` -> ``[Z, C, *canvas]``: axial slices zero-padded (centred) onto a fixed ``canvas``."""
    if volume.ndim != 4:
        raise ValueError(f"expected a channel-first volume [C, X, Y, Z], got shape {tuple(volume.shape)}")
    if volume.shape[1] > canvas[0] or volume.shape[2] > canvas[1]:
        raise ValueError(f"slices {tuple(volume.shape[1:3])} are larger than the detector canvas {tuple(canvas)}")
    padded = SpatialPad((*canvas, -1))(torch.as_tensor(volume).float())
    return torch.as_tensor(padded).permute(3, 0, 1, 2).contiguous()


def max_slice_score(detector: FFTDetector, volume: torch.Tensor) -> tuple[float, int]:
    """Largest axial-slice reconstruction error of ``volume`` and its slice index."""
    scores = detector.score_batches(axial_slices(volume, detector.calibration["canvas"]))
    return float(scores.max()), int(scores.argmax())


class VolumeDetector:
    """Slice-wise :class:`FFTDetector` verdict for a volume: ``score`` = max slice reconstruction error.

    Args:
        detector: a trained 2D detector whose ``threshold`` is the volume-level threshold and whose
            ``calibration["canvas"]`` is the slice canvas it was trained on (see :func:`calibrate_detector`).
    """

    def __init__(self, detector: FFTDetector) -> None:
        if detector.threshold is None or "canvas" not in detector.calibration:
            raise ValueError("the detector needs a volume-level threshold and canvas: use calibrate_detector()")
        self.detector = detector

    def __call__(self, volume: torch.Tensor) -> dict[str, Any]:
        score, worst = max_slice_score(self.detector, volume)
        return {
            "detector": self.detector.name,
            "score": score,
            "threshold": float(self.detector.threshold),
            "flagged": score > self.detector.threshold,
            "worst_slice": worst,
            "calibration": self.detector.calibration,
        }


def default_detector(path: str | Path | None = None) -> VolumeDetector:
    """:class:`VolumeDetector` from an :class:`FFTDetector` artefact (default :data:`DEFAULT_DETECTOR`)."""
    return VolumeDetector(FFTDetector.load(path or DEFAULT_DETECTOR))


def network_inputs(data_root: str | Path | None, split: str, limit: int) -> list[torch.Tensor]:
    """``[1, X, Y, Z]`` volumes of ``hippocampus-msd`` scaled to ``[0, 1]`` per volume (min-max)."""
    load, scale = loading_transforms(DATASET, ["image"]), ScaleIntensity(minv=0.0, maxv=1.0)
    items = load_datalist(DATASET, split, resolve_data_root(data_root), limit=limit)
    return [torch.as_tensor(scale(load(item)["image"])) for item in tqdm(items, desc=f"load {split}")]


def calibrate_table(volumes: Iterable[torch.Tensor], qs: Sequence[float] = DEFAULT_QS):
    """DQ-table from the DCT band statistics of every axial slice of ``volumes``."""
    slices = (v[..., z] for v in volumes for z in range(v.shape[-1]))
    return fit_defensive_table(slices, qs, dataset=DATASET)


def calibrate_detector(
    train: Sequence[torch.Tensor],
    validation: Sequence[torch.Tensor],
    canvas: Sequence[int] = CANVAS,
    t_fp: float = 0.05,
    epochs: int = 10,
    seed: int = 0,
) -> FFTDetector:
    """Train a small shifted-Fourier UNet on the axial slices of ``train``; threshold at ``t_fp`` per volume.

    The threshold is :func:`threshold_at_fpr` of the max-slice scores of the clean ``validation`` volumes, so at
    most a fraction ``t_fp`` of them is flagged.
    """
    torch.manual_seed(seed)
    detector = FFTDetector("unet", in_channels=1, network_kwargs={"channels": [8, 16, 32]})
    detector.calibration = {"canvas": list(canvas)}
    detector.fit(torch.cat([axial_slices(v, canvas) for v in train]), epochs=epochs, batch_size=32, seed=seed)
    volume_scores = torch.tensor([max_slice_score(detector, v)[0] for v in validation])
    detector.threshold, stats = threshold_at_fpr(volume_scores, t_fp)
    detector.calibration = {"canvas": list(canvas), "aggregation": "max over axial slices", **stats}
    return detector


def main(argv: list[str] | None = None) -> int:
    """Calibrate the shipped DQ-table and detector on hippocampus-msd (training / validation splits)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--train-cases", type=int, default=40)
    parser.add_argument("--validation-cases", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--t-fp", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    train = network_inputs(args.data_root, "training", args.train_cases)
    validation = network_inputs(args.data_root, "validation", args.validation_cases)
    ARTEFACTS.mkdir(exist_ok=True)
    table = calibrate_table(train)
    table.save(DEFAULT_TABLE)
    detector = calibrate_detector(train, validation, t_fp=args.t_fp, epochs=args.epochs, seed=args.seed)
    detector.save(DEFAULT_DETECTOR)
    print(json.dumps({"table": table.name, "detector": detector.state()}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
