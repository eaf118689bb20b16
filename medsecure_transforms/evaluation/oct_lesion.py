"""Machine-vision quality of OCT compression: lesion-segmentation Dice on decoded B-scans (the paper measured none).

A small MONAI ``UNet`` (binary: any lesion of the oct-kermany masks vs background) segments preprocessed canvases,
the learned codec's input domain (lesions outside the retina band drop out). Each test canvas (rounded to 8 bits) is
segmented as is, and after the learned codec, JPEG and JPEG 2000 at the size of the learned stream (the same measured
ratio, :func:`~.oct_study.baselines_at_size`). Reported (:func:`~.metrics.pooled_binary_dice`): Dice pooled over all
test pixels (lesions are small and many B-scans have none, so per-image Dice is unstable) and the mean per-image Dice
over the B-scans with a lesion.

The network is a torch artefact (:mod:`medsecure_transforms.artefacts`, format ``medsecure.oct_lesion_seg``) whose
config holds the ``UNet`` arguments and the training record.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.losses import DiceCELoss
from monai.networks.nets import UNet
from tqdm import tqdm

from ..artefacts import load_torch, save_torch
from ..codecs.oct import LearnedOCTCodec
from .metrics import pooled_binary_dice, predict_classes
from .oct_data import to_uint8
from .oct_study import RATIOS, baselines_at_size

__all__ = [
    "FORMAT",
    "NETWORK",
    "VERSION",
    "lesion_batch",
    "lesion_dice_study",
    "lesion_markdown",
    "load_lesion_net",
    "save_lesion_net",
    "segment",
    "train_lesion_net",
]

FORMAT, VERSION = "medsecure.oct_lesion_seg", 1
NETWORK = {
    "spatial_dims": 2,
    "in_channels": 1,
    "out_channels": 2,
    "channels": (16, 32, 64, 128),
    "strides": (2, 2, 2),
    "num_res_units": 1,
}
"""``UNet`` arguments of the lesion network."""
DICE_KEYS = ("pooled_dice", "mean_dice_lesion_images")


def save_lesion_net(path: str | os.PathLike, net: UNet, record: dict[str, Any]) -> Path:
    """Write the network (its ``NETWORK`` arguments and weights) and its training ``record``; returns the path."""
    return save_torch(path, FORMAT, VERSION, {"network": NETWORK, "training": record}, net.state_dict())


def _build(config: dict[str, Any], state: dict[str, torch.Tensor]) -> tuple[UNet, dict[str, Any]]:
    net = UNet(**config["network"])
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"weights do not match the network {config['network']}: {err}") from err
    return net.eval(), config["training"]


def load_lesion_net(path: str | os.PathLike) -> tuple[UNet, dict[str, Any]]:
    """``(network in eval mode, training record)`` of a file written by :func:`save_lesion_net`."""
    return load_torch(path, FORMAT, VERSION, _build)


def lesion_batch(
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    size: int,
    crop: int,
    rng: np.random.Generator,
    positive: float = 0.7,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``[size, 1, crop, crop]`` and masks (``int64``) of random windows with lateral flips.

    With probability ``positive`` a window is centred (clamped) on a random lesion pixel: lesions cover a small
    fraction of the canvases, so uniform windows teach the network to predict none.
    """
    with_lesion = [k for k, m in enumerate(masks) if m.any()]
    xs, ys = np.empty((size, 1, crop, crop), np.float32), np.empty((size, 1, crop, crop), np.int64)
    for b in range(size):
        lesion = with_lesion and rng.random() < positive
        k = with_lesion[rng.integers(len(with_lesion))] if lesion else rng.integers(len(images))
        img, msk = images[k], masks[k]
        if lesion:
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


def segment(net: torch.nn.Module, image: np.ndarray) -> np.ndarray:
    """Binary lesion mask (``uint8``) of one canvas ``[W', H']`` (both sides multiples of 8)."""
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    return predict_classes(net, x)[0, 0].numpy().astype(np.uint8)


def train_lesion_net(
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    val_images: Sequence[np.ndarray],
    val_masks: Sequence[np.ndarray],
    steps: int = 2000,
    batch: int = 8,
    crop: int = 128,
    lr: float = 1e-3,
    val_every: int = 200,
    seed: int = 0,
    progress: bool = True,
) -> tuple[UNet, dict[str, Any]]:
    """Train the lesion ``UNet`` (``DiceCELoss``, AdamW) on canvases and binary masks; keep the weights of the best
    validation pooled Dice (scored every ``val_every`` steps). Returns ``(network in eval mode, training record)``."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = UNet(**NETWORK)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-5)
    best, best_state, history, start = -1.0, None, [], time.perf_counter()
    for step in tqdm(range(1, steps + 1), desc="train lesion UNet", disable=not progress):
        x, y = lesion_batch(images, masks, batch, crop, rng)
        opt.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
        if step % val_every == 0:
            net.eval()
            dice = pooled_binary_dice([segment(net, v) for v in val_images], val_masks)[0]
            net.train()
            history.append({"step": step, "loss": loss.item(), "val_pooled_dice": dice})
            if dice > best:
                best, best_state = dice, {k: v.clone() for k, v in net.state_dict().items()}
    if best_state is None:
        raise ValueError(f"no validation in {steps} steps (val_every={val_every}): no checkpoint to keep")
    net.load_state_dict(best_state)
    net.eval()
    record = {
        "network": NETWORK,
        "steps": steps,
        "batch": batch,
        "crop": crop,
        "lr": lr,
        "seed": seed,
        "best_val_pooled_dice": best,
        "history": history,
        "train_minutes": (time.perf_counter() - start) / 60,
    }
    return net, record


def _dice(preds: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> dict[str, float]:
    return dict(zip(DICE_KEYS, pooled_binary_dice(preds, masks), strict=True))


def lesion_dice_study(
    net: torch.nn.Module,
    record: dict[str, Any],
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    models: str | os.PathLike,
    out: str | os.PathLike,
    ratios: Sequence[int] = RATIOS,
    progress: bool = True,
) -> dict:
    """Segment the test canvases as is and after each ``model_r{ratio}.pt`` in ``models`` and its baselines; write
    ``lesion_dice.{json,md}`` into ``out``.

    Args:
        net, record: the lesion network and its training record (:func:`load_lesion_net`).
        images, masks: test canvases and binary lesion masks (:func:`~.oct_data.load_lesion_canvases`).

    Returns:
        ``{"lesion_seg": record, "machine", "test_images", "test_images_with_lesion", "original": {pooled_dice,
        mean_dice_lesion_images}, "ratios": {ratio: {codec: {"measured_ratio", pooled_dice, mean_dice_...}}}}``.
    """
    models, out = Path(models), Path(out)
    clean = [segment(net, to_uint8(img).astype(np.float32) / 255.0) for img in images]
    results = {
        "lesion_seg": record,
        "machine": platform.platform(),
        "test_images": len(images),
        "test_images_with_lesion": int(sum(m.any() for m in masks)),
        "original": _dice(clean, masks),
        "ratios": {},
    }
    pixels = sum(img.size for img in images)
    for ratio in ratios:
        path = models / f"model_r{ratio}.pt"
        if not path.is_file():
            continue
        codec = LearnedOCTCodec.load(path)
        preds: dict[str, list[np.ndarray]] = {"ours": [], "jpeg": [], "jpeg2000": []}
        sizes = dict.fromkeys(preds, 0)
        for img in tqdm(images, desc=f"ratio {ratio}", leave=False, disable=not progress):
            img8 = to_uint8(img)
            stream = codec.compress(img8.astype(np.float32) / 255.0)
            decoded = {"ours": (codec.decompress(stream), len(stream)), **baselines_at_size(img8, len(stream))}
            for name, (dec, nbytes) in decoded.items():
                preds[name].append(segment(net, np.clip(dec, 0, 1)))
                sizes[name] += nbytes
        results["ratios"][str(ratio)] = {
            name: {
                "measured_ratio": pixels / sizes[name],
                **dict(zip(DICE_KEYS, pooled_binary_dice(p, masks), strict=True)),
            }
            for name, p in preds.items()
        }
        print(ratio, json.dumps(results["ratios"][str(ratio)]), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "lesion_dice.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "lesion_dice.md").write_text(lesion_markdown(results))
    return results


def lesion_markdown(results: dict) -> str:
    """The Dice table of :func:`lesion_dice_study`'s results."""
    info, o = results["lesion_seg"], results["original"]
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
    return "\n".join(lines) + "\n"
