"""Speed and memory of MVCompress3D against OpenJPEG (JPEG 2000) and zstd on the same volumes, side by side.

Per volume, MVCompress3D runs with the paper's parameters (Q 1..16); OpenJPEG is set (PSNR target search, not timed)
to the same ratio; the lossless references are MVCompress3D's lossless mode (reversible 5/3, steps 1) and zstd
level 19 of the raw bytes. The four encoders are timed interleaved, then the four decoders
(:func:`.benchmarking.interleaved`), so load changes on a shared machine hit them alike. Peak memory is measured on
the largest volume, encoding and decoding each in a fresh process (:mod:`.mv3d_peak_memory`).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from tqdm import tqdm

from ..codecs.baselines import openjpeg_decode, openjpeg_encode, openjpeg_to_ratio, zstd_decode, zstd_encode
from ..codecs.mvc import MVWaveletCodec
from ..data import SPLITS, load_datalist, resolve_data_root
from ..data.volume_io import read_volume
from .benchmarking import interleaved, machine_info

__all__ = ["BENCH_CODECS", "benchmark_markdown", "benchmark_mv3d", "largest_volume", "peak_memory", "time_codecs"]

BENCH_CODECS = ("mv3d", "openjpeg", "mv3d_lossless", "zstd")
NOTE = "shared CPU (several jobs at once): absolute times are upper bounds, ratios are side by side"


def time_codecs(raw: np.ndarray, affine: np.ndarray | None, repeats: int) -> dict[str, dict]:
    """``{codec: {"encode_s", "decode_s", "ratio"}}`` (median seconds) for each of :data:`BENCH_CODECS` on ``raw``.

    Raises:
        RuntimeError: the lossless mode does not give ``raw`` back.
    """
    codec, lossless = MVWaveletCodec(), MVWaveletCodec.lossless()
    blob = codec.encode(raw, affine=affine)
    psnr_db, jblob = openjpeg_to_ratio(raw, raw.nbytes / len(blob))
    lblob = lossless.encode(raw, affine=affine)
    if not np.array_equal(lossless.decode(lblob)[0], raw):
        raise RuntimeError("lossless mode did not round-trip")
    zblob = zstd_encode(raw)
    encode = interleaved(
        [
            lambda: codec.encode(raw, affine=affine),
            lambda: openjpeg_encode(raw, psnr_db),
            lambda: lossless.encode(raw, affine=affine),
            lambda: zstd_encode(raw),
        ],
        repeats,
    )
    decode = interleaved(
        [
            lambda: codec.decode(blob),
            lambda: openjpeg_decode(jblob),
            lambda: lossless.decode(lblob),
            lambda: zstd_decode(zblob, raw.shape, raw.dtype.name),
        ],
        repeats,
    )
    blobs = (blob, jblob, lblob, zblob)
    return {
        name: {"encode_s": enc, "decode_s": dec, "ratio": raw.nbytes / len(b)}
        for name, enc, dec, b in zip(BENCH_CODECS, encode, decode, blobs, strict=True)
    }


def peak_memory(path: str | os.PathLike, threads: int) -> dict:
    """Peak RSS above the RSS with the volume loaded of encoding ``path`` in one fresh process and decoding its
    stream in another (the sender and the receiver of a transmission), in bytes and as multiples of the volume."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    result: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        stream = str(Path(tmp) / "volume.mvc")
        for mode in ("encode", "decode"):
            command = [
                sys.executable,
                "-m",
                "medsecure_transforms.evaluation.mv3d_peak_memory",
                mode,
                str(path),
                stream,
            ]
            done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
            measured = json.loads(done.stdout.strip().splitlines()[-1])
            result["volume_bytes"] = measured["volume_bytes"]
            result[f"{mode}_peak_increase_bytes"] = measured["peak_increase_bytes"]
            result[f"{mode}_ratio_to_volume"] = measured["peak_increase_bytes"] / measured["volume_bytes"]
    result["ratio_to_volume"] = max(result["encode_ratio_to_volume"], result["decode_ratio_to_volume"])
    return result


def largest_volume(datasets: Sequence[str], root: str | os.PathLike) -> str:
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


def benchmark_mv3d(
    dataset: str = "cardiac-acdc",
    split: str = "test",
    data_root: str | os.PathLike | None = None,
    limit: int | None = 6,
    repeats: int = 3,
    threads: int = 1,
    memory_datasets: Sequence[str] = ("cardiac-acdc", "cardiac-la2018", "brain-t1-aseg"),
    command: str = "",
    progress: bool = True,
) -> dict:
    """Time every codec on the first ``limit`` volumes of ``dataset``/``split`` and measure peak memory on the largest
    3-D volume of ``memory_datasets`` (subprocesses with ``threads`` OpenMP threads).

    Returns:
        ``{"command", "dataset", "volumes", "repeats", "machine", "summary" (per codec: ms per volume, MB/s, mean
        ratio), "relative" (MVCompress3D / OpenJPEG time), "peak_memory", "rows" (per volume)}``.
    """
    root = resolve_data_root(data_root)
    rows = []
    for item in tqdm(load_datalist(dataset, split, root, limit=limit), desc="volumes", disable=not progress):
        raw, affine, _ = read_volume(item["image"])
        rows.append(
            {
                "volume": Path(str(item["image"])).name,
                "shape": list(raw.shape),
                "dtype": raw.dtype.name,
                "raw_mb": raw.nbytes / 1e6,
                **time_codecs(raw, affine, repeats),
            }
        )
    largest = largest_volume(memory_datasets, root)
    memory = {"volume": str(Path(largest).relative_to(root)), **peak_memory(largest, threads)}
    total_mb = sum(r["raw_mb"] for r in rows)
    table = {}
    for name in BENCH_CODECS:
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
        f"mv3d_{step}_vs_openjpeg": table["mv3d"][f"{step}_ms_per_volume"] / table["openjpeg"][f"{step}_ms_per_volume"]
        for step in ("encode", "decode")
    }
    return {
        "command": command,
        "dataset": dataset,
        "volumes": len(rows),
        "repeats": repeats,
        "machine": {"platform": platform.platform(), **machine_info(), "note": NOTE},
        "summary": table,
        "relative": relative,
        "peak_memory": memory,
        "rows": rows,
    }


def benchmark_markdown(payload: dict) -> str:
    """The speed table, the MVCompress3D / OpenJPEG time ratios and the peak memory of a :func:`benchmark_mv3d`
    result."""
    relative, memory, machine = payload["relative"], payload["peak_memory"], payload["machine"]
    lines = [
        f"# MVCompress3D speed ({payload['dataset']}, {payload['volumes']} volumes, median of {payload['repeats']})",
        "",
        "| codec | encode ms/vol | decode ms/vol | encode MB/s | decode MB/s | mean ratio |",
        "|---|---|---|---|---|---|",
    ]
    for name, t in payload["summary"].items():
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
        f"Machine: {machine['platform']}, {machine['cores']} CPUs, torch threads {machine['threads']}; "
        f"{machine['note']}.",
    ]
    return "\n".join(lines) + "\n"
