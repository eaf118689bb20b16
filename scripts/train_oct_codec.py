"""Train the learned OCT codec (compression + reconstruction CNNs, PatchGAN + MS-SSIM) on oct-kermany.

Loss of the generator (the paper's Eq. (2)): ``L_adv + lambda * (1 - MS-SSIM)`` with ``lambda = 100``,
MONAI's ``PatchAdversarialLoss`` (BCE) on a 70x70 ``PatchDiscriminator`` (3 stride-2 layers) and
MONAI's MS-SSIM; Adam ``betas=(0.5, 0.999)``, learning rate constant for the first half and linearly
decayed to 0 over the second half. Training crops are random ``crop x crop`` windows of the
preprocessed canvases with random flips and transposition; the checkpoint with the best validation
MS-SSIM (whole canvases, 5 scales) is kept.

Example (the committed CPU-sized ratio-40 model)::

    nice -n 10 python scripts/train_oct_codec.py --ratio 40 --out bundles/oct_codec/models/model_r40.pt
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from monai.losses import PatchAdversarialLoss
from monai.metrics.regression import compute_ms_ssim
from monai.networks.nets import PatchDiscriminator
from monai.transforms import Compose, ResizeWithPadOrCrop
from monai.utils import set_determinism
from tqdm import tqdm

from medsecure_transforms.codecs.oct import RATIO_PRESETS, LearnedOCTCodec, nominal_compression_ratio
from medsecure_transforms.data import make_dataset
from medsecure_transforms.networks.oct_compression import OCTCodecNet
from medsecure_transforms.transforms.oct import OCTDenoise, OCTGrayscale, OCTRetinaCrop

CPU_FEATURES = (16, 32, 64, 128, 128, 128)
PAPER_FEATURES = (64, 128, 256, 512, 512, 512)
TRAIN_MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363)  # 4 scales fit a 128 crop with an 11x11 window


def preprocessing(preprocess: bool, depth_size: int = 256, lateral_multiple: int = 256) -> Compose:
    """Loaded B-scan ``[3, W, H]`` -> network canvas ``[1, W', depth_size]``.

    With ``preprocess`` (the paper's pipeline): NLM denoising, retina band crop with the outside
    masked. Without (the ablation): the raw gray image zero-padded / centre-cropped to the canvas.
    """
    if preprocess:
        return Compose([OCTGrayscale(), OCTDenoise(), OCTRetinaCrop(depth_size, lateral_multiple, depth_axis=1)])
    return Compose([OCTGrayscale(), _RawCanvas(depth_size, lateral_multiple)])


class _RawCanvas:
    """Pad/crop depth to ``depth_size`` and pad the lateral size up to a multiple of ``lateral_multiple``."""

    def __init__(self, depth_size: int, lateral_multiple: int) -> None:
        self.depth_size, self.lateral_multiple = depth_size, lateral_multiple

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        lateral = -(-img.shape[1] // self.lateral_multiple) * self.lateral_multiple
        return ResizeWithPadOrCrop((lateral, self.depth_size))(img)


def load_canvases(split: str, preprocess: bool, cache_dir: Path, data_root: str | None) -> list[np.ndarray]:
    """Preprocessed ``[W', 256]`` canvases of ``split`` (cached as ``.npz`` in ``cache_dir``)."""
    cache = cache_dir / f"oct-kermany_{split}_{'pre' if preprocess else 'raw'}.npz"
    if cache.is_file():
        with np.load(cache) as data:
            return [data[k] for k in sorted(data.files, key=int)]
    dataset = make_dataset("oct-kermany", split, keys=("image",), data_root=data_root)
    pipeline = preprocessing(preprocess)
    canvases = [
        np.asarray(pipeline(item["image"]))[0].astype(np.float32)
        for item in tqdm(dataset, desc=f"preprocess {split}", file=sys.stdout)
    ]
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache, **{str(i): c for i, c in enumerate(canvases)})
    return canvases


def random_batch(canvases: list[np.ndarray], batch: int, crop: int, rng: np.random.Generator) -> torch.Tensor:
    """``[batch, 1, crop, crop]`` random windows with random flips and transposition."""
    out = np.empty((batch, 1, crop, crop), dtype=np.float32)
    for b in range(batch):
        img = canvases[rng.integers(len(canvases))]
        y0, x0 = rng.integers(img.shape[0] - crop + 1), rng.integers(img.shape[1] - crop + 1)
        patch = img[y0 : y0 + crop, x0 : x0 + crop]
        if rng.random() < 0.5:
            patch = patch[::-1]
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        if rng.random() < 0.5:
            patch = patch.T
        out[b, 0] = patch
    return torch.from_numpy(out)


@torch.no_grad()
def validate(net: OCTCodecNet, canvases: list[np.ndarray]) -> dict[str, float]:
    """Mean MS-SSIM (MONAI, 5 scales) and PSNR of whole canvases; the quantized forward pass."""
    net.eval()
    ms, psnr = [], []
    for img in canvases:
        x = torch.from_numpy(img)[None, None]
        y = net(x).clamp(0, 1)
        ms.append(float(compute_ms_ssim(y, x, spatial_dims=2, data_range=1.0)))
        psnr.append(float(10 * torch.log10(1.0 / torch.mean((y - x) ** 2).clamp_min(1e-12))))
    net.train()
    return {"ms_ssim": float(np.mean(ms)), "psnr": float(np.mean(psnr))}


def train(args: argparse.Namespace) -> dict:
    set_determinism(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    cache_dir = Path(args.cache_dir)
    train_set = load_canvases("training", not args.no_preprocessing, cache_dir, args.data_root)
    val_set = load_canvases("validation", not args.no_preprocessing, cache_dir, args.data_root)[: args.val_limit]
    channels = RATIO_PRESETS[args.ratio]
    if args.no_skips:  # every symbol in the bottleneck, same Eq. (1) ratio: C0 + 4 C1 + 16 C2 + 64 C3
        channels = (sum(c * 4**i for i, c in enumerate(channels)), 0, 0, 0)
    features = PAPER_FEATURES if args.full_size else CPU_FEATURES
    net = OCTCodecNet(channels, features)
    if args.init:  # continue from a saved model (same configuration); the discriminator starts afresh
        net.load_state_dict(LearnedOCTCodec.load(args.init).net.state_dict())
    disc = PatchDiscriminator(
        spatial_dims=2, channels=args.disc_channels, in_channels=1, num_layers_d=3, norm="INSTANCE"
    )
    adv = PatchAdversarialLoss(criterion="bce")
    opt_g = torch.optim.Adam(net.parameters(), lr=args.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=args.lr, betas=(0.5, 0.999))
    half = args.steps // 2
    decay = lambda step: 1.0 if step < half else max(0.0, (args.steps - step) / (args.steps - half))  # noqa: E731
    sched = [torch.optim.lr_scheduler.LambdaLR(o, decay) for o in (opt_g, opt_d)]
    weights = torch.tensor(TRAIN_MS_SSIM_WEIGHTS) / sum(TRAIN_MS_SSIM_WEIGHTS)
    best, history, start = {"ms_ssim": -1.0}, [], time.time()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    bar = tqdm(range(1, args.steps + 1), desc=f"train r{args.ratio}", file=sys.stdout, mininterval=30)
    for step in bar:
        x = random_batch(train_set, args.batch, args.crop, rng)
        y = net(x)
        # discriminator: real x vs. reconstructed y
        d_loss = 0.5 * (
            adv(disc(x)[-1], target_is_real=True, for_discriminator=True)
            + adv(disc(y.detach())[-1], target_is_real=False, for_discriminator=True)
        )
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        # generator: fool D + lambda * (1 - MS-SSIM)
        ms = compute_ms_ssim(y, x, spatial_dims=2, data_range=1.0, weights=tuple(weights.tolist())).mean()
        g_adv = adv(disc(y)[-1], target_is_real=True, for_discriminator=False)
        g_loss = g_adv + args.lam * (1.0 - ms)
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        for s in sched:
            s.step()
        if step % args.val_every == 0 or step == args.steps:
            metrics = validate(net, val_set)
            record = {
                "step": step,
                "train_ms_ssim": float(ms),
                "d_loss": float(d_loss),
                **metrics,
                "minutes": (time.time() - start) / 60,
            }
            history.append(record)
            bar.write(json.dumps(record))
            if metrics["ms_ssim"] > best["ms_ssim"]:
                best = {"step": step, **metrics}
                LearnedOCTCodec(net).save(out)
    LearnedOCTCodec.load(out).save(out, half=True)  # committed weights in float16; metrics below use them
    codec = LearnedOCTCodec.load(out)
    sizes = [len(codec.compress(img)) for img in val_set]
    pixels = [img.size for img in val_set]
    summary = {
        "command": " ".join(sys.argv),
        "init": args.init,
        "ratio_target": args.ratio,
        "latent_channels": list(channels),
        "features": list(features),
        "preprocessing": not args.no_preprocessing,
        "nominal_ratio_eq1_256x256": nominal_compression_ratio(channels, 256, 256),
        "val_measured_ratio": float(np.sum(pixels) / np.sum(sizes)),
        "best": best,
        "history": history,
        "train_minutes": (time.time() - start) / 60,
        "machine": f"{platform.processor() or platform.machine()}, torch threads {args.threads}",
        "seed": args.seed,
    }
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2))
    return summary


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
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "medsecure" / "oct_codec"))
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--init", default=None, help="start from this model file (same ratio and widths)")
    parser.add_argument("--out", required=True, help="model file (.pt); metrics go to the same name .json")
    summary = train(parser.parse_args(argv))
    print(json.dumps({k: v for k, v in summary.items() if k != "history"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
