"""Writers for evaluation reports: aggregate per-sample rows, JSON, CSV and a Markdown table (mean +- std)."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["aggregate", "format_mean_std", "write_csv", "write_json", "write_markdown"]


def aggregate(rows: Sequence[Mapping]) -> dict[str, dict[str, float]]:
    """``{column: {"mean", "std", "n"}}`` over the numeric columns of ``rows`` (population std, NaNs skipped)."""
    columns = [k for k, v in rows[0].items() if isinstance(v, int | float) and not isinstance(v, bool)]
    summary = {}
    for column in columns:
        values = np.array([row[column] for row in rows if column in row], dtype=float)
        values = values[np.isfinite(values)]
        summary[column] = {
            "mean": float(values.mean()) if values.size else float("nan"),
            "std": float(values.std()) if values.size else float("nan"),
            "n": int(values.size),
        }
    return summary


def format_mean_std(stats: Mapping[str, float] | None, scale: float = 1.0, digits: int = 1) -> str:
    """``"71.1 +- 4.2"`` (values times ``scale``), ``"-"`` when missing."""
    if stats is None or not np.isfinite(stats["mean"]):
        return "-"
    return f"{stats['mean'] * scale:.{digits}f} ± {stats['std'] * scale:.{digits}f}"


def write_json(path: Path, payload: Mapping) -> Path:
    """Pretty JSON (NaN written as null)."""

    def clean(value):
        if isinstance(value, float) and not np.isfinite(value):
            return None
        if isinstance(value, Mapping):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    path.write_text(json.dumps(clean(payload), indent=2) + "\n")
    return path


def write_csv(path: Path, rows: Sequence[Mapping]) -> Path:
    """One line per row; the header is the union of the keys in first-seen order."""
    header: list[str] = []
    for row in rows:
        header.extend(k for k in row if k not in header)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_markdown(
    path: Path,
    summary: Mapping[str, Mapping[str, float]],
    conditions: Sequence[str],
    regions: Sequence[str],
    params: Mapping,
) -> Path:
    """Condition x region table of Dice/IoU (%, mean ± std) plus the attack's statistics."""
    header = ["condition", *[f"{r} {m}" for r in regions for m in ("Dice", "IoU")], "target IoU"]
    lines = [
        f"# Robustness: {params['attack']['name']} on {params['samples']} samples",
        "",
        "Dice / IoU in % vs the ground truth (mean ± std); target IoU: foreground IoU of the prediction with the "
        "attack target.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for cond in conditions:
        cells = [format_mean_std(summary.get(f"{cond}/{r}/{m}"), 100) for r in regions for m in ("dice", "iou")]
        cells.append(format_mean_std(summary.get(f"{cond}/target_iou"), 100))
        lines.append(f"| {cond} | " + " | ".join(cells) + " |")
    attack_rows = [
        ("iterations", "attack/iterations", 1, 1),
        ("target IoU (%)", "attack/target_iou", 100, 1),
        ("L2", "attack/l2", 1, 3),
        ("Linf (x/255)", "attack/linf", 255, 2),
        ("seconds per sample", "attack/seconds", 1, 2),
    ]
    lines += ["", "| attack | value |", "|---|---|"]
    lines += [
        f"| {label} | {format_mean_std(summary.get(key), scale, digits)} |" for label, key, scale, digits in attack_rows
    ]
    if "attack/success_rate" in summary:
        lines.append(
            f"| success rate (target IoU >= {params['success_iou']}) | "
            f"{100 * summary['attack/success_rate']['mean']:.1f} % |"
        )
    lines += ["", "Attack parameters: `" + json.dumps(params["attack"]) + "`", ""]
    path.write_text("\n".join(lines))
    return path
