"""Train the learned OCT codec on oct-kermany (:func:`medsecure_transforms.codecs.oct.training.train_codec`).

Compression + reconstruction CNNs against a 70x70 PatchGAN, loss ``L_adv + lam * (1 - MS-SSIM)``; the checkpoint with
the best validation MS-SSIM is kept (float16 weights), its record written next to it as ``.json``.

Example (the committed CPU-sized ratio-40 model)::

    nice -n 10 python scripts/train_oct_codec.py --ratio 40 --out bundles/oct_codec/models/model_r40.pt
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from medsecure_transforms.cli.arguments import add_data_root_argument, add_threads_argument
from medsecure_transforms.codecs.oct import RATIO_PRESETS
from medsecure_transforms.codecs.oct.training import train_codec
from medsecure_transforms.evaluation.oct_data import default_cache_dir, load_canvases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ratio", type=int, choices=sorted(RATIO_PRESETS), default=40)
    parser.add_argument("--no-skips", action="store_true", help="ablation: every symbol in the bottleneck")
    parser.add_argument("--no-preprocessing", action="store_true", help="ablation: raw B-scans (no NLM, no ROI)")
    parser.add_argument("--full-size", action="store_true", help="paper widths (64..512) instead of 16..128")
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--lam", type=float, default=100.0, help="MS-SSIM weight lambda")
    parser.add_argument("--disc-channels", type=int, default=16, help="PatchGAN width (pix2pix: 64)")
    parser.add_argument("--val-every", type=int, default=100)
    parser.add_argument("--val-limit", type=int, default=None, help="first N validation canvases only")
    add_threads_argument(parser, 1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", default=str(default_cache_dir()))
    add_data_root_argument(parser)
    parser.add_argument("--init", default=None, help="start from this model file (same ratio and widths)")
    parser.add_argument("--out", required=True, help="model file (.pt); metrics go to the same name .json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    preprocess = not args.no_preprocessing
    summary = train_codec(
        load_canvases("training", preprocess, args.cache_dir, args.data_root),
        load_canvases("validation", preprocess, args.cache_dir, args.data_root, limit=args.val_limit),
        args.out,
        ratio=args.ratio,
        skips=not args.no_skips,
        full_size=args.full_size,
        steps=args.steps,
        batch=args.batch,
        crop=args.crop,
        lr=args.lr,
        lam=args.lam,
        disc_channels=args.disc_channels,
        val_every=args.val_every,
        seed=args.seed,
        init=args.init,
        preprocessing=preprocess,
        command=" ".join(sys.argv),
    )
    print(json.dumps({k: v for k, v in summary.items() if k != "history"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
