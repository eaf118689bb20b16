"""Encode + decode time per 256x256 B-scan: the learned OCT codec vs JPEG 2000 (OpenJPEG) and JPEG (Pillow).

The tiles are the first 256 lateral samples of preprocessed oct-kermany test canvases; JPEG 2000 and JPEG are set per
tile to the largest file not above the learned stream (the same measured ratio, printed). The codecs are timed
alternately per tile, medians of ``--repeats`` passes; the learned codec also runs on CUDA when available (the
paper: 0.04 s per 512x256 image on an 11 GB GPU) (:mod:`medsecure_transforms.evaluation.oct_benchmark`).
Writes ``results/oct_codec/bench.{json,md}``.

    nice -n 10 python scripts/bench_oct_codec.py --model bundles/oct_codec/models/model_r40.pt
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from medsecure_transforms.cli.arguments import add_data_root_argument, add_threads_argument
from medsecure_transforms.evaluation.oct_benchmark import bench_markdown, bench_oct_codec
from medsecure_transforms.evaluation.oct_data import default_cache_dir, load_canvases

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(REPO / "bundles" / "oct_codec" / "models" / "model_r40.pt"))
    parser.add_argument("--tiles", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    add_threads_argument(parser, 1)
    add_data_root_argument(parser)
    parser.add_argument("--cache-dir", default=str(default_cache_dir()))
    parser.add_argument("--out", default=str(REPO / "results" / "oct_codec"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    canvases = load_canvases("test", True, args.cache_dir, args.data_root, limit=args.tiles)
    result = bench_oct_codec(args.model, canvases, args.repeats)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(result, indent=2))
    (out / "bench.md").write_text(bench_markdown(result))
    print(bench_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
