"""Train and calibrate the FFTDetect detectors and the reformers of Park et al.'s study on a bundle's clean images.

Detectors (Table 1 of the paper): MagNet autoencoders I and II (spatial), UNet and FC-DenseNet in the spatial,
frequency and shifted-frequency domains. Reformers: autoencoders I and II, UNet, FC-DenseNet (spatial). Every network
learns to reconstruct the clean *training* slices of the bundle; every detector is calibrated on the clean
*validation* slices at false-positive rate ``--t-fp``. One artefact per network: ``<out>/detector_<name>.pt`` /
``<out>/reformer_<name>.pt`` plus ``<out>/training.json`` (recipe, losses, thresholds, wall times).

    nice -n 10 python scripts/train_detectors.py --bundle cardiac_slice_seg \
        --out bundles/cardiac_slice_seg/models/guard --epochs 8
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from medsecure_transforms.bundle import load_split_tensors
from medsecure_transforms.defenses import FFTDetector, Reformer

# CPU-sized widths (the paper does not state its widths); recorded in every artefact's metadata.
NETWORK_KWARGS = {
    "unet": {"channels": [8, 16, 32, 64]},
    "densenet": {"stem_channels": 8, "growth_rate": 6, "layers_per_block": 2, "levels": 3},
    "autoencoder1": {},
    "autoencoder2": {},
}
# Training order: what the 16 detector/reformer combinations need first, the Table-1-only detectors last.
JOBS = [
    ("detector", "unet", "shifted_frequency"),
    ("detector", "autoencoder1", "spatial"),
    ("detector", "autoencoder2", "spatial"),
    ("reformer", "unet", "spatial"),
    ("reformer", "autoencoder1", "spatial"),
    ("reformer", "autoencoder2", "spatial"),
    ("detector", "unet", "frequency"),
    ("detector", "densenet", "shifted_frequency"),
    ("reformer", "densenet", "spatial"),
    ("detector", "densenet", "frequency"),
    ("detector", "unet", "spatial"),
    ("detector", "densenet", "spatial"),
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default="cardiac_slice_seg")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-5)
    parser.add_argument("--reformer-noise", type=float, default=0.025, help="MagNet-style denoising noise std")
    parser.add_argument("--t-fp", type=float, default=0.05)
    parser.add_argument("--limit", type=int, default=None, help="training cases (volumes or images); all validation")
    parser.add_argument("--only", nargs="*", default=None, help="train only these names (e.g. unet_shifted_frequency)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    train, _ = load_split_tensors(args.bundle, "training", args.data_root, args.limit, slices=True, progress=True)
    val, _ = load_split_tensors(args.bundle, "validation", args.data_root, slices=True, progress=True)
    channels = train.shape[1]
    log_path = args.out / "training.json"
    log = json.loads(log_path.read_text()) if log_path.is_file() else {}
    setup = {
        "bundle": args.bundle,
        "train_slices": len(train),
        "val_slices": len(val),
        "shape": list(train.shape[1:]),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "reformer_noise": args.reformer_noise,
        "t_fp": args.t_fp,
        "seed": args.seed,
        "threads": args.threads,
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}",
    }
    fit = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "seed": args.seed,
    }
    for kind, arch, domain in JOBS:
        torch.manual_seed(args.seed)
        if kind == "detector":
            model = FFTDetector(arch, channels, domain, network_kwargs=NETWORK_KWARGS[arch])
        else:
            model = Reformer(arch, channels, network_kwargs=NETWORK_KWARGS[arch])
        name = f"{kind}_{model.name}"
        if args.only is not None and model.name not in args.only and name not in args.only:
            continue
        start = time.perf_counter()
        if kind == "detector":
            history = model.fit(train, **fit)
            model.calibrate(val, args.t_fp)
            entry = {"threshold": model.threshold, "calibration": model.calibration}
        else:
            history = model.fit(train, noise_std=args.reformer_noise, **fit)
            entry = {}
        seconds = time.perf_counter() - start
        model.save(args.out / f"{name}.pt")
        log = json.loads(log_path.read_text()) if log_path.is_file() else log  # parallel runs share the log
        log["setup"] = setup
        log[name] = {"loss_per_epoch": history, "train_seconds": round(seconds, 1), **entry}
        log_path.write_text(json.dumps(log, indent=2))
        print(f"{name}: loss {history[-1]:.5f}, {seconds:.0f} s", flush=True)


if __name__ == "__main__":
    main()
