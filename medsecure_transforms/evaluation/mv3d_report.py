"""Tables and plot of the MVCompress3D rate-accuracy study (:mod:`.mv3d_study`): per codec and ratio summary, the
paper's Table 1 at equal ratio, the ratio each codec reaches at equal Dice (the paper's Fig. 6) and the rate-Dice
curves. Every file is written atomically (a crash leaves the previous version or none).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..artefacts import atomic_write

__all__ = ["equal_dice_markdown", "equal_dice_ratio", "rate_dice_plot", "summarise", "table_markdown", "write_report"]


def summarise(rows: Sequence[dict], classes: Sequence[str]) -> dict[str, dict]:
    """``{"<codec>@<target ratio>": {"codec", "target_ratio", "cases", <metric>: {"mean", "std"}}}`` over the cases
    (population std; NaN and infinite values left out, e.g. PSNR of the uncompressed volume), in order of first
    appearance in ``rows``."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["codec"], row["target_ratio"]), []).append(row)
    keys = ["ratio", "psnr_db", "dice_mean"] + [f"{m}_{c}" for m in ("dice", "hausdorff", "asd") for c in classes]
    out = {}
    for (codec, ratio), items in groups.items():
        entry = {"codec": codec, "target_ratio": ratio, "cases": len(items)}
        for key in keys:
            values = np.array([r[key] for r in items], dtype=np.float64)
            values = values[np.isfinite(values)]
            entry[key] = {
                "mean": float(values.mean()) if values.size else float("nan"),
                "std": float(values.std()) if values.size else float("nan"),
            }
        out[f"{codec}@{ratio:g}"] = entry
    return out


def equal_dice_ratio(summary: dict[str, dict], codec: str, threshold: float) -> float | None:
    """Largest mean ratio at which ``codec``'s mean Dice stays >= ``threshold``: linear interpolation in log ratio to
    the first crossing of the (ratio-sorted) points, the largest ratio when none falls below, ``None`` when the first
    point is already below."""
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


def _fmt(entry: dict, key: str, digits: int = 3) -> str:
    return f"{entry[key]['mean']:.{digits}f} ± {entry[key]['std']:.{digits}f}"


def table_markdown(payload: dict, classes: Sequence[str], codecs: Sequence[str], table_ratio: float) -> str:
    """The paper's Table 1: per class Dice / Hausdorff / ASD, mean Dice, ratio and PSNR at ``table_ratio``."""
    summary = payload["summary"]
    cols = ["original@1"] + [f"{c}@{table_ratio:g}" for c in codecs]
    lines = [
        f"# Segmentation at compression ratio {table_ratio:g} ({payload['bundle']}, {payload['cases']} cases)",
        "",
        "| class | metric | " + " | ".join(cols) + " |",
        "|---|---|" + "---|" * len(cols),
    ]
    for c in classes:
        for metric, digits in (("dice", 3), ("hausdorff", 2), ("asd", 3)):
            lines.append(
                f"| {c} | {metric} | " + " | ".join(_fmt(summary[k], f"{metric}_{c}", digits) for k in cols) + " |"
            )
    lines.append("| all | mean Dice | " + " | ".join(_fmt(summary[k], "dice_mean") for k in cols) + " |")
    lines.append("| | achieved ratio | " + " | ".join(_fmt(summary[k], "ratio", 1) for k in cols) + " |")
    lines.append("| | PSNR (dB) | " + " | ".join(_fmt(summary[k], "psnr_db", 1) for k in cols) + " |")
    zstd = payload["zstd_ratio"]
    lines += [
        "",
        "Hausdorff / ASD in voxels of the network grid; PSNR peak = each volume's grey-level span.",
        f"Lossless zstd ratio: {zstd['mean']:.2f} ± {zstd['std']:.2f}.",
    ]
    return "\n".join(lines) + "\n"


def equal_dice_markdown(payload: dict, codecs: Sequence[str], ratios: Sequence[float], dice_drop: float) -> str:
    """The ratio each codec reaches at the original mean Dice minus ``dice_drop`` (``payload["equal_dice"]``)."""
    original = payload["summary"]["original@1"]["dice_mean"]["mean"]
    threshold, equal = payload["equal_dice"]["threshold"], payload["equal_dice"]["ratios"]
    lines = [
        f"# Compression ratio at equal segmentation accuracy ({payload['bundle']})",
        "",
        f"Original mean Dice {original:.4f}; threshold = original - {dice_drop} = {threshold:.4f} "
        f"(linear interpolation in log ratio between measured points {list(ratios)}).",
        "",
        "| codec | largest ratio with mean Dice >= threshold |",
        "|---|---|",
    ]
    lines += [
        f"| {c} | {'n/a (below threshold at every ratio)' if equal[c] is None else f'{equal[c]:.1f}'} |" for c in codecs
    ]
    if equal.get("mv3d") and equal.get("openjpeg"):
        lines += ["", f"mv3d / openjpeg ratio at equal Dice: {equal['mv3d'] / equal['openjpeg']:.2f}x (paper: ~3x)."]
    return "\n".join(lines) + "\n"


def rate_dice_plot(
    path: Path, summary: dict, classes: Sequence[str], codecs: Sequence[str], ratios: Sequence[float]
) -> None:
    """Mean foreground Dice and the Dice of the second foreground class (the only one if there is one) against the
    achieved ratio (log axis), as a PNG."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2)
    original = summary["original@1"]
    second = classes[min(1, len(classes) - 1)]
    keys = ("dice_mean", f"dice_{second}")
    for codec in codecs:
        pts = sorted(
            (v["ratio"]["mean"], v[keys[0]]["mean"], v[keys[1]]["mean"])
            for v in summary.values()
            if v["codec"] == codec
        )
        for ax, i in zip(axes, (1, 2), strict=True):
            ax.plot([p[0] for p in pts], [p[i] for p in pts], "o-", label=codec)
    for ax, key, title in zip(axes, keys, ("mean Dice (foreground classes)", f"Dice {second}"), strict=True):
        ax.axhline(original[key]["mean"], color="k", ls="--", label="original")
        ax.set_xscale("log")
        ax.set_xticks(ratios, [f"{r:g}" for r in ratios])
        ax.minorticks_off()
        ax.set_xlabel("compression ratio")
        ax.set_title(title)
        ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))


def write_report(
    out: str | Path,
    rows: Sequence[dict],
    classes: Sequence[str],
    meta: dict,
    codecs: Sequence[str],
    ratios: Sequence[float],
    table_ratio: float,
    dice_drop: float,
) -> dict:
    """Write ``rows.csv``, ``summary.json`` (``meta`` + summary + equal-Dice ratios), ``table_cr<R>.md``,
    ``equal_dice.md`` and ``rate_dice.png`` into ``out``; returns the ``summary.json`` payload."""
    out = Path(out)
    summary = summarise(rows, classes)
    threshold = summary["original@1"]["dice_mean"]["mean"] - dice_drop
    equal = {c: equal_dice_ratio(summary, c, threshold) for c in codecs}
    payload = {**meta, "summary": summary, "equal_dice": {"threshold": threshold, "ratios": equal}}
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    texts = {
        "rows.csv": table.getvalue(),
        "summary.json": json.dumps(payload, indent=2) + "\n",
        f"table_cr{table_ratio:g}.md": table_markdown(payload, classes, codecs, table_ratio),
        "equal_dice.md": equal_dice_markdown(payload, codecs, ratios, dice_drop),
    }
    for name, text in texts.items():
        atomic_write(out / name, lambda f, text=text: f.write(text.encode()))
    rate_dice_plot(out / "rate_dice.png", summary, classes, codecs, ratios)
    return payload
