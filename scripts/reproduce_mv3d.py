"""Reproduce the MVCompress3D study (Liu et al., CVPR 2019) on our data: rate vs segmentation accuracy.

Every test volume of a 3D segmentation bundle is compressed before the bundle's preprocessing by MVCompress3D
(``mv3d``), the same wavelet codec with JPEG 2000's human-vision steps (``jpeg2000_rule``) and OpenJPEG
(``openjpeg``) at matched ratios, plus lossless zstd as the reference ratio; the bundle network segments each decoded
volume (:func:`medsecure_transforms.evaluation.mv3d_study.run_mv3d_study`).

Outputs (``--out``, default ``results/mv3d``): ``rows.jsonl`` (written row by row; ``--resume`` continues an
interrupted run from it), ``rows.csv`` (case x codec x ratio), ``summary.json``, ``table_cr<R>.md`` (the paper's
Table 1 at equal ratio), ``equal_dice.md`` (ratio each codec reaches at the original Dice minus ``--dice-drop``; the
paper's Fig. 6), ``rate_dice.png``.

    nice -n 10 python scripts/reproduce_mv3d.py --bundle cardiac_seg --ratios 15 30 60 120 240 --table-ratio 30
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from medsecure_transforms.cli.arguments import add_data_root_argument, add_threads_argument
from medsecure_transforms.codecs.mvc import MVWaveletCodec
from medsecure_transforms.evaluation.mv3d_study import CODECS, run_mv3d_study


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bundle", default="cardiac_seg", help="3D segmentation bundle (cardiac_seg, hippocampus_seg)")
    p.add_argument("--split", default="test")
    add_data_root_argument(p)
    p.add_argument("--ratios", type=float, nargs="+", default=[15, 30, 60, 120, 240])
    p.add_argument("--table-ratio", type=float, default=30.0, help="ratio of the equal-rate table (paper: 30)")
    p.add_argument("--dice-drop", type=float, default=0.01, help="Dice loss tolerated in the equal-Dice comparison")
    p.add_argument("--codecs", nargs="+", choices=CODECS, default=list(CODECS))
    p.add_argument("--state", help="MVCompress3D parameters (JSON); default the paper's")
    p.add_argument("--limit", type=int, default=None, help="first N cases only")
    p.add_argument("--out", default="results/mv3d")
    p.add_argument("--resume", action="store_true", help="keep the rows of an interrupted run in --out/rows.jsonl")
    add_threads_argument(p, 1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    run_mv3d_study(
        args.bundle,
        args.out,
        ratios=args.ratios,
        codecs=args.codecs,
        codec=MVWaveletCodec.load(args.state) if args.state else None,
        split=args.split,
        data_root=args.data_root,
        limit=args.limit,
        table_ratio=args.table_ratio,
        dice_drop=args.dice_drop,
        resume=args.resume,
        command=" ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
    )
    print((Path(args.out) / f"table_cr{args.table_ratio:g}.md").read_text())
    print((Path(args.out) / "equal_dice.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
