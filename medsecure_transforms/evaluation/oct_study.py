"""Study of the learned OCT codec against JPEG and JPEG 2000 at the same measured ratio (Guo, Li, Li 2019, Figs. 3, 4).

Each canvas (``[W', 256]``, rounded to 8 bits: the reference) is encoded by a committed model to a real stream and
decoded; JPEG (Pillow, optimised Huffman tables) and JPEG 2000 (OpenJPEG, raw J2K codestream) are set per image to
the largest file not above the learned stream (:func:`~medsecure_transforms.codecs.baselines.jpeg_to_size`,
:func:`~medsecure_transforms.codecs.baselines.openjpeg_to_size`). MS-SSIM (MONAI, 5 scales) and PSNR are measured on
the whole canvas (:func:`~medsecure_transforms.evaluation.metrics.image_fidelity`), as the paper does on its padded
256x256 inputs. Ratios without a model are compared at the nominal ratio for JPEG / JPEG 2000 only. The Fig. 4
ablation uses the ``ablation_r40_*.pt`` models present.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from tqdm import tqdm

from ..codecs.baselines import jpeg_decode, jpeg_to_size, openjpeg_decode, openjpeg_to_size
from ..codecs.oct import LearnedOCTCodec
from .metrics import image_fidelity
from .oct_data import to_uint8

__all__ = [
    "ABLATIONS",
    "RATIOS",
    "baselines_at_size",
    "evaluate_codec",
    "evaluate_nominal",
    "oct_study",
    "panel",
    "plot_curves",
    "study_markdown",
    "summarise",
]

RATIOS = (10, 20, 40, 80)
"""Target ratios; the models are ``model_r{ratio}.pt``."""
ABLATIONS = {
    "skips + preprocessing": ("model_r40.pt", True),
    "preprocessing only (no skips)": ("ablation_r40_noskip.pt", True),
    "skips only (no preprocessing)": ("ablation_r40_noprep.pt", False),
    "neither": ("ablation_r40_noskip_noprep.pt", False),
}
"""Fig. 4 variants at ratio 40: ``name: (model file, whether it takes preprocessed canvases)``."""

Row = tuple[float, float, int, int]
"""``(MS-SSIM, PSNR dB, stream bytes, pixels)`` of one image."""


def baselines_at_size(img8: np.ndarray, max_bytes: int) -> dict[str, tuple[np.ndarray, int]]:
    """``{"jpeg": (decoded, bytes), "jpeg2000": (decoded, bytes)}``: each codec's largest file not above
    ``max_bytes`` of the ``uint8`` image, decoded to ``float32`` in ``[0, 1]``."""
    _, jpeg = jpeg_to_size(img8, max_bytes)
    _, j2k = openjpeg_to_size(img8, max_bytes)
    return {
        "jpeg": (jpeg_decode(jpeg).astype(np.float32) / 255.0, len(jpeg)),
        "jpeg2000": (openjpeg_decode(j2k).astype(np.float32) / 255.0, len(j2k)),
    }


def _row(ref: np.ndarray, decoded: np.ndarray, nbytes: int) -> Row:
    return (*image_fidelity(np.clip(decoded, 0, 1), ref), nbytes, ref.size)


def evaluate_codec(codec: LearnedOCTCodec, canvases: Sequence[np.ndarray], progress: bool = True) -> dict:
    """``{"ours", "jpeg", "jpeg2000"}`` summaries (:func:`summarise`), the baselines at each image's stream size."""
    rows: dict[str, list[Row]] = {"ours": [], "jpeg": [], "jpeg2000": []}
    for img in tqdm(canvases, desc="images", file=sys.stdout, leave=False, disable=not progress):
        img8 = to_uint8(img)
        ref = img8.astype(np.float32) / 255.0
        stream = codec.compress(ref)
        rows["ours"].append(_row(ref, codec.decompress(stream), len(stream)))
        for name, (decoded, nbytes) in baselines_at_size(img8, len(stream)).items():
            rows[name].append(_row(ref, decoded, nbytes))
    return {name: summarise(r) for name, r in rows.items()}


def evaluate_nominal(ratio: float, canvases: Sequence[np.ndarray]) -> dict:
    """``{"jpeg", "jpeg2000"}`` summaries at ``ratio`` of the 8-bit pixels (no learned model for it)."""
    rows: dict[str, list[Row]] = {"jpeg": [], "jpeg2000": []}
    for img in canvases:
        img8 = to_uint8(img)
        ref = img8.astype(np.float32) / 255.0
        for name, (decoded, nbytes) in baselines_at_size(img8, int(img8.size / ratio)).items():
            rows[name].append(_row(ref, decoded, nbytes))
    return {name: summarise(r) for name, r in rows.items()}


def summarise(rows: Sequence[Row]) -> dict:
    """Mean / std MS-SSIM, mean PSNR, the measured ratio (all pixels over all bytes), total bytes, image count."""
    arr = np.asarray(rows, dtype=np.float64)
    return {
        "ms_ssim": float(arr[:, 0].mean()),
        "ms_ssim_std": float(arr[:, 0].std()),
        "psnr": float(arr[:, 1].mean()),
        "measured_ratio": float(arr[:, 3].sum() / arr[:, 2].sum()),
        "bytes_total": int(arr[:, 2].sum()),
        "images": len(rows),
    }


def oct_study(
    canvases: Callable[[bool], Sequence[np.ndarray]],
    models: str | os.PathLike,
    out: str | os.PathLike,
    ratios: Sequence[int] = RATIOS,
    progress: bool = True,
) -> dict:
    """Run the study; write ``study.json``, ``study.md``, ``ms_ssim_vs_ratio.png`` and ``panel_r40.png`` into ``out``.

    Args:
        canvases: ``preprocess -> test canvases`` (called once per value, when a model needs it).
        models: folder of ``model_r{ratio}.pt`` and the ``ablation_r40_*.pt`` models.
        ratios: target ratios of the main table.

    Returns:
        ``{"machine", "test_images", "ratios": {ratio: entry}, "ablation_r40": {variant: entry or None}}``.
    """
    models, out = Path(models), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    test = {True: canvases(True)}
    results: dict = {"machine": platform.platform(), "test_images": len(test[True]), "ratios": {}, "ablation_r40": {}}
    for ratio in ratios:
        path = models / f"model_r{ratio}.pt"
        if path.is_file():
            codec = LearnedOCTCodec.load(path)
            entry = {
                "model": path.name,
                "nominal_ratio_eq1": codec.nominal_ratio((256, 256)),
                **evaluate_codec(codec, test[True], progress),
            }
        else:
            entry = {"model": None, **evaluate_nominal(ratio, test[True])}
        results["ratios"][str(ratio)] = entry
        print(ratio, json.dumps(entry))
    for name, (file, preprocess) in ABLATIONS.items():
        path = models / file
        if not path.is_file():
            results["ablation_r40"][name] = None
            continue
        if preprocess not in test:
            test[preprocess] = canvases(preprocess)
        codec = LearnedOCTCodec.load(path)
        entry = {
            "model": file,
            "preprocessing": preprocess,
            "latent_channels": list(codec.latent_channels),
            **evaluate_codec(codec, test[preprocess], progress)["ours"],
        }
        results["ablation_r40"][name] = entry
        print(name, json.dumps(entry))
    if (models / "model_r40.pt").is_file():
        zoom = (slice(64, 192), slice(64, 160))
        panel(LearnedOCTCodec.load(models / "model_r40.pt"), test[True][0], out / "panel_r40.png", zoom)
    (out / "study.json").write_text(json.dumps(results, indent=2))
    (out / "study.md").write_text(study_markdown(results))
    plot_curves(results, out / "ms_ssim_vs_ratio.png")
    return results


def panel(codec: LearnedOCTCodec, img: np.ndarray, path: Path, zoom: tuple[slice, slice]) -> None:
    """Fig. 3-style panel: original, ours, JPEG, JPEG 2000 at the same bytes, with zoomed crops ``zoom``."""
    img8 = to_uint8(img)
    ref = img8.astype(np.float32) / 255.0
    stream = codec.compress(ref)
    base = baselines_at_size(img8, len(stream))
    (jp, njp), (j2, nj2) = base["jpeg"], base["jpeg2000"]
    items = [
        ("original (preprocessed)", ref),
        (f"ours {ref.size / len(stream):.1f}:1", codec.decompress(stream)),
        (f"JPEG {ref.size / njp:.1f}:1", jp),
        (f"JPEG 2000 {ref.size / nj2:.1f}:1", j2),
    ]
    fig = Figure(figsize=(16, 6.5))
    axes = fig.subplots(2, 4)
    for col, (title, im) in enumerate(items):
        ms, ps = image_fidelity(np.clip(im, 0, 1), ref)
        axes[0, col].imshow(im.T, cmap="gray", vmin=0, vmax=1)  # canvases are [lateral, depth]: depth vertically
        axes[0, col].set_title(title if col == 0 else f"{title}\nMS-SSIM {ms:.4f}, PSNR {ps:.1f} dB", fontsize=9)
        axes[1, col].imshow(im[zoom].T, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes[0, col].add_patch(
            Rectangle(
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
    fig.savefig(path, dpi=110)


def study_markdown(results: dict) -> str:
    """The ratio table and the ratio-40 ablation table of :func:`oct_study`'s results."""
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
    return "\n".join(lines) + "\n"


def plot_curves(results: dict, path: Path) -> None:
    """MS-SSIM against the measured ratio (log axis) of ours, JPEG and JPEG 2000."""
    fig = Figure(figsize=(5.5, 4))
    ax = fig.subplots()
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
