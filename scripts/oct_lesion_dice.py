"""Machine-vision quality of OCT compression: lesion-segmentation Dice on decoded B-scans (the paper measured none).

A small MONAI ``UNet`` (binary: any lesion of the oct-kermany masks vs background) is trained on the preprocessed
training canvases, the learned codec's input domain (NLM denoising, retina band crop; lesion masks cropped with the
band found on the image, so lesions outside the band, e.g. vitreous detachment, drop out). Each test canvas is then
segmented as is, and after our codec, JPEG and JPEG 2000 at the size of our stream (the same measured ratio, searched
per image as in ``reproduce_oct_codec.py``). Reported: Dice pooled over all test pixels (lesions are small and many
B-scans have none, so per-image Dice is unstable) and mean per-image Dice over the B-scans with a lesion.

    nice -n 5 python scripts/oct_lesion_dice.py --threads 1

Writes ``results/oct_codec/lesion_dice.{json,md}`` and ``bundles/oct_codec/models/lesion_seg.pt`` (+ ``.json``).
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
from monai.losses import DiceCELoss
from monai.networks.nets import UNet
from monai.transforms import Compose
from tqdm import tqdm

from medsecure_transforms.codecs.oct import LearnedOCTCodec
from medsecure_transforms.data import make_dataset
from medsecure_transforms.transforms import OCTDenoised, OCTGrayscaled, OCTRetinaCropd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reproduce_oct_codec import MODELS, RATIOS, REPO, j2k_at, jpeg_at, to8  # noqa: E402

NETWORK = {
    "spatial_dims": 2,
    "in_channels": 1,
    "out_channels": 2,
    "channels": (16, 32, 64, 128),
    "strides": (2, 2, 2),
    "num_res_units": 1,
}


def load_pairs(split: str, cache_dir: Path, data_root: str | None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Canvases ``[W', 256]`` in [0, 1] and binary lesion masks ``[W', 256]`` of ``split`` (cached as ``.npz``)."""
    cache = cache_dir / f"oct-kermany_{split}_pre_lesions.npz"
    if cache.is_file():
        with np.load(cache) as data:
            n = len(data.files) // 2
            return [data[f"i{k}"] for k in range(n)], [data[f"m{k}"] for k in range(n)]
    pipeline = Compose(
        [
            OCTGrayscaled("image"),
            OCTDenoised("image"),
            OCTRetinaCropd(["image", "label"], source_key="image", depth_axis=1),
        ]
    )
    images, masks = [], []
    for item in tqdm(make_dataset("oct-kermany", split, data_root=data_root), desc=f"preprocess {split}"):
        out = pipeline(item)
        images.append(np.asarray(out["image"])[0].astype(np.float32))
        masks.append((np.asarray(out["label"])[0] > 0).astype(np.uint8))
    cache_dir.mkdir(parents=True, exist_ok=True)
    arrays = {f"i{k}": v for k, v in enumerate(images)} | {f"m{k}": v for k, v in enumerate(masks)}
    np.savez_compressed(cache, **arrays)
    return images, masks


def batch(images, masks, size: int, crop: int, rng: np.random.Generator, positive: float = 0.7):
    """Random ``crop x crop`` windows with flips; with probability ``positive`` the window holds a lesion pixel
    (lesions cover a small fraction of the canvases, so uniform windows teach the network to predict none)."""
    with_lesion = [k for k, m in enumerate(masks) if m.any()]
    xs, ys = np.empty((size, 1, crop, crop), np.float32), np.empty((size, 1, crop, crop), np.int64)
    for b in range(size):
        lesion = with_lesion and rng.random() < positive
        k = with_lesion[rng.integers(len(with_lesion))] if lesion else rng.integers(len(images))
        img, msk = images[k], masks[k]
        if lesion:  # centre the window (clamped) on a random lesion pixel
            px, py = np.argwhere(msk)[rng.integers(int(msk.sum()))]
            x0 = int(np.clip(px - crop // 2, 0, img.shape[0] - crop))
            y0 = int(np.clip(py - crop // 2, 0, img.shape[1] - crop))
        else:
            x0, y0 = rng.integers(img.shape[0] - crop + 1), rng.integers(img.shape[1] - crop + 1)
        window = (slice(x0, x0 + crop), slice(y0, y0 + crop))
        pi, pm = img[window], msk[window]
        if rng.random() < 0.5:
            pi, pm = pi[::-1], pm[::-1]
        xs[b, 0], ys[b, 0] = pi, pm
    return torch.from_numpy(xs), torch.from_numpy(ys)


@torch.no_grad()
def segment(net: torch.nn.Module, image: np.ndarray) -> np.ndarray:
    """Binary lesion mask of one canvas (both sides are multiples of 8)."""
    return net(torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]).argmax(1)[0].numpy()


def pooled_dice(preds: list[np.ndarray], masks: list[np.ndarray]) -> tuple[float, float]:
    """(Dice pooled over every pixel, mean per-image Dice over images with a lesion)."""
    tp = sum(int((p & m).sum()) for p, m in zip(preds, masks, strict=True))
    total = sum(int(p.sum() + m.sum()) for p, m in zip(preds, masks, strict=True))
    per = [2 * (p & m).sum() / (p.sum() + m.sum()) for p, m in zip(preds, masks, strict=True) if m.any()]
    return (2 * tp / total if total else 1.0), float(np.mean(per)) if per else float("nan")


def train(args, images, masks, val_images, val_masks) -> tuple[torch.nn.Module, dict]:
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    net = UNet(**NETWORK)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-5)
    best, best_state, history, start = -1.0, None, [], time.perf_counter()
    for step in tqdm(range(1, args.steps + 1), desc="train lesion UNet"):
        x, y = batch(images, masks, args.batch, args.crop, rng)
        opt.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
        if step % args.val_every == 0:
            net.eval()
            dice = pooled_dice([segment(net, v).astype(np.uint8) for v in val_images], val_masks)[0]
            net.train()
            history.append({"step": step, "loss": float(loss), "val_pooled_dice": dice})
            if dice > best:
                best, best_state = dice, {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(best_state)
    net.eval()
    info = {
        "network": NETWORK,
        "steps": args.steps,
        "batch": args.batch,
        "crop": args.crop,
        "lr": args.lr,
        "seed": args.seed,
        "best_val_pooled_dice": best,
        "history": history,
        "train_minutes": (time.perf_counter() - start) / 60,
    }
    return net, info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "medsecure" / "oct_codec"))
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--val-every", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(REPO / "results" / "oct_codec"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cache = Path(args.cache_dir)
    images, masks = load_pairs("training", cache, args.data_root)
    val_images, val_masks = load_pairs("validation", cache, args.data_root)
    test_images, test_masks = load_pairs("test", cache, args.data_root)
    net, info = train(args, images, masks, val_images, val_masks)
    torch.save(net.state_dict(), MODELS / "lesion_seg.pt")
    (MODELS / "lesion_seg.json").write_text(json.dumps({"command": " ".join(sys.argv), **info}, indent=2) + "\n")

    clean = [segment(net, to8(img).astype(np.float32) / 255.0).astype(np.uint8) for img in test_images]
    results = {
        "machine": platform.platform(),
        "test_images": len(test_images),
        "test_images_with_lesion": int(sum(m.any() for m in test_masks)),
        "original": dict(zip(("pooled_dice", "mean_dice_lesion_images"), pooled_dice(clean, test_masks), strict=True)),
        "ratios": {},
    }
    for ratio in RATIOS:
        path = MODELS / f"model_r{ratio}.pt"
        if not path.is_file():
            continue
        codec = LearnedOCTCodec.load(path)
        preds = {"ours": [], "jpeg": [], "jpeg2000": []}
        sizes = {"ours": 0, "jpeg": 0, "jpeg2000": 0}
        for img in tqdm(test_images, desc=f"ratio {ratio}", leave=False):
            img8 = to8(img)
            stream = codec.compress(img8.astype(np.float32) / 255.0)
            decoded = {
                "ours": (codec.decompress(stream), len(stream)),
                "jpeg": jpeg_at(img8, len(stream)),
                "jpeg2000": j2k_at(img8, len(stream)),
            }
            for name, (dec, nbytes) in decoded.items():
                preds[name].append(segment(net, np.clip(dec, 0, 1)).astype(np.uint8))
                sizes[name] += nbytes
        pixels = sum(img.size for img in test_images)
        results["ratios"][str(ratio)] = {
            name: {
                "measured_ratio": pixels / sizes[name],
                **dict(zip(("pooled_dice", "mean_dice_lesion_images"), pooled_dice(p, test_masks), strict=True)),
            }
            for name, p in preds.items()
        }
        print(ratio, json.dumps(results["ratios"][str(ratio)]), flush=True)
    out = Path(args.out)
    (out / "lesion_dice.json").write_text(json.dumps({"lesion_seg": info, **results}, indent=2) + "\n")
    o = results["original"]
    lines = [
        f"# Lesion-segmentation Dice on decoded OCT B-scans (oct-kermany test, {results['test_images']} B-scans, "
        f"{results['test_images_with_lesion']} with a lesion in the retina band)",
        "",
        f"Lesion UNet (binary, any lesion): best validation pooled Dice {info['best_val_pooled_dice']:.3f}, "
        f"{info['train_minutes']:.1f} min of training. Original canvases: pooled Dice {o['pooled_dice']:.3f}, "
        f"mean per-image Dice {o['mean_dice_lesion_images']:.3f}.",
        "",
        "| target | codec | measured ratio | pooled Dice | mean Dice (images with lesion) |",
        "|---|---|---|---|---|",
    ]
    for ratio, entry in results["ratios"].items():
        for name, e in entry.items():
            lines.append(
                f"| {ratio} | {name} | {e['measured_ratio']:.1f} | {e['pooled_dice']:.3f} | "
                f"{e['mean_dice_lesion_images']:.3f} |"
            )
    (out / "lesion_dice.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
