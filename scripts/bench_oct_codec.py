"""Encode + decode time per 256x256 B-scan: the learned OCT codec vs JPEG 2000 (OpenJPEG) and JPEG (Pillow).

The tiles are the first 256 lateral samples of preprocessed oct-kermany test canvases. JPEG 2000
and JPEG are set, per tile, to the size closest to (not above) the learned stream, so the three run
at the same measured ratio (printed). Times are medians over ``--repeats`` passes, measured side by
side in one process; the learned codec also runs on CUDA when available (the paper: 0.04 s per
512x256 image on an 11 GB GPU). Writes ``results/oct_codec/bench.{json,md}``.

    nice -n 10 python scripts/bench_oct_codec.py --model bundles/oct_codec/models/model_r40.pt
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import time
from pathlib import Path

import imagecodecs
import numpy as np
import torch
from PIL import Image

from medsecure_transforms.codecs.oct import LearnedOCTCodec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reproduce_oct_codec import _j2k, _jpeg, j2k_level_for, jpeg_quality_for, to8  # noqa: E402
from train_oct_codec import load_canvases  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _median_ms(fn, tiles: list, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        for tile in tiles:
            start = time.perf_counter()
            fn(tile)
            times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(REPO / "bundles" / "oct_codec" / "models" / "model_r40.pt"))
    parser.add_argument("--tiles", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "medsecure" / "oct_codec"))
    parser.add_argument("--out", default=str(REPO / "results" / "oct_codec"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    canvases = load_canvases("test", True, Path(args.cache_dir), args.data_root)[: args.tiles]
    tiles8 = [to8(c[:256, :256]) for c in canvases]
    tiles = [t.astype(np.float32) / 255.0 for t in tiles8]
    codec = LearnedOCTCodec.load(args.model)
    sizes = [len(codec.compress(t)) for t in tiles]
    j2k_items = [(t8, j2k_level_for(t8, n)) for t8, n in zip(tiles8, sizes, strict=True)]
    jpeg_items = [(t8, jpeg_quality_for(t8, n)) for t8, n in zip(tiles8, sizes, strict=True)]
    pix = 256 * 256 * len(tiles)
    rows = {
        "learned (cpu)": {
            "ms": _median_ms(lambda t: codec.decompress(codec.compress(t)), tiles, args.repeats),
            "ratio": pix / sum(sizes),
        },
        "jpeg2000 (openjpeg)": {
            "ms": _median_ms(lambda it: imagecodecs.jpeg2k_decode(_j2k(*it)), j2k_items, args.repeats),
            "ratio": pix / sum(len(_j2k(*it)) for it in j2k_items),
        },
        "jpeg (pillow)": {
            "ms": _median_ms(lambda it: np.asarray(Image.open(io.BytesIO(_jpeg(*it)))), jpeg_items, args.repeats),
            "ratio": pix / sum(len(_jpeg(*it)) for it in jpeg_items),
        },
    }
    if torch.cuda.is_available():
        gpu = LearnedOCTCodec.load(args.model, device="cuda")
        rows["learned (cuda)"] = {
            "ms": _median_ms(lambda t: gpu.decompress(gpu.compress(t)), tiles, args.repeats),
            "ratio": rows["learned (cpu)"]["ratio"],
        }
    base = rows["jpeg2000 (openjpeg)"]["ms"]
    for row in rows.values():
        row["vs_jpeg2000"] = row["ms"] / base
    machine = (
        f"{platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch threads {args.threads}, load avg {os.getloadavg()[0]:.1f}"
    )
    result = {
        "machine": machine,
        "tile": "256x256",
        "tiles": len(tiles),
        "repeats": args.repeats,
        "model": Path(args.model).name,
        "rows": rows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(result, indent=2))
    lines = [
        f"# OCT codec speed, 256x256 B-scan tiles ({len(tiles)} tiles x {args.repeats})",
        "",
        f"Machine: {machine}",
        "",
        "| codec | ratio | encode+decode ms | x JPEG 2000 |",
        "|---|---|---|---|",
    ]
    lines += [f"| {k} | {v['ratio']:.1f} | {v['ms']:.1f} | {v['vs_jpeg2000']:.2f} |" for k, v in rows.items()]
    (out / "bench.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
