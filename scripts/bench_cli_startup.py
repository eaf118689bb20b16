"""Start-up time of the ``medsecure`` command: ``medsecure --help`` and each subcommand's ``--help``.

Each command runs in a fresh process, ``--repeats`` times (after one warm-up, interleaved so load changes hit all
alike); prints the median wall seconds per command and the machine. A benchmark, not a test: the figure in README.md
comes from here.

    python scripts/bench_cli_startup.py --repeats 5
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys

from medsecure_transforms.cli.arguments import positive_int
from medsecure_transforms.evaluation.benchmarking import interleaved, machine_info

# every parser of `medsecure` (tests/test_cli_startup.py checks that this is the full list)
COMMANDS = ("", "calibrate", "calibrate fr", "calibrate mv3d", "compress", "decompress", "demo", "evaluate", "overlay")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=positive_int, default=5, help="timed runs per command")
    args = parser.parse_args()
    program = (
        [shutil.which("medsecure")] if shutil.which("medsecure") else [sys.executable, "-m", "medsecure_transforms.cli"]
    )

    def runner(command: str):
        argv = [*program, *command.split(), "--help"]
        return lambda: subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    medians = interleaved([runner(c) for c in COMMANDS], args.repeats)
    for command, seconds in zip(COMMANDS, medians, strict=True):
        print(f"{seconds:6.3f} s  medsecure {command + ' ' if command else ''}--help")
    result = {
        "program": " ".join(program),
        "repeats": args.repeats,
        "median_s": dict(zip([c or "(top level)" for c in COMMANDS], [round(s, 3) for s in medians], strict=True)),
        "slowest_s": round(max(medians), 3),
        "machine": machine_info(load_average=True),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
