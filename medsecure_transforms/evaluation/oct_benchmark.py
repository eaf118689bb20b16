"""Encode + decode time per 256x256 B-scan tile: the learned OCT codec vs JPEG 2000 (OpenJPEG) and JPEG (Pillow).

JPEG 2000 and JPEG are set, per tile, to the largest file not above the learned stream, so the three run at the
same measured ratio. Per tile the codecs are timed alternately (:func:`~.benchmarking.interleaved`, median of
``repeats`` after a warm-up); a codec's time is the median over the tiles.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from ..codecs.baselines import (
    jpeg_decode,
    jpeg_encode,
    jpeg_to_size,
    openjpeg_decode,
    openjpeg_encode,
    openjpeg_to_size,
)
from ..codecs.oct import LearnedOCTCodec
from .benchmarking import interleaved, machine_info
from .oct_data import to_uint8

__all__ = ["bench_markdown", "bench_oct_codec"]

TILE = 256


def bench_oct_codec(model: str | os.PathLike, canvases: Sequence[np.ndarray], repeats: int) -> dict:
    """Time the codecs on the first 256x256 tile of each canvas.

    Args:
        model: learned codec file; it is timed on the CPU, and on CUDA too when a GPU is available.
        canvases: canvases ``[W', 256]`` in ``[0, 1]`` (at least 256 wide).
        repeats: timed passes per tile and codec.

    Returns:
        ``{"machine", "tile", "tiles", "repeats", "model", "rows": {codec: {"ms", "ratio", "vs_jpeg2000"}}}``.
    """
    codec = LearnedOCTCodec.load(model)
    tiles8 = [to_uint8(c[:TILE, :TILE]) for c in canvases]
    tiles = [t.astype(np.float32) / 255.0 for t in tiles8]
    sizes = [len(codec.compress(t)) for t in tiles]
    psnr_db = [openjpeg_to_size(t8, n)[0] for t8, n in zip(tiles8, sizes, strict=True)]
    quality = [jpeg_to_size(t8, n)[0] for t8, n in zip(tiles8, sizes, strict=True)]
    pix = TILE * TILE * len(tiles)

    def learned(device_codec: LearnedOCTCodec) -> Callable[[int], Callable[[], object]]:
        return lambda k: lambda: device_codec.decompress(device_codec.compress(tiles[k]))

    def j2k(k: int) -> Callable[[], object]:
        return lambda: openjpeg_decode(openjpeg_encode(tiles8[k], psnr_db[k], codestream=True))

    def jpeg(k: int) -> Callable[[], object]:
        return lambda: jpeg_decode(jpeg_encode(tiles8[k], quality[k]))

    j2k_bytes = sum(len(openjpeg_encode(t, d, codestream=True)) for t, d in zip(tiles8, psnr_db, strict=True))
    jpeg_bytes = sum(len(jpeg_encode(t, q)) for t, q in zip(tiles8, quality, strict=True))
    timers = {"learned (cpu)": learned(codec), "jpeg2000 (openjpeg)": j2k, "jpeg (pillow)": jpeg}
    ratios = {
        "learned (cpu)": pix / sum(sizes),
        "jpeg2000 (openjpeg)": pix / j2k_bytes,
        "jpeg (pillow)": pix / jpeg_bytes,
    }
    machine = machine_info(load_average=True)
    if torch.cuda.is_available():
        timers["learned (cuda)"] = learned(LearnedOCTCodec.load(model, device="cuda"))
        ratios["learned (cuda)"] = ratios["learned (cpu)"]
        machine["gpu"] = torch.cuda.get_device_name()
    per_tile = [interleaved([timer(k) for timer in timers.values()], repeats) for k in range(len(tiles))]
    rows = {
        name: {"ms": 1000.0 * statistics.median(t[i] for t in per_tile), "ratio": ratios[name]}
        for i, name in enumerate(timers)
    }
    for row in rows.values():
        row["vs_jpeg2000"] = row["ms"] / rows["jpeg2000 (openjpeg)"]["ms"]
    return {
        "machine": machine,
        "tile": f"{TILE}x{TILE}",
        "tiles": len(tiles),
        "repeats": repeats,
        "model": Path(model).name,
        "rows": rows,
    }


def bench_markdown(result: dict) -> str:
    """The timing table of :func:`bench_oct_codec`'s result."""
    m = result["machine"]
    machine = ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in m.items())
    lines = [
        f"# OCT codec speed, {result['tile']} B-scan tiles ({result['tiles']} tiles x {result['repeats']})",
        "",
        f"Machine: {machine}",
        "",
        "| codec | ratio | encode+decode ms | x JPEG 2000 |",
        "|---|---|---|---|",
    ]
    lines += [f"| {k} | {v['ratio']:.1f} | {v['ms']:.1f} | {v['vs_jpeg2000']:.2f} |" for k, v in result["rows"].items()]
    return "\n".join(lines) + "\n"
