"""``medsecure calibrate mv3d``: Q_min / Q_max of MVCompress3D from a segmentation bundle (paper Sec. 3.2.2).

Scores are the bundle network's mean foreground Dice on the decoded ``--split`` volumes. Writes
``<output>/mv3d_codec.json`` (load with ``MVWaveletCodec.load`` or pass to ``medsecure compress --state``) and
``<output>/mv3d_calibration.json`` (both corner-case curves).

    medsecure calibrate mv3d --bundle cardiac_seg --split validation --output results/mv3d/calibration
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ..codecs.mvc import PAPER_CANDIDATES, MVWaveletCodec, calibrate_step_bounds
from ..evaluation.mv3d_study import BundleSegmenter
from .arguments import add_data_root_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("mv3d", help="MVCompress3D step bounds from a segmentation bundle (corner cases)")
    parser.add_argument("--bundle", default="cardiac_seg", help="3D segmentation bundle")
    parser.add_argument("--split", default="validation", help="split whose volumes are scored")
    parser.add_argument("--limit", type=int, default=None, help="first N volumes only")
    parser.add_argument("--candidates", type=float, nargs="+", default=list(PAPER_CANDIDATES))
    parser.add_argument("--tolerance", type=float, default=0.01, help="largest accepted mean-Dice drop")
    parser.add_argument("--state", help="starting codec parameters (JSON); default the paper's")
    parser.add_argument("--output", default="results/mv3d/calibration")
    add_data_root_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(1)
    segmenter = BundleSegmenter(args.bundle, args.split, args.data_root, args.limit)
    cases = list(segmenter.cases())
    codec = MVWaveletCodec.load(args.state) if args.state else MVWaveletCodec()
    calibrated, report = calibrate_step_bounds(
        [raw for _, _, raw in cases],
        lambda i, volume: segmenter.mean_dice(cases[i][1], volume),
        codec=codec,
        candidates=args.candidates,
        tolerance=args.tolerance,
    )
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    calibrated.save(out / "mv3d_codec.json")
    report.update({"bundle": args.bundle, "split": args.split, "cases": [name for name, _, _ in cases]})
    (out / "mv3d_calibration.json").write_text(json.dumps(report, indent=2) + "\n")
    print(
        json.dumps(
            {k: report[k] for k in ("reference_score", "q_min", "q_max", "lower_corner_met", "upper_corner_met")},
            indent=2,
        )
    )
    return 0
