"""Speed of MVCompress3D against OpenJPEG (JPEG 2000) and zstd on the same volumes, side by side.

The lossless references: MVCompress3D's lossless mode (reversible 5/3, steps 1) and zstd level 19 of the raw bytes.

Each codec encodes and decodes every volume ``--repeats`` times; the script reports the median wall time per
volume, the throughput in MB/s of raw data, the compression ratio, and MVCompress3D's time relative to
OpenJPEG's. MVCompress3D runs with the paper's parameters (Q 1..16); OpenJPEG is then set (PSNR target search,
not timed) to the same ratio per volume. Results: ``--out``/bench.json and bench.md.

    nice -n 10 python scripts/bench_mv3d.py --dataset cardiac-acdc --limit 6 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from tqdm import tqdm

from medsecure_transforms.codecs.baselines import (
    openjpeg_decode,
    openjpeg_encode,
    openjpeg_to_ratio,
    zstd_decode,
    zstd_encode,
)
from medsecure_transforms.codecs.mvc import MVWaveletCodec
from medsecure_transforms.data import SPLITS, load_datalist, resolve_data_root
from medsecure_transforms.data.volume_io import read_volume


def timed(fn, repeats: int) -> tuple[float, object]:
    """Median seconds of ``repeats`` calls and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


PEAK_SCRIPT = """
import json, sys
from pathlib import Path
from medsecure_transforms.codecs.mvc import MVWaveletCodec
from medsecure_transforms.data.volume_io import read_volume

def status_kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

mode, volume, stream = sys.argv[1:4]
raw, affine, _ = read_volume(volume)
MVWaveletCodec.decode(MVWaveletCodec().encode(raw[:16, :16, :8]))  # warm-up: lazy library set-up is not codec memory
blob = Path(stream).read_bytes() if mode == "decode" else None
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # Linux: reset the peak RSS (VmHWM) to the current RSS
before = status_kib("VmRSS")
if mode == "encode":
    Path(stream).write_bytes(MVWaveletCodec().encode(raw, affine=affine))
else:
    MVWaveletCodec.decode(blob)
print(json.dumps({"volume_bytes": int(raw.nbytes), "peak_increase_bytes": 1024 * (status_kib("VmHWM") - before)}))
"""


def peak_memory(path: str, threads: int) -> dict:
    """Peak RSS (VmHWM, reset first) above the RSS with the volume loaded, of encoding ``path`` in one fresh process
    and decoding its stream in another (the sender and the receiver of a transmission)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        stream = str(Path(tmp) / "volume.mvc")
        for mode in ("encode", "decode"):
            command = [sys.executable, "-c", PEAK_SCRIPT, mode, path, stream]
            done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
            measured = json.loads(done.stdout.strip().splitlines()[-1])
            result["volume_bytes"] = measured["volume_bytes"]
            result[f"{mode}_peak_increase_bytes"] = measured["peak_increase_bytes"]
            result[f"{mode}_ratio_to_volume"] = measured["peak_increase_bytes"] / measured["volume_bytes"]
    result["ratio_to_volume"] = max(result["encode_ratio_to_volume"], result["decode_ratio_to_volume"])
    return result


def largest_volume(datasets: list[str], root) -> str:
    """Path of the 3-D image with the most raw bytes (from the NIfTI headers) over every split of ``datasets``."""
    sizes = {}
    for name in datasets:
        for split in SPLITS:
            try:
                items = load_datalist(name, split, root)
            except ValueError:  # a dataset without this split
                continue
            for item in items:
                header = nib.load(str(item["image"])).header
                if len(header.get_data_shape()) == 3:
                    sizes[str(item["image"])] = int(np.prod(header.get_data_shape())) * header.get_data_dtype().itemsize
    return max(sizes, key=sizes.get)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="cardiac-acdc")
    p.add_argument("--split", default="test")
    p.add_argument("--data-root", default=None)
    p.add_argument("--limit", type=int, default=6)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--memory-datasets",
        nargs="+",
        default=["cardiac-acdc", "cardiac-la2018", "brain-t1-aseg"],
        help="the peak-memory check runs on the largest 3-D volume of these datasets",
    )
    p.add_argument("--out", default="results/mv3d")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    root = resolve_data_root(args.data_root)
    datalist = load_datalist(args.dataset, args.split, root, limit=args.limit)
    codec, lossless = MVWaveletCodec(), MVWaveletCodec.lossless()
    rows = []
    for item in tqdm(datalist, desc="volumes"):
        raw, affine, _ = read_volume(item["image"])
        enc_s, blob = timed(lambda raw=raw, affine=affine: codec.encode(raw, affine=affine), args.repeats)
        dec_s, _ = timed(lambda blob=blob: codec.decode(blob), args.repeats)
        ratio = raw.nbytes / len(blob)
        psnr_db, jblob = openjpeg_to_ratio(raw, ratio)
        jenc_s, _ = timed(lambda raw=raw, psnr_db=psnr_db: openjpeg_encode(raw, psnr_db), args.repeats)
        jdec_s, _ = timed(lambda jblob=jblob: openjpeg_decode(jblob), args.repeats)
        lenc_s, lblob = timed(lambda raw=raw, affine=affine: lossless.encode(raw, affine=affine), args.repeats)
        ldec_s, decoded = timed(lambda lblob=lblob: lossless.decode(lblob), args.repeats)
        if not np.array_equal(decoded[0], raw):
            raise AssertionError(f"{item['image']}: lossless mode did not round-trip")
        zenc_s, zblob = timed(lambda raw=raw: zstd_encode(raw), args.repeats)
        zdec_s, _ = timed(lambda zblob=zblob, raw=raw: zstd_decode(zblob, raw.shape, raw.dtype.name), args.repeats)
        rows.append(
            {
                "volume": Path(str(item["image"])).name,
                "shape": list(raw.shape),
                "dtype": raw.dtype.name,
                "raw_mb": raw.nbytes / 1e6,
                "mv3d": {"encode_s": enc_s, "decode_s": dec_s, "ratio": ratio},
                "openjpeg": {"encode_s": jenc_s, "decode_s": jdec_s, "ratio": raw.nbytes / len(jblob)},
                "mv3d_lossless": {"encode_s": lenc_s, "decode_s": ldec_s, "ratio": raw.nbytes / len(lblob)},
                "zstd": {"encode_s": zenc_s, "decode_s": zdec_s, "ratio": raw.nbytes / len(zblob)},
            }
        )
    largest = largest_volume(args.memory_datasets, root)
    memory = {"volume": str(Path(largest).relative_to(root)), **peak_memory(largest, args.threads)}
    total_mb = sum(r["raw_mb"] for r in rows)
    table = {}
    for name in ("mv3d", "openjpeg", "mv3d_lossless", "zstd"):
        enc = sum(r[name]["encode_s"] for r in rows)
        dec = sum(r[name]["decode_s"] for r in rows)
        table[name] = {
            "encode_ms_per_volume": 1000 * enc / len(rows),
            "decode_ms_per_volume": 1000 * dec / len(rows),
            "encode_mb_s": total_mb / enc,
            "decode_mb_s": total_mb / dec,
            "mean_ratio": float(np.mean([r[name]["ratio"] for r in rows])),
        }
    relative = {
        "mv3d_encode_vs_openjpeg": table["mv3d"]["encode_ms_per_volume"] / table["openjpeg"]["encode_ms_per_volume"],
        "mv3d_decode_vs_openjpeg": table["mv3d"]["decode_ms_per_volume"] / table["openjpeg"]["decode_ms_per_volume"],
    }
    machine = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "note": "shared CPU (several jobs at once): absolute times are upper bounds, ratios are side by side",
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "command": " ".join(["bench_mv3d.py", *(argv or sys.argv[1:])]),
        "dataset": args.dataset,
        "volumes": len(rows),
        "repeats": args.repeats,
        "machine": machine,
        "summary": table,
        "relative": relative,
        "peak_memory": memory,
        "rows": rows,
    }
    (out / "bench.json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = [
        f"# MVCompress3D speed ({args.dataset}, {len(rows)} volumes, median of {args.repeats})",
        "",
        "| codec | encode ms/vol | decode ms/vol | encode MB/s | decode MB/s | mean ratio |",
        "|---|---|---|---|---|---|",
    ]
    for name, t in table.items():
        lines.append(
            f"| {name} | {t['encode_ms_per_volume']:.0f} | {t['decode_ms_per_volume']:.0f} | "
            f"{t['encode_mb_s']:.1f} | {t['decode_mb_s']:.1f} | {t['mean_ratio']:.1f} |"
        )
    lines += [
        "",
        f"MVCompress3D / OpenJPEG time: encode {relative['mv3d_encode_vs_openjpeg']:.2f}x, "
        f"decode {relative['mv3d_decode_vs_openjpeg']:.2f}x (same volumes, same ratio).",
        f"Peak memory on the largest volume ({memory['volume']}, {memory['volume_bytes']} bytes), above the loaded "
        f"volume: encode {memory['encode_peak_increase_bytes'] / 1e6:.1f} MB = "
        f"{memory['encode_ratio_to_volume']:.1f}x its size, decode {memory['decode_peak_increase_bytes'] / 1e6:.1f} MB "
        f"= {memory['decode_ratio_to_volume']:.1f}x (each in its own process).",
        f"Machine: {machine['platform']}, {machine['cpu_count']} CPUs, torch threads {machine['torch_threads']}; "
        f"{machine['note']}.",
    ]
    (out / "bench.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
