"""Study of the learned OCT codec on the oct-kermany test split (Guo, Li, Li 2019, Figs. 3 and 4).

Every committed model ``bundles/oct_codec/models/model_r{10,20,40,80}.pt`` against JPEG and JPEG 2000 set per image
to the largest file not above the learned stream (the same measured ratio); MS-SSIM and PSNR on whole canvases; the
Fig. 4 ablation with the ``ablation_r40_*.pt`` models present (:mod:`medsecure_transforms.evaluation.oct_study`).
Writes ``study.{json,md}``, ``ms_ssim_vs_ratio.png`` and ``panel_r40.png`` to ``results/oct_codec/``.

    nice -n 10 python scripts/reproduce_oct_codec.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from medsecure_transforms.cli.arguments import add_data_root_argument, add_threads_argument
from medsecure_transforms.evaluation.oct_data import default_cache_dir, load_canvases
from medsecure_transforms.evaluation.oct_study import oct_study

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_root_argument(parser)
    parser.add_argument("--cache-dir", default=str(default_cache_dir()))
    parser.add_argument("--limit", type=int, default=None, help="first N test images only")
    parser.add_argument("--out", default=str(REPO / "results" / "oct_codec"))
    add_threads_argument(parser, 1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    oct_study(
        lambda preprocess: load_canvases("test", preprocess, args.cache_dir, args.data_root, limit=args.limit),
        REPO / "bundles" / "oct_codec" / "models",
        args.out,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
