"""Study of the learned OCT codec on the oct-kermany test split (Guo, Li, Li 2019, Figs. 3 and 4).

For every committed model ``bundles/oct_codec/models/model_r{10,20,40,80}.pt`` each test canvas
(256 x W', the preprocessed B-scan quantized to 8 bits) is encoded to a real stream and decoded;
JPEG (Pillow, optimised Huffman tables) and JPEG 2000 (OpenJPEG via imagecodecs, raw J2K codestream)
are searched per image for the size closest to, and not above, the learned stream's bytes (the
same measured ratio). MS-SSIM (MONAI, 5 scales) and PSNR (MONAI) are measured on the whole canvas,
as the paper does on its padded 256x256 inputs. Ratios for which no learned model exists are
compared at the nominal ratio for JPEG / JPEG 2000 only. The Fig. 4 ablation uses the
``ablation_r40_*.pt`` models present. Outputs go to ``results/oct_codec/``.

    nice -n 10 python scripts/reproduce_oct_codec.py
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import sys
from pathlib import Path

import imagecodecs
import matplotlib
import numpy as np
import torch
from monai.metrics import MultiScaleSSIMMetric, PSNRMetric
from PIL import Image
from tqdm import tqdm

from medsecure_transforms.codecs.oct import LearnedOCTCodec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_oct_codec import load_canvases  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "bundles" / "oct_codec" / "models"
RATIOS = (10, 20, 40, 80)
ABLATIONS = {
    "skips + preprocessing": ("model_r40.pt", True),
    "preprocessing only (no skips)": ("ablation_r40_noskip.pt", True),
    "skips only (no preprocessing)": ("ablation_r40_noprep.pt", False),
    "neither": ("ablation_r40_noskip_noprep.pt", False),
}

_ms_ssim = MultiScaleSSIMMetric(spatial_dims=2, data_range=1.0)
_psnr = PSNRMetric(max_val=1.0)


def quality(ref: np.ndarray, dec: np.ndarray) -> tuple[float, float]:
    """(MS-SSIM, PSNR dB) of ``dec`` against ``ref`` (2-D arrays in [0, 1])."""
    r, d = torch.from_numpy(ref)[None, None].float(), torch.from_numpy(np.clip(dec, 0, 1))[None, None].float()
    return float(_ms_ssim(d, r).mean()), float(_psnr(d, r).mean())


def _jpeg(img8: np.ndarray, q: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img8).save(buf, format="JPEG", quality=q, optimize=True)
    return buf.getvalue()


def jpeg_quality_for(img8: np.ndarray, max_bytes: int) -> int:
    """Highest Pillow JPEG quality whose file is not larger than ``max_bytes`` (1 when none fits)."""
    lo, hi, best = 1, 95, 1
    while lo <= hi:
        q = (lo + hi) // 2
        if len(_jpeg(img8, q)) <= max_bytes:
            best, lo = q, q + 1
        else:
            hi = q - 1
    return best


def _j2k(img8: np.ndarray, level: float) -> bytes:
    return imagecodecs.jpeg2k_encode(img8, level=level, codecformat="j2k")


def j2k_level_for(img8: np.ndarray, max_bytes: int) -> float:
    """OpenJPEG PSNR target (dB) whose J2K codestream is the largest not above ``max_bytes`` (bisection)."""
    lo, hi = 5.0, 90.0
    for _ in range(14):
        mid = 0.5 * (lo + hi)
        if len(_j2k(img8, mid)) <= max_bytes:
            lo = mid
        else:
            hi = mid
    return lo


def jpeg_at(img8: np.ndarray, max_bytes: int) -> tuple[np.ndarray, int]:
    """Decoded JPEG at the size closest to, not above, ``max_bytes``, and its bytes."""
    blob = _jpeg(img8, jpeg_quality_for(img8, max_bytes))
    return np.asarray(Image.open(io.BytesIO(blob)), dtype=np.float32) / 255.0, len(blob)


def j2k_at(img8: np.ndarray, max_bytes: int) -> tuple[np.ndarray, int]:
    """Decoded JPEG 2000 at the size closest to, not above, ``max_bytes``, and its bytes."""
    blob = _j2k(img8, j2k_level_for(img8, max_bytes))
    return imagecodecs.jpeg2k_decode(blob).astype(np.float32) / 255.0, len(blob)


def to8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)


def evaluate_codec(codec: LearnedOCTCodec, canvases: list[np.ndarray]) -> dict:
    """Learned codec vs JPEG / JPEG 2000 at each image's learned stream size."""
    rows = {"ours": [], "jpeg": [], "jpeg2000": []}
    for img in tqdm(canvases, desc="images", file=sys.stdout, leave=False):
        img8 = to8(img)
        ref = img8.astype(np.float32) / 255.0
        stream = codec.compress(ref)
        dec = codec.decompress(stream)
        rows["ours"].append((*quality(ref, dec), len(stream), ref.size))
        for name, fn in (("jpeg", jpeg_at), ("jpeg2000", j2k_at)):
            d, n = fn(img8, len(stream))
            rows[name].append((*quality(ref, d), n, ref.size))
    return {name: summarise(r) for name, r in rows.items()}


def evaluate_nominal(ratio: float, canvases: list[np.ndarray]) -> dict:
    """JPEG / JPEG 2000 at ``ratio`` (no learned model for it)."""
    rows = {"jpeg": [], "jpeg2000": []}
    for img in canvases:
        img8 = to8(img)
        ref = img8.astype(np.float32) / 255.0
        for name, fn in (("jpeg", jpeg_at), ("jpeg2000", j2k_at)):
            d, n = fn(img8, int(img8.size / ratio))
            rows[name].append((*quality(ref, d), n, ref.size))
    return {name: summarise(r) for name, r in rows.items()}


def summarise(rows: list[tuple[float, float, int, int]]) -> dict:
    arr = np.asarray(rows, dtype=np.float64)
    return {
        "ms_ssim": float(arr[:, 0].mean()),
        "ms_ssim_std": float(arr[:, 0].std()),
        "psnr": float(arr[:, 1].mean()),
        "measured_ratio": float(arr[:, 3].sum() / arr[:, 2].sum()),
        "bytes_total": int(arr[:, 2].sum()),
        "images": len(rows),
    }


def panel(codec: LearnedOCTCodec, img: np.ndarray, out: Path, zoom: tuple[slice, slice]) -> None:
    """Fig. 3-style panel: original, ours, JPEG, JPEG 2000 at the same bytes, with 4x zoomed crops."""
    img8 = to8(img)
    ref = img8.astype(np.float32) / 255.0
    stream = codec.compress(ref)
    ours = codec.decompress(stream)
    jp, njp = jpeg_at(img8, len(stream))
    j2, nj2 = j2k_at(img8, len(stream))
    items = [
        ("original (preprocessed)", ref, ref.size),
        (f"ours {ref.size / len(stream):.1f}:1", ours, len(stream)),
        (f"JPEG {ref.size / njp:.1f}:1", jp, njp),
        (f"JPEG 2000 {ref.size / nj2:.1f}:1", j2, nj2),
    ]
    fig, axes = plt.subplots(2, 4, figsize=(16, 6.5))
    for col, (title, im, _) in enumerate(items):
        ms, ps = quality(ref, im)
        view = im.T  # canvases are [lateral, depth]: show depth vertically
        axes[0, col].imshow(view, cmap="gray", vmin=0, vmax=1)
        axes[0, col].set_title(title if col == 0 else f"{title}\nMS-SSIM {ms:.4f}, PSNR {ps:.1f} dB", fontsize=9)
        axes[1, col].imshow(im[zoom].T, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes[0, col].add_patch(
            plt.Rectangle(
                (zoom[0].start, zoom[1].start),
                zoom[0].stop - zoom[0].start,
                zoom[1].stop - zoom[1].start,
                fill=False,
                edgecolor="orange",
            )
        )
        for ax in axes[:, col]:
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "medsecure" / "oct_codec"))
    parser.add_argument("--limit", type=int, default=None, help="first N test images only")
    parser.add_argument("--out", default=str(REPO / "results" / "oct_codec"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(args.cache_dir)
    test = {True: load_canvases("test", True, cache, args.data_root)}
    test[True] = test[True][: args.limit]
    results: dict = {"machine": platform.platform(), "test_images": len(test[True]), "ratios": {}, "ablation_r40": {}}
    for ratio in RATIOS:
        path = MODELS / f"model_r{ratio}.pt"
        if path.is_file():
            codec = LearnedOCTCodec.load(path)
            entry = {
                "model": path.name,
                "nominal_ratio_eq1": codec.nominal_ratio((256, 256)),
                **evaluate_codec(codec, test[True]),
            }
        else:
            entry = {"model": None, **evaluate_nominal(ratio, test[True])}
        results["ratios"][str(ratio)] = entry
        print(ratio, json.dumps(entry))
    for name, (file, preprocess) in ABLATIONS.items():
        path = MODELS / file
        if not path.is_file():
            results["ablation_r40"][name] = None
            continue
        if preprocess not in test:
            test[preprocess] = load_canvases("test", preprocess, cache, args.data_root)[: args.limit]
        codec = LearnedOCTCodec.load(path)
        entry = {
            "model": file,
            "preprocessing": preprocess,
            "latent_channels": list(codec.latent_channels),
            **evaluate_codec(codec, test[preprocess])["ours"],
        }
        results["ablation_r40"][name] = entry
        print(name, json.dumps(entry))
    if (MODELS / "model_r40.pt").is_file():
        img = test[True][0]
        panel(
            LearnedOCTCodec.load(MODELS / "model_r40.pt"), img, out / "panel_r40.png", (slice(64, 192), slice(64, 160))
        )
    (out / "study.json").write_text(json.dumps(results, indent=2))
    write_markdown(results, out / "study.md")
    plot_curves(results, out / "ms_ssim_vs_ratio.png")
    return 0


def write_markdown(results: dict, path: Path) -> None:
    lines = [
        f"# OCT codec study (oct-kermany test split, {results['test_images']} B-scans)",
        "",
        f"Machine: {results['machine']}. Ratios are measured from bytes (8-bit pixels / stream bytes).",
        "",
        "| target | model | ours ratio | ours MS-SSIM | ours PSNR | JPEG ratio | JPEG MS-SSIM | JPEG PSNR "
        "| J2K ratio | J2K MS-SSIM | J2K PSNR |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for ratio, e in results["ratios"].items():
        o = e.get("ours")
        ours = f"{o['measured_ratio']:.1f} | {o['ms_ssim']:.4f} | {o['psnr']:.2f}" if o else "- | - | -"
        j, k = e["jpeg"], e["jpeg2000"]
        lines.append(
            f"| {ratio} | {e['model'] or '(none)'} | {ours} | {j['measured_ratio']:.1f} | {j['ms_ssim']:.4f} | "
            f"{j['psnr']:.2f} | {k['measured_ratio']:.1f} | {k['ms_ssim']:.4f} | {k['psnr']:.2f} |"
        )
    lines += [
        "",
        "## Ablation at ratio 40 (paper Fig. 4)",
        "",
        "| variant | model | ratio | MS-SSIM | PSNR |",
        "|---|---|---|---|---|",
    ]
    for name, e in results["ablation_r40"].items():
        if e is None:
            lines.append(f"| {name} | (not trained) | - | - | - |")
        else:
            r = f"{e['measured_ratio']:.1f} | {e['ms_ssim']:.4f} | {e['psnr']:.2f}"
            lines.append(f"| {name} | {e['model']} | {r} |")
    path.write_text("\n".join(lines) + "\n")


def plot_curves(results: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, label in (("ours", "learned codec"), ("jpeg", "JPEG (Pillow)"), ("jpeg2000", "JPEG 2000 (OpenJPEG)")):
        pts = sorted((e[name]["measured_ratio"], e[name]["ms_ssim"]) for e in results["ratios"].values() if e.get(name))
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", label=label)
    ax.set_xlabel("measured compression ratio")
    ax.set_ylabel("MS-SSIM")
    ax.set_xscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
