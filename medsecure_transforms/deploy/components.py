"""The app's defense and detector, their calibration on the bundle's network inputs, and the shipped artefacts.

* Defense: ``FrequencyRefined(keys="image", table=<DQ-table>)`` on the network input ``[1, X, Y, Z]`` in ``[0, 1]``;
  the 8x8 block DCT runs in every axial ``(X, Y)`` slice (the DICOM slice plane).
* Detector: ``FFTDetect(<FFTDetector artefact>, policy="flag")``: a 2D shifted-Fourier reconstruction-error
  detector scoring each axial slice of the network input; the volume score is the largest slice score and the
  threshold is calibrated on clean validation volumes at a volume-level false-positive rate (``threshold_at_fpr``).

Both are calibrated on the ``hippocampus_seg`` bundle's own preprocessing (``configs/evaluate.json``: min-max
scaling and pad/crop to 48 x 64 x 48), i.e. on exactly what the network sees.
``python -m medsecure_transforms.deploy.components`` writes :data:`DEFAULT_TABLE` and :data:`DEFAULT_DETECTOR`
(command and numbers in ``docs/deploy.md``).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm import tqdm

from ..bundle import bundle_preprocessing
from ..defenses import FFTDetector, QuantTable, fit_defensive_table, threshold_at_fpr
from ..transforms import FFTDetect, FrequencyRefined

ARTEFACTS = Path(__file__).resolve().parent / "artefacts"
DEFAULT_TABLE = ARTEFACTS / "hippocampus_fr_table.json"
DEFAULT_DETECTOR = ARTEFACTS / "hippocampus_fft_detector.pt"
DEFAULT_QS = (20.0, 10.0, 60.0)  # FR(20, 10, 60), one of the paper's two selected DQ-tables
BUNDLE = "hippocampus_seg"


def default_defense(table: str | Path | None = None) -> FrequencyRefined:
    """``FrequencyRefined`` on key ``image`` with ``table`` (a DQ-table JSON; default :data:`DEFAULT_TABLE`)."""
    return FrequencyRefined(keys="image", table=str(table or DEFAULT_TABLE))


def default_detector(path: str | Path | None = None) -> FFTDetect:
    """``FFTDetect`` (policy ``"flag"``) with an :class:`FFTDetector` artefact (default :data:`DEFAULT_DETECTOR`)."""
    return FFTDetect(str(path or DEFAULT_DETECTOR), policy="flag", expected_domain="shifted_frequency")


def axial_slices(volume: torch.Tensor) -> torch.Tensor:
    """``[C, X, Y, Z]`` -> ``[Z, C, X, Y]`` (the slicing FFTDetect applies to a volume)."""
    if volume.ndim != 4:
        raise ValueError(f"expected a channel-first volume [C, X, Y, Z], got shape {tuple(volume.shape)}")
    return torch.as_tensor(volume).float().permute(3, 0, 1, 2).contiguous()


def network_inputs(split: str, limit: int, data_root: str | Path | None = None) -> list[torch.Tensor]:
    """The bundle's network inputs ``[1, 48, 64, 48]`` in ``[0, 1]`` for ``limit`` cases of ``split``."""
    items, transform = bundle_preprocessing(BUNDLE, split, data_root=data_root, limit=limit)
    return [torch.as_tensor(transform(item)["image"]) for item in tqdm(items, desc=f"preprocess {split}")]


def calibrate_table(volumes: Sequence[torch.Tensor], qs: Sequence[float] = DEFAULT_QS) -> QuantTable:
    """DQ-table (Eq. 7) from the DCT band statistics of every axial slice of ``volumes``."""
    return fit_defensive_table((v[..., z] for v in volumes for z in range(v.shape[-1])), qs, dataset=BUNDLE)


def calibrate_detector(
    train: Sequence[torch.Tensor],
    validation: Sequence[torch.Tensor],
    t_fp: float = 0.05,
    epochs: int = 4,
    seed: int = 0,
    channels: Sequence[int] = (8, 16, 32),
) -> FFTDetector:
    """Train a small shifted-Fourier UNet on the axial slices of ``train``; threshold at ``t_fp`` per volume.

    The threshold is :func:`threshold_at_fpr` of the max-slice scores of the clean ``validation`` volumes, so at
    most a fraction ``t_fp`` of them is flagged by ``FFTDetect`` (which flags a volume when any slice exceeds it).
    """
    torch.manual_seed(seed)
    detector = FFTDetector("unet", in_channels=1, network_kwargs={"channels": list(channels)})
    detector.fit(torch.cat([axial_slices(v) for v in train]), epochs=epochs, batch_size=32, seed=seed)
    scores = torch.stack([detector.score_batches(axial_slices(v)).max() for v in validation])
    detector.threshold, stats = threshold_at_fpr(scores, t_fp)
    detector.calibration = {"aggregation": "max over axial slices", "unit": "volume", **stats}
    return detector


def main(argv: list[str] | None = None) -> int:
    """Calibrate the shipped DQ-table and detector on the bundle's training / validation network inputs."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--train-cases", type=int, default=16)
    parser.add_argument("--validation-cases", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--t-fp", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    train = network_inputs("training", args.train_cases, args.data_root)
    validation = network_inputs("validation", args.validation_cases, args.data_root)
    ARTEFACTS.mkdir(exist_ok=True)
    table = calibrate_table(train)
    table.save(DEFAULT_TABLE)
    detector = calibrate_detector(train, validation, t_fp=args.t_fp, epochs=args.epochs, seed=args.seed)
    detector.save(DEFAULT_DETECTOR)
    print(json.dumps({"table": table.name, "detector": detector.state()}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
