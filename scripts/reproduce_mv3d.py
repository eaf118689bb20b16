"""Reproduce the MVCompress3D study (Liu et al., CVPR 2019) on our data: rate vs segmentation accuracy.

For every test volume of a 3D segmentation bundle, the stored volume (e.g. int16 grey levels) is compressed
before the bundle's preprocessing, as on the way to a cloud service, with
  * ``mv3d``          MVCompress3D, Eq. (4) steps (the paper's Q_min = 1, Q_max = 16 shape, scaled to each rate),
  * ``jpeg2000_rule`` the same 3-D wavelet codec with human-vision steps (Q doubles per high-pass filter),
  * ``openjpeg``      real JPEG 2000 (OpenJPEG via imagecodecs; 2-D per slice, EBCOT),
at matched compression ratios, plus lossless zstd as the reference ratio. The bundle network segments each
decoded volume; Dice, Hausdorff distance and average surface distance (ASD, symmetric) per class are computed at
the network's input grid (voxel units; ACDC spacing is not preserved by the data source).

Outputs (``--out``, default ``results/mv3d``): ``rows.csv`` (case x codec x ratio), ``summary.json``,
``table_cr<R>.md`` (the paper's Table 1 at equal ratio), ``equal_dice.md`` (ratio each codec reaches at the
original Dice minus ``--dice-drop``; the paper's Fig. 6), ``rate_dice.png``.

    nice -n 10 python scripts/reproduce_mv3d.py --bundle cardiac_seg --ratios 15 30 60 120 240 --table-ratio 30
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from medsecure_transforms.codecs.baselines import openjpeg_round_trip, zstd_encode
from medsecure_transforms.codecs.mvc import MVWaveletCodec, encode_to_ratio
from medsecure_transforms.evaluation.mv3d_study import BundleSegmenter

CODECS = ("mv3d", "jpeg2000_rule", "openjpeg")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bundle", default="cardiac_seg", help="3D segmentation bundle (cardiac_seg, hippocampus_seg)")
    p.add_argument("--split", default="test")
    p.add_argument("--data-root", default=None)
    p.add_argument("--ratios", type=float, nargs="+", default=[15, 30, 60, 120, 240])
    p.add_argument("--table-ratio", type=float, default=30.0, help="ratio of the equal-rate table (paper: 30)")
    p.add_argument("--dice-drop", type=float, default=0.01, help="Dice loss tolerated in the equal-Dice comparison")
    p.add_argument("--codecs", nargs="+", choices=CODECS, default=list(CODECS))
    p.add_argument("--state", help="MVCompress3D parameters (JSON); default the paper's")
    p.add_argument("--limit", type=int, default=None, help="first N cases only")
    p.add_argument("--out", default="results/mv3d")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared CPU)")
    return p.parse_args(argv)


def compress(name: str, raw: np.ndarray, ratio: float, mv: MVWaveletCodec) -> tuple[np.ndarray, int]:
    """Decoded volume and stream size for one codec at one target ratio."""
    if name == "openjpeg":
        return openjpeg_round_trip(raw, ratio)
    codec = mv if name == "mv3d" else MVWaveletCodec.from_dict({**mv.to_dict(), "mapping": "jpeg2000"})
    codec, blob = encode_to_ratio(codec, raw, ratio)
    return codec.decode(blob)[0], len(blob)


def psnr(decoded: np.ndarray, raw: np.ndarray) -> float:
    """PSNR in dB with the volume's own grey-level span as peak."""
    mse = float(np.mean((decoded.astype(np.float64) - raw.astype(np.float64)) ** 2))
    peak = float(raw.max()) - float(raw.min())
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)


def summarise(rows: list[dict], classes: list[str]) -> dict:
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["codec"], row["target_ratio"]), []).append(row)
    out = {}
    for (codec, ratio), items in groups.items():
        entry = {"codec": codec, "target_ratio": ratio, "cases": len(items)}
        for key in ["ratio", "psnr_db", "dice_mean"] + [
            f"{m}_{c}" for m in ("dice", "hausdorff", "asd") for c in classes
        ]:
            values = np.array([r[key] for r in items], dtype=np.float64)
            values = values[np.isfinite(values)]
            entry[key] = {
                "mean": float(values.mean()) if values.size else float("nan"),
                "std": float(values.std()) if values.size else float("nan"),
            }
        out[f"{codec}@{ratio:g}"] = entry
    return out


def equal_dice_ratio(summary: dict, codec: str, threshold: float) -> float | None:
    """Largest ratio at which the codec's mean Dice stays >= threshold (linear in log ratio between points)."""
    points = sorted((v["ratio"]["mean"], v["dice_mean"]["mean"]) for v in summary.values() if v["codec"] == codec)
    best = None
    for (r0, d0), (r1, d1) in zip(points, points[1:], strict=False):
        if d0 >= threshold:
            best = r0
            if d1 < threshold:
                t = (d0 - threshold) / (d0 - d1)
                return float(np.exp(np.log(r0) + t * (np.log(r1) - np.log(r0))))
    if points and points[-1][1] >= threshold:
        best = points[-1][0]
    return best


def write_outputs(out: Path, rows, summary, classes, args, meta) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "rows.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    original = summary["original@1"]
    threshold = original["dice_mean"]["mean"] - args.dice_drop
    equal = {c: equal_dice_ratio(summary, c, threshold) for c in args.codecs}
    (out / "summary.json").write_text(
        json.dumps({**meta, "summary": summary, "equal_dice": {"threshold": threshold, "ratios": equal}}, indent=2)
        + "\n"
    )

    def fmt(entry, key, digits=3):
        return f"{entry[key]['mean']:.{digits}f} ± {entry[key]['std']:.{digits}f}"

    cols = ["original@1"] + [f"{c}@{args.table_ratio:g}" for c in args.codecs]
    lines = [
        f"# Segmentation at compression ratio {args.table_ratio:g} ({meta['bundle']}, {meta['cases']} cases)",
        "",
        "| class | metric | " + " | ".join(cols) + " |",
        "|---|---|" + "---|" * len(cols),
    ]
    for c in classes:
        for metric, digits in (("dice", 3), ("hausdorff", 2), ("asd", 3)):
            lines.append(
                f"| {c} | {metric} | " + " | ".join(fmt(summary[k], f"{metric}_{c}", digits) for k in cols) + " |"
            )
    lines.append("| all | mean Dice | " + " | ".join(fmt(summary[k], "dice_mean") for k in cols) + " |")
    lines.append("| | achieved ratio | " + " | ".join(fmt(summary[k], "ratio", 1) for k in cols) + " |")
    lines.append("| | PSNR (dB) | " + " | ".join(fmt(summary[k], "psnr_db", 1) for k in cols) + " |")
    lines += [
        "",
        "Hausdorff / ASD in voxels of the network grid; PSNR peak = each volume's grey-level span.",
        f"Lossless zstd ratio: {meta['zstd_ratio']['mean']:.2f} ± {meta['zstd_ratio']['std']:.2f}.",
    ]
    (out / f"table_cr{args.table_ratio:g}.md").write_text("\n".join(lines) + "\n")

    eq = [
        f"# Compression ratio at equal segmentation accuracy ({meta['bundle']})",
        "",
        f"Original mean Dice {original['dice_mean']['mean']:.4f}; threshold = original - {args.dice_drop} = "
        f"{threshold:.4f} (linear interpolation in log ratio between measured points {args.ratios}).",
        "",
        "| codec | largest ratio with mean Dice >= threshold |",
        "|---|---|",
    ]
    eq += [
        f"| {c} | {'n/a (below threshold at every ratio)' if equal[c] is None else f'{equal[c]:.1f}'} |"
        for c in args.codecs
    ]
    if equal.get("mv3d") and equal.get("openjpeg"):
        eq += ["", f"mv3d / openjpeg ratio at equal Dice: {equal['mv3d'] / equal['openjpeg']:.2f}x (paper: ~3x)."]
    (out / "equal_dice.md").write_text("\n".join(eq) + "\n")

    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for codec in args.codecs:
        pts = sorted(
            (v["ratio"]["mean"], v["dice_mean"]["mean"], v[f"dice_{classes[1]}"]["mean"])
            for v in summary.values()
            if v["codec"] == codec
        )
        axes[0].plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=codec)
        axes[1].plot([p[0] for p in pts], [p[2] for p in pts], "o-", label=codec)
    for ax, title in zip(axes, ("mean Dice (foreground classes)", f"Dice {classes[1]}"), strict=True):
        ax.axhline(
            original["dice_mean" if ax is axes[0] else f"dice_{classes[1]}"]["mean"],
            color="k",
            ls="--",
            label="original",
        )
        ax.set_xscale("log")
        ax.set_xticks(args.ratios, [f"{r:g}" for r in args.ratios])
        ax.minorticks_off()
        ax.set_xlabel("compression ratio")
        ax.set_title(title)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "rate_dice.png", dpi=110)


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    segmenter = BundleSegmenter(args.bundle, args.split, args.data_root, args.limit)
    classes = segmenter.classes
    mv = MVWaveletCodec.load(args.state) if args.state else MVWaveletCodec()

    rows, zstd_ratios, started = [], [], time.time()
    for case, sample, raw in tqdm(segmenter.cases(), total=len(segmenter.datalist), desc="cases"):
        zstd_ratios.append(raw.nbytes / len(zstd_encode(raw)))

        def record(codec, target, decoded, nbytes, case=case, raw=raw, sample=sample):
            scores = segmenter.scores(sample, decoded)
            row = {
                "case": case,
                "codec": codec,
                "target_ratio": target,
                "ratio": raw.nbytes / nbytes,
                "psnr_db": psnr(decoded, raw),
                "dice_mean": float(np.nanmean(scores["dice"])),
            }
            for metric, values in scores.items():
                row.update({f"{metric}_{c}": float(v) for c, v in zip(classes, values, strict=True)})
            rows.append(row)

        record("original", 1.0, raw, raw.nbytes)
        for codec in args.codecs:
            for ratio in args.ratios:
                decoded, nbytes = compress(codec, raw, ratio, mv)
                record(codec, ratio, decoded, nbytes)

    summary = summarise(rows, classes)
    meta = {
        "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
        "bundle": args.bundle,
        "split": args.split,
        "cases": len(segmenter.datalist),
        "codec_state": mv.to_dict(),
        "zstd_ratio": {"mean": float(np.mean(zstd_ratios)), "std": float(np.std(zstd_ratios))},
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
        },
        "wall_seconds": round(time.time() - started, 1),
    }
    write_outputs(Path(args.out), rows, summary, classes, args, meta)
    print((Path(args.out) / f"table_cr{args.table_ratio:g}.md").read_text())
    print((Path(args.out) / "equal_dice.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
