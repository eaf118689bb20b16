"""End-to-end wall time and peak memory of the deploy app on hippocampus DICOM series, and the share of the
defense (FrequencyRefine) and the detector (FFTDetect) in it
(:mod:`medsecure_transforms.deploy.benchmark`). Writes ``--out``/bench.{json,md}.

    nice -n 10 python scripts/bench_deploy.py --cases 3
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from medsecure_transforms.cli.arguments import add_data_root_argument, add_threads_argument
from medsecure_transforms.deploy.benchmark import benchmark_deploy, deploy_markdown


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=3)
    add_data_root_argument(parser)
    add_threads_argument(parser, 1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise-cases", type=int, default=20, help="test volumes for the detector noise check")
    parser.add_argument("--epsilon", type=float, default=8 / 255, help="noise amplitude of the detector check")
    parser.add_argument("--out", default="results/deploy")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = benchmark_deploy(
        cases=args.cases,
        data_root=args.data_root,
        seed=args.seed,
        noise_cases=args.noise_cases,
        epsilon=args.epsilon,
        command=f"nice -n 10 python scripts/bench_deploy.py --cases {args.cases} --threads {args.threads} "
        f"--noise-cases {args.noise_cases}",
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(result, indent=2))
    (out / "bench.md").write_text(deploy_markdown(result))
    print(deploy_markdown(result), end="")
    return 0


if __name__ == "__main__":
    start = time.perf_counter()
    code = main()
    print(f"bench finished in {time.perf_counter() - start:.1f} s")
    raise SystemExit(code)
