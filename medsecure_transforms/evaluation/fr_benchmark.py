"""Throughput of FrequencyRefine on 512x512 RGB batches against a Pillow JPEG(85) round trip and a per-block loop.

FR, JPEG and FR on a channels-last input are timed interleaved (:func:`~.benchmarking.interleaved`) so load changes
on a shared machine hit all three alike; the per-block loop (the paper's description) separately, image by image.
"""

from __future__ import annotations

import statistics

import numpy as np
import scipy.fft
import torch
from PIL import Image, features
from tqdm import tqdm

from ..data import find_data_root, load_datalist
from ..defenses import fixed_layout_table, frequency_refine
from .benchmarking import interleaved, machine_info, pillow_jpeg_round_trip, timed

__all__ = ["SIZE", "bench_images", "per_block_loop", "throughput_markdown", "time_frequency_refine"]

SIZE = 512


def bench_images(count: int) -> tuple[np.ndarray, str]:
    """``count`` 512x512 RGB uint8 images ``[count, 512, 512, 3]`` and their source: Drishti-GS1 test fundus images
    resized when the data root exists (JPEG speed depends on content), else smoothed noise."""
    root = find_data_root()
    if root is not None and (root / "fundus-drishti-gs1" / "dataset.json").is_file():
        items = load_datalist("fundus-drishti-gs1", "test", data_root=root)
        paths = [items[i % len(items)]["image"] for i in range(count)]
        imgs = [np.asarray(Image.open(p).convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)) for p in paths]
        return np.stack(imgs), "Drishti-GS1 test images resized to 512x512"
    noise = np.random.default_rng(0).random((count, SIZE // 4, SIZE // 4, 3)) * 255
    small = [Image.fromarray(n.astype(np.uint8)).resize((SIZE, SIZE), Image.BICUBIC) for n in noise]
    return np.stack([np.asarray(s) for s in small]), "upsampled noise (no data root)"


def per_block_loop(img: np.ndarray, table: np.ndarray) -> np.ndarray:
    """The paper's description on ``img`` ``[H, W, C]`` (0-255): every channel, every 8x8 block, DCT, quantize with
    ``table`` ``[8, 8]``, dequantize, IDCT."""
    out = np.empty(img.shape, dtype=np.float64)
    for c in range(img.shape[2]):
        for i in range(0, img.shape[0], 8):
            for j in range(0, img.shape[1], 8):
                coef = scipy.fft.dctn(img[i : i + 8, j : j + 8, c] - 128.0, norm="ortho")
                out[i : i + 8, j : j + 8, c] = scipy.fft.idctn(np.round(coef / table) * table, norm="ortho") + 128
    return out


def time_frequency_refine(images: np.ndarray, device: str = "cpu", repeats: int = 5, loop_images: int = 1) -> dict:
    """Images/s of FR(30,5,80) (fixed layout) on the batch ``images`` ``[B, H, W, 3]`` uint8 (contiguous and
    channels-last input), of Pillow JPEG(85) round trips and of :func:`per_block_loop` on ``loop_images`` images;
    the time ratios and the machine."""
    batch_size = len(images)
    table = fixed_layout_table((30, 5, 80))
    fr = frequency_refine(table)
    # a collated batch is contiguous [B, C, H, W]; a channel axis moved without a copy (HWC image -> CHW view)
    # leaves channels-last strides, which cost FR one layout copy
    strided = torch.tensor(images, dtype=torch.float32, device=device).permute(0, 3, 1, 2) / 255
    batch = strided.contiguous()

    def run_fr(x: torch.Tensor):
        fr(x)
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    with torch.inference_mode():
        t_fr, t_jpeg, t_fr_strided = (
            t / batch_size
            for t in interleaved(
                [lambda: run_fr(batch), lambda: [pillow_jpeg_round_trip(im) for im in images], lambda: run_fr(strided)],
                repeats,
            )
        )
    steps = np.array(table.steps)
    t_loop = statistics.median(
        timed(lambda im=im: per_block_loop(im.astype(np.float64), steps), 1)
        for im in tqdm(images[:loop_images], desc="per-block loop")
    )
    machine = machine_info()
    result = {
        "image": f"{images.shape[1]}x{images.shape[2]} RGB",
        "device": device if device == "cpu" else torch.cuda.get_device_name(),
        "cpu": machine["cpu"],
        "torch_threads": machine["threads"],
        "torch": machine["torch"],
        "libjpeg_turbo": bool(features.check_feature("libjpeg_turbo")),
        "fr_batch": batch_size,
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
    return result


def throughput_markdown(result: dict) -> str:
    """A Markdown table of a :func:`time_frequency_refine` result."""
    ips = result["images_per_s"]
    setting = f"{result['image']}, {result['device']}, {result['torch_threads']} thread(s)"
    return (
        f"| method ({setting}) | images/s | ms/image |\n"
        "|---|---|---|\n"
        + "".join(f"| {k} | {v:.1f} | {1e3 / v:.2f} |\n" for k, v in ips.items())
        + f"\nFR time / Pillow JPEG(85) time: {result['ratio_fr_time_over_jpeg']:.2f}; "
        f"FR speed-up over the per-block loop: {result['speedup_fr_over_loop']:.0f}x\n"
    )
