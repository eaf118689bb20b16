"""Training of the learned OCT codec (Guo, Li, Li 2019): compression + reconstruction CNNs against a PatchGAN.

Loss of the generator (the paper's Eq. (2)): ``L_adv + lam * (1 - MS-SSIM)`` with ``lam = 100``, MONAI's
``PatchAdversarialLoss`` (BCE) on a 70x70 ``PatchDiscriminator`` (3 stride-2 layers) and MONAI's MS-SSIM (4 scales on
the training crops); Adam ``betas=(0.5, 0.999)``, learning rate constant for the first half of the steps and
linearly decayed to 0 over the second half. Training crops are random ``crop x crop`` windows of the canvases with
random flips and transposition; the checkpoint with the best validation MS-SSIM (whole canvases, 5 scales) is kept
and finally stored with float16 weights.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from monai.losses import PatchAdversarialLoss
from monai.metrics import PSNRMetric
from monai.metrics.regression import compute_ms_ssim
from monai.networks.nets import PatchDiscriminator
from monai.utils import set_determinism
from tqdm import tqdm

from ...networks.oct_compression import OCTCodecNet
from .codec import RATIO_PRESETS, LearnedOCTCodec, nominal_compression_ratio

__all__ = ["CPU_FEATURES", "PAPER_FEATURES", "codec_channels", "random_batch", "train_codec", "validate"]

CPU_FEATURES = (16, 32, 64, 128, 128, 128)
"""Network widths of the committed CPU-sized models."""
PAPER_FEATURES = (64, 128, 256, 512, 512, 512)
"""The paper's widths."""
TRAIN_MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363)
"""4 MS-SSIM scales fit a 128 crop with an 11x11 window (normalised to sum 1)."""


def codec_channels(ratio: int, skips: bool = True) -> tuple[int, int, int, int]:
    """``(C0, C1, C2, C3)`` of ``RATIO_PRESETS[ratio]``; without ``skips`` (the Fig. 4 ablation) every symbol goes
    into the bottleneck, same Eq. (1) ratio: ``(C0 + 4 C1 + 16 C2 + 64 C3, 0, 0, 0)``."""
    channels = RATIO_PRESETS[ratio]
    return channels if skips else (sum(c * 4**i for i, c in enumerate(channels)), 0, 0, 0)


def random_batch(canvases: Sequence[np.ndarray], batch: int, crop: int, rng: np.random.Generator) -> torch.Tensor:
    """``[batch, 1, crop, crop]`` random windows of ``canvases`` with random flips and transposition."""
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
def validate(net: OCTCodecNet, canvases: Sequence[np.ndarray]) -> dict[str, float]:
    """Mean MS-SSIM (MONAI, 5 scales) and PSNR (dB) of whole canvases through the quantized forward pass."""
    net.eval()
    psnr_metric = PSNRMetric(max_val=1.0)
    ms, psnr = [], []
    for img in canvases:
        x = torch.from_numpy(img)[None, None]
        y = net(x).clamp(0, 1)
        ms.append(float(compute_ms_ssim(y, x, spatial_dims=2, data_range=1.0)))
        psnr.append(float(psnr_metric(y, x).mean()))
    net.train()
    return {"ms_ssim": float(np.mean(ms)), "psnr": float(np.mean(psnr))}


def train_codec(
    train_canvases: Sequence[np.ndarray],
    val_canvases: Sequence[np.ndarray],
    out: str | os.PathLike,
    ratio: int = 40,
    skips: bool = True,
    full_size: bool = False,
    steps: int = 800,
    batch: int = 8,
    crop: int = 128,
    lr: float = 2e-4,
    lam: float = 100.0,
    disc_channels: int = 16,
    val_every: int = 100,
    seed: int = 0,
    init: str | os.PathLike | None = None,
    preprocessing: bool = True,
    command: str | None = None,
    progress: bool = True,
) -> dict:
    """Train a codec on canvases ``[W', 256]`` in ``[0, 1]``; write it to ``out`` and its record to ``out``'s ``.json``.

    Args:
        train_canvases, val_canvases: training canvases (crops are drawn from them) and validation canvases (scored
            whole every ``val_every`` steps and after the last step).
        out: model file (``.pt``, :meth:`LearnedOCTCodec.save`); the best validation checkpoint, float16 weights.
        ratio: target ratio, a key of ``RATIO_PRESETS``; ``skips=False``: the no-skip ablation (:func:`codec_channels`).
        full_size: the paper's widths 64..512 instead of the CPU-sized 16..128.
        lam: MS-SSIM weight; ``disc_channels``: PatchGAN width (pix2pix: 64).
        seed: MONAI ``set_determinism`` seed (network initialisation) and the crop generator's seed.
        init: start from this model file (same ratio and widths); the discriminator starts afresh.
        preprocessing, command: recorded only: whether the canvases were preprocessed, the command that ran this.

    Returns:
        The record written to the ``.json``: configuration, validation history, best step, measured ratio.
    """
    set_determinism(seed)
    rng = np.random.default_rng(seed)
    channels = codec_channels(ratio, skips)
    features = PAPER_FEATURES if full_size else CPU_FEATURES
    net = OCTCodecNet(channels, features)
    if init:
        net.load_state_dict(LearnedOCTCodec.load(init).net.state_dict())
    disc = PatchDiscriminator(spatial_dims=2, channels=disc_channels, in_channels=1, num_layers_d=3, norm="INSTANCE")
    adv = PatchAdversarialLoss(criterion="bce")
    opt_g = torch.optim.Adam(net.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=lr, betas=(0.5, 0.999))
    half = steps // 2

    def decay(step: int) -> float:
        return 1.0 if step < half else max(0.0, (steps - step) / (steps - half))

    sched = [torch.optim.lr_scheduler.LambdaLR(o, decay) for o in (opt_g, opt_d)]
    weights = torch.tensor(TRAIN_MS_SSIM_WEIGHTS) / sum(TRAIN_MS_SSIM_WEIGHTS)
    best, history, start = {"ms_ssim": -1.0}, [], time.time()
    out = Path(out)
    bar = tqdm(range(1, steps + 1), desc=f"train r{ratio}", file=sys.stdout, mininterval=30, disable=not progress)
    for step in bar:
        x = random_batch(train_canvases, batch, crop, rng)
        y = net(x)
        # discriminator: real x vs. reconstructed y
        d_loss = 0.5 * (
            adv(disc(x)[-1], target_is_real=True, for_discriminator=True)
            + adv(disc(y.detach())[-1], target_is_real=False, for_discriminator=True)
        )
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        # generator: fool D + lam * (1 - MS-SSIM)
        ms = compute_ms_ssim(y, x, spatial_dims=2, data_range=1.0, weights=tuple(weights.tolist())).mean()
        g_loss = adv(disc(y)[-1], target_is_real=True, for_discriminator=False) + lam * (1.0 - ms)
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        for s in sched:
            s.step()
        if step % val_every == 0 or step == steps:
            metrics = validate(net, val_canvases)
            record = {
                "step": step,
                "train_ms_ssim": ms.item(),
                "d_loss": d_loss.item(),
                **metrics,
                "minutes": (time.time() - start) / 60,
            }
            history.append(record)
            bar.write(json.dumps(record))
            if metrics["ms_ssim"] > best["ms_ssim"]:
                best = {"step": step, **metrics}
                LearnedOCTCodec(net).save(out)
    LearnedOCTCodec.load(out).save(out, half=True)  # committed weights in float16; the metrics below use them
    codec = LearnedOCTCodec.load(out)
    sizes = [len(codec.compress(img)) for img in val_canvases]
    pixels = [img.size for img in val_canvases]
    summary = {
        "command": command,
        "init": None if init is None else str(init),
        "ratio_target": ratio,
        "latent_channels": list(channels),
        "features": list(features),
        "preprocessing": preprocessing,
        "nominal_ratio_eq1_256x256": nominal_compression_ratio(channels, 256, 256),
        "val_measured_ratio": float(np.sum(pixels) / np.sum(sizes)),
        "best": best,
        "history": history,
        "train_minutes": (time.time() - start) / 60,
        "machine": f"{platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}",
        "seed": seed,
    }
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2))
    return summary
