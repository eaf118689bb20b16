"""``medsecure calibrate mv3d``: Q_min / Q_max of MVCompress3D from a segmentation bundle (paper Sec. 3.2.2).

Scores are the bundle's mean foreground Dice (its inferer, network and post-processing) on decoded volumes,
compressed where its preprocessing has loaded them (docs/mv_compress3d.md): by default the ``validate#dataset#data``
of its train config (read before its evaluation configs), else its own data; ``--datalist`` / ``--split`` choose
others. Writes
``<output-dir>/mv3d_codec.json`` (load with ``MVWaveletCodec.load`` or pass to ``medsecure compress --state``) and
``<output-dir>/mv3d_calibration.json`` (both corner-case curves).

    medsecure calibrate mv3d --bundle cardiac_seg --split validation --output-dir results/mv3d/calibration
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .arguments import (
    VALIDATE_DATALIST,
    add_adapter_arguments,
    add_command,
    add_output_dir_argument,
    add_threads_argument,
    calibration_adapter,
    float32_positive,
    probability,
)
from .codec import load_state
from .outputs import check_outputs, staged_folder


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers,
        "mv3d",
        help="MVCompress3D step bounds from a segmentation bundle (corner cases)",
        description=__doc__,
        func=run,
    )
    add_adapter_arguments(parser, "cardiac_seg", "first N volumes only")
    parser.add_argument(
        "--candidates",
        type=float32_positive,
        nargs="+",
        help="step candidates (default: the paper's 0.25 0.5 1 2 4 8 16 32 64)",
    )
    parser.add_argument("--tolerance", type=probability, default=0.01, help="largest accepted mean-Dice drop")
    parser.add_argument("--state", help="starting codec parameters (JSON; default: the paper's)")
    add_output_dir_argument(parser, "results/mv3d/calibration", "folder for mv3d_codec.json, mv3d_calibration.json")
    add_threads_argument(parser)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..codecs.mvc import PAPER_CANDIDATES, MVWaveletCodec, calibrate_step_bounds
    from ..evaluation.mv3d_study import BundleSegmenter

    check_outputs([args.output_dir], [args.state] if args.state else [], args.overwrite)
    torch.set_num_threads(args.threads)
    codec = MVWaveletCodec.from_dict(load_state(args.state)) if args.state else MVWaveletCodec()
    adapter = calibration_adapter(args, args.datalist, args.split, VALIDATE_DATALIST)
    segmenter = BundleSegmenter(adapter, args.limit)
    cases = list(segmenter.cases())
    calibrated, report = calibrate_step_bounds(
        [raw for _, _, raw in cases],
        lambda i, volume: segmenter.mean_dice(cases[i][1], volume),
        codec=codec,
        candidates=args.candidates or PAPER_CANDIDATES,
        tolerance=args.tolerance,
    )
    report.update(
        {
            "bundle": adapter.name,
            "config_files": [str(f) for f in adapter.config_files],
            "ids": adapter.ids,
            "split": args.split,
            "cases": [name for name, _, _ in cases],
        }
    )
    with staged_folder(args.output_dir) as staging:
        calibrated.save(staging / "mv3d_codec.json")
        (staging / "mv3d_calibration.json").write_text(json.dumps(report, indent=2) + "\n")
    print(
        json.dumps(
            {k: report[k] for k in ("reference_score", "q_min", "q_max", "lower_corner_met", "upper_corner_met")},
            indent=2,
        )
    )
    print(f"wrote {Path(args.output_dir) / 'mv3d_codec.json'}, {Path(args.output_dir) / 'mv3d_calibration.json'}")
    return 0
