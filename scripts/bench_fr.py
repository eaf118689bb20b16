"""Throughput of FrequencyRefine on 512x512 RGB batches vs a Pillow JPEG(85) round trip and a per-block loop.

Prints images/s, the ratios measured side by side and the machine; writes ``results/fr/bench.{json,md}``.

    nice -n 10 python scripts/bench_fr.py                      # CPU, 1 thread (the Pillow codec is single-threaded)
    python scripts/bench_fr.py --device cuda --batch 64        # GPU when one is available
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import scipy.fft
import torch
from PIL import Image, features
from tqdm import tqdm

from medsecure_transforms.data import find_data_root, load_datalist
from medsecure_transforms.defenses import fixed_layout_table, frequency_refine

SIZE = 512


def timed(fn, repeats: int) -> float:
    """Median wall time (s) of ``fn()`` over ``repeats`` runs after one warm-up."""
    return interleaved([fn], repeats)[0]


def interleaved(fns, repeats: int) -> list[float]:
    """Median wall times (s) of each of ``fns``, run alternately ``repeats`` times after a warm-up, so that load
    changes on a shared machine hit all of them alike."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, bucket in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def bench_images(count: int) -> tuple[np.ndarray, str]:
    """``count`` 512x512 RGB uint8 images: Drishti-GS1 test fundus images resized when the data root exists
    (JPEG speed depends on content), else smoothed noise."""
    root = find_data_root()
    if root is not None and (root / "fundus-drishti-gs1" / "dataset.json").is_file():
        items = load_datalist("fundus-drishti-gs1", "test", data_root=root)
        paths = [items[i % len(items)]["image"] for i in range(count)]
        imgs = [np.asarray(Image.open(p).convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)) for p in paths]
        return np.stack(imgs), "Drishti-GS1 test images resized to 512x512"
    noise = np.random.default_rng(0).random((count, SIZE // 4, SIZE // 4, 3)) * 255
    small = [Image.fromarray(n.astype(np.uint8)).resize((SIZE, SIZE), Image.BICUBIC) for n in noise]
    return np.stack([np.asarray(s) for s in small]), "upsampled noise (no data root)"


def pillow_jpeg_round_trip(img: np.ndarray, quality: int = 85) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def per_block_loop(img: np.ndarray, table: np.ndarray) -> np.ndarray:
    """The paper's description: every channel, every 8x8 block, DCT, quantize, dequantize, IDCT."""
    out = np.empty(img.shape, dtype=np.float64)
    for c in range(img.shape[2]):
        for i in range(0, img.shape[0], 8):
            for j in range(0, img.shape[1], 8):
                coef = scipy.fft.dctn(img[i : i + 8, j : j + 8, c] - 128.0, norm="ortho")
                out[i : i + 8, j : j + 8, c] = scipy.fft.idctn(np.round(coef / table) * table, norm="ortho") + 128
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8, help="FR batch size (images per call)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--loop-images", type=int, default=1, help="images timed through the per-block loop")
    parser.add_argument("--out", default="results/fr")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images, source = bench_images(args.batch)
    table = fixed_layout_table((30, 5, 80))
    fr = frequency_refine(table)
    # a collated batch is contiguous [B, C, H, W]; a channel axis moved without a copy (HWC image -> CHW view)
    # leaves channels-last strides, which cost FR one layout copy
    strided = torch.tensor(images, dtype=torch.float32, device=args.device).permute(0, 3, 1, 2) / 255
    batch = strided.contiguous()

    def run_fr(x: torch.Tensor):
        fr(x)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    with torch.inference_mode():
        t_fr, t_jpeg, t_fr_strided = (
            t / args.batch
            for t in interleaved(
                [lambda: run_fr(batch), lambda: [pillow_jpeg_round_trip(im) for im in images], lambda: run_fr(strided)],
                args.repeats,
            )
        )
    steps = np.array(table.steps)
    t_loop = statistics.median(
        timed(lambda im=im: per_block_loop(im.astype(np.float64), steps), 1)
        for im in tqdm(images[: args.loop_images], desc="per-block loop")
    )
    result = {
        "image": f"{SIZE}x{SIZE} RGB",
        "source": source,
        "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(),
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": args.threads,
        "torch": torch.__version__,
        "libjpeg_turbo": bool(features.check_feature("libjpeg_turbo")),
        "fr_batch": args.batch,
        "images_per_s": {
            "fr": 1 / t_fr,
            "fr_channels_last_input": 1 / t_fr_strided,
            "pillow_jpeg85_round_trip": 1 / t_jpeg,
            "per_block_loop": 1 / t_loop,
        },
        "ratio_fr_time_over_jpeg": t_fr / t_jpeg,
        "ratio_fr_channels_last_time_over_jpeg": t_fr_strided / t_jpeg,
        "speedup_fr_over_loop": t_loop / t_fr,
    }
    result["ms_per_image"] = {k: 1e3 / v for k, v in result["images_per_s"].items()}
    print(json.dumps(result, indent=2))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = "cpu" if args.device == "cpu" else "gpu"
    (out / f"bench_{tag}.json").write_text(json.dumps(result, indent=2) + "\n")
    ips = result["images_per_s"]
    (out / f"bench_{tag}.md").write_text(
        f"| method ({result['image']}, {result['device']}, {args.threads} thread(s)) | images/s | ms/image |\n"
        "|---|---|---|\n"
        + "".join(f"| {k} | {v:.1f} | {1e3 / v:.2f} |\n" for k, v in ips.items())
        + f"\nFR time / Pillow JPEG(85) time: {result['ratio_fr_time_over_jpeg']:.2f}; "
        f"FR speed-up over the per-block loop: {result['speedup_fr_over_loop']:.0f}x\n"
    )


if __name__ == "__main__":
    main()
