"""Machine-vision quality of OCT compression: lesion-segmentation Dice on decoded B-scans (the paper measured none).

Segments the preprocessed oct-kermany test canvases with the lesion UNet ``bundles/oct_codec/models/lesion_seg.pt``
as they are and after our codec, JPEG and JPEG 2000 at the size of our stream; reports pooled Dice and the mean
per-image Dice over B-scans with a lesion (:mod:`medsecure_transforms.evaluation.oct_lesion`). Writes
``results/oct_codec/lesion_dice.{json,md}``. ``--train`` first trains a new network into ``--model`` (refused when
the file exists, unless ``--overwrite``).

    nice -n 5 python scripts/oct_lesion_dice.py --threads 1                      # evaluate the committed network
    python scripts/oct_lesion_dice.py --train --model /tmp/lesion_seg.pt --out /tmp/lesion   # retrain, then evaluate
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from medsecure_transforms.cli.arguments import add_data_root_argument, add_threads_argument
from medsecure_transforms.evaluation.oct_data import default_cache_dir, load_lesion_canvases
from medsecure_transforms.evaluation.oct_lesion import (
    lesion_dice_study,
    lesion_markdown,
    load_lesion_net,
    save_lesion_net,
    train_lesion_net,
)

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "bundles" / "oct_codec" / "models"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_root_argument(parser)
    parser.add_argument("--cache-dir", default=str(default_cache_dir()))
    parser.add_argument("--model", default=str(MODELS / "lesion_seg.pt"), help="lesion network (read, or --train)")
    parser.add_argument("--train", action="store_true", help="train a new network into --model first")
    parser.add_argument("--overwrite", action="store_true", help="with --train: replace an existing --model")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--val-every", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    add_threads_argument(parser, 1)
    parser.add_argument("--limit", type=int, default=None, help="first N test images only")
    parser.add_argument("--out", default=str(REPO / "results" / "oct_codec"))
    args = parser.parse_args(argv)
    model = Path(args.model)
    if args.train and model.exists() and not args.overwrite:
        parser.error(f"{model} exists; pass --overwrite to replace it, or another --model")
    torch.set_num_threads(args.threads)
    if args.train:
        images, masks = load_lesion_canvases("training", args.cache_dir, args.data_root)
        val_images, val_masks = load_lesion_canvases("validation", args.cache_dir, args.data_root)
        hyper = {k: getattr(args, k) for k in ("steps", "batch", "crop", "lr", "val_every", "seed")}
        net, record = train_lesion_net(images, masks, val_images, val_masks, **hyper)
        save_lesion_net(model, net, record)
        model.with_suffix(".json").write_text(json.dumps({"command": " ".join(sys.argv), **record}, indent=2) + "\n")
    net, record = load_lesion_net(model)
    images, masks = load_lesion_canvases("test", args.cache_dir, args.data_root, limit=args.limit)
    results = lesion_dice_study(net, record, images, masks, MODELS, args.out)
    print(lesion_markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
