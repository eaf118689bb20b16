"""Benchmark: batched ASMA vs a one-image-at-a-time loop written as the paper describes.

The loop follows the authors' structure (Ozbulak et al., released code): per image and iteration one forward/backward
pass for the gradient with the class masks built in a Python loop over classes, then a second forward pass of the
updated image to get the IoU that sets the next multiplier and the stopping test. Our :class:`ASMA` runs the whole
batch at once, builds the masks in one one-hot product and reuses the gradient pass's forward for the IoU. Both apply
equation (1) with the same multiplier schedule, so their adversarial images agree to float tolerance; the script
checks that and prints both times, the ratio, the attack success and the machine.

    nice -n 10 python scripts/bench_attacks.py --bundle fundus_disc_seg --images 8 --iterations 100 \
        --output results/attacks/bench_asma_8x100.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from medsecure_transforms.attacks import ASMA
from medsecure_transforms.attacks.targets import shift_mask
from medsecure_transforms.bundle import bundle_preprocessing, load_bundle_network


def paper_loop_asma(
    model: torch.nn.Module, image: torch.Tensor, target: torch.Tensor, attack: ASMA
) -> tuple[torch.Tensor, int]:
    """ASMA on one image ``[1, C, *spatial]`` with a per-class mask loop and a separate IoU forward pass."""
    original = image.clone()
    target_np = target[0, 0].numpy()
    classes = list(range(model(image).shape[1]))

    def iou_with_target(x: torch.Tensor) -> float:
        with torch.no_grad():
            pred = model(x).argmax(dim=1)[0].numpy()
        per_class = []
        for c in classes[1:]:
            p, t = pred == c, target_np == c
            union = np.logical_or(p, t).sum()
            per_class.append(1.0 if union == 0 else np.logical_and(p, t).sum() / union)
        return float(np.mean(per_class))

    x = image.clone()
    iou = iou_with_target(x)
    steps = 0
    while steps < attack.max_iter and iou < attack.target_iou:
        x.requires_grad_(True)
        out = model(x)
        pred = out.argmax(dim=1)[0]
        loss = 0
        for c in classes:
            optimisation_mask = (target[0, 0] == c).float()
            prediction_mask = (pred != c).float()
            loss = loss + torch.sum(out[0, c] * optimisation_mask * prediction_mask)
        loss = loss - torch.sum((x - original) ** 2)
        loss.backward()
        alpha = attack.beta * iou + attack.tau
        x = (x.detach() + alpha * x.grad).clamp(*attack.clip)
        iou = iou_with_target(x)
        steps += 1
    return x.detach(), steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default="fundus_disc_seg")
    parser.add_argument("--split", default="test")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--beta", type=float, default=1e-6)
    parser.add_argument("--tau", type=float, default=1e-7)
    parser.add_argument("--target-iou", type=float, default=0.8)
    parser.add_argument("--shift", type=int, nargs="+", default=[0, 64], help="target = label shifted by this")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, default=None, help="JSON file for the numbers")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    model = load_bundle_network(args.bundle)
    datalist, transform = bundle_preprocessing(args.bundle, args.split, limit=args.images)
    samples = [transform(item) for item in datalist]
    images = torch.stack([s["image"].as_tensor() for s in samples])
    target = shift_mask(torch.stack([s["label"].as_tensor() for s in samples]).long(), args.shift)
    attack = ASMA(max_iter=args.iterations, beta=args.beta, tau=args.tau, target_iou=args.target_iou)

    start = time.perf_counter()
    batched = attack(model, images, target)
    batched_seconds = time.perf_counter() - start

    start = time.perf_counter()
    looped = [paper_loop_asma(model, images[i : i + 1], target[i : i + 1], attack) for i in range(len(images))]
    loop_seconds = time.perf_counter() - start

    loop_adversarial = torch.cat([x for x, _ in looped])
    record = {
        "bundle": args.bundle,
        "split": args.split,
        "images": len(images),
        "image_shape": list(images.shape[1:]),
        "attack": attack.params(),
        "target": f"label shifted by {args.shift}",
        "batched_seconds": batched_seconds,
        "loop_seconds": loop_seconds,
        "speedup": loop_seconds / batched_seconds,
        "max_abs_difference": float((loop_adversarial - batched.adversarial).abs().max()),
        "iterations_equal": [s for _, s in looped] == batched.iterations.tolist(),
        "iterations": batched.iterations.tolist(),
        "target_iou": batched.target_iou.tolist(),
        "success_rate": float((batched.target_iou >= args.target_iou).float().mean()),
        "linf_x255": (batched.linf * 255).tolist(),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "load_average_1min": os.getloadavg()[0],
        },
    }
    print(json.dumps(record, indent=2))
    print(
        f"batched {batched_seconds:.1f} s, loop {loop_seconds:.1f} s, speedup {record['speedup']:.2f}x, "
        f"max |diff| {record['max_abs_difference']:.2e}, success {record['success_rate']:.0%}"
    )
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
