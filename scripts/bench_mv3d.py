"""Speed of MVCompress3D against OpenJPEG (JPEG 2000) and zstd on the same volumes, side by side.

The lossless references: MVCompress3D's lossless mode (reversible 5/3, steps 1) and zstd level 19 of the raw bytes.
Each codec encodes and decodes every volume ``--repeats`` times (interleaved, after a warm-up); reported: the median
wall time per volume, the throughput in MB/s of raw data, the compression ratio, MVCompress3D's time relative to
OpenJPEG's (set to the same ratio per volume) and the peak memory on the largest volume of ``--memory-datasets``
(:mod:`medsecure_transforms.evaluation.mv3d_benchmark`). Results: ``--out``/bench.json and bench.md.

    nice -n 10 python scripts/bench_mv3d.py --dataset cardiac-acdc --limit 6 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from medsecure_transforms.cli.arguments import add_data_root_argument, add_threads_argument
from medsecure_transforms.evaluation.mv3d_benchmark import benchmark_markdown, benchmark_mv3d


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="cardiac-acdc")
    p.add_argument("--split", default="test")
    add_data_root_argument(p)
    p.add_argument("--limit", type=int, default=6)
    p.add_argument("--repeats", type=int, default=3)
    add_threads_argument(p, 1)
    p.add_argument(
        "--memory-datasets",
        nargs="+",
        default=["cardiac-acdc", "cardiac-la2018", "brain-t1-aseg"],
        help="the peak-memory check runs on the largest 3-D volume of these datasets",
    )
    p.add_argument("--out", default="results/mv3d")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    payload = benchmark_mv3d(
        dataset=args.dataset,
        split=args.split,
        data_root=args.data_root,
        limit=args.limit,
        repeats=args.repeats,
        threads=args.threads,
        memory_datasets=args.memory_datasets,
        command=" ".join(["bench_mv3d.py", *(argv or sys.argv[1:])]),
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(payload, indent=2) + "\n")
    (out / "bench.md").write_text(benchmark_markdown(payload))
    print(benchmark_markdown(payload), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
