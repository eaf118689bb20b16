"""Park et al.'s FFTDetect study on a bundle: Table 1 (detector ROC-AUC), Table 2 (Dice of 16 detector/reformer
combinations) and an adaptive attacker (:mod:`medsecure_transforms.evaluation.fft_study` describes the numbers).

Writes ``results.json``, ``tables.md``, ``roc.png`` and ``dice_combinations.png`` to ``--out``; adversarial images
are cached under ``--cache`` keyed by the slices, the weights and the attack settings.

    nice -n 10 python scripts/reproduce_fft_detect.py --bundle cardiac_slice_seg \
        --guard-dir bundles/cardiac_slice_seg/models/guard --out results/fft_detect/cardiac_slice_seg
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

import torch

from medsecure_transforms.evaluation.fft_study import FFTStudySettings, run_bundle_study


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default="cardiac_slice_seg")
    parser.add_argument("--guard-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cache", type=Path, default=Path("runs/fft_detect"))
    parser.add_argument("--slices", type=int, default=16, help="test slices attacked (clean set = same slices)")
    parser.add_argument("--test-cases", type=int, default=None, help="test cases loaded to pick the slices from")
    for f in fields(FFTStudySettings):  # --dag-iter ... --adaptive-weight, --seed
        flag = "--" + f.name.replace("_", "-")
        parser.add_argument(flag, type=type(f.default), default=f.default, help=f.metadata.get("help"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    settings = FFTStudySettings(**{f.name: getattr(args, f.name) for f in fields(FFTStudySettings)})
    run_bundle_study(
        args.bundle,
        args.guard_dir,
        args.out,
        settings,
        slices=args.slices,
        test_cases=args.test_cases,
        cache=args.cache,
        data_root=args.data_root,
        record=vars(args),
    )
    print((args.out / "tables.md").read_text())


if __name__ == "__main__":
    main()
