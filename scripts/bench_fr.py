"""Throughput of FrequencyRefine on 512x512 RGB batches vs a Pillow JPEG(85) round trip and a per-block loop
(:mod:`medsecure_transforms.evaluation.fr_benchmark`).

Prints images/s, the ratios measured side by side and the machine; writes ``results/fr/bench_{cpu,gpu}.{json,md}``.

    nice -n 10 python scripts/bench_fr.py                      # CPU, 1 thread (the Pillow codec is single-threaded)
    python scripts/bench_fr.py --device cuda --batch 64        # GPU when one is available
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from medsecure_transforms.cli.arguments import add_threads_argument
from medsecure_transforms.evaluation.fr_benchmark import bench_images, throughput_markdown, time_frequency_refine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8, help="FR batch size (images per call)")
    add_threads_argument(parser, 1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--loop-images", type=int, default=1, help="images timed through the per-block loop")
    parser.add_argument("--out", default="results/fr")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images, source = bench_images(args.batch)
    result = {"source": source} | time_frequency_refine(images, args.device, args.repeats, args.loop_images)
    print(json.dumps(result, indent=2))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = "cpu" if args.device == "cpu" else "gpu"
    (out / f"bench_{tag}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"bench_{tag}.md").write_text(throughput_markdown(result))


if __name__ == "__main__":
    main()
