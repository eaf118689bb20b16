"""Peak memory of one MVCompress3D encode or decode, measured in a fresh process (Linux ``/proc``).

    python -m medsecure_transforms.evaluation.mv3d_peak_memory encode VOLUME STREAM   # writes STREAM
    python -m medsecure_transforms.evaluation.mv3d_peak_memory decode VOLUME STREAM   # reads STREAM

Prints one JSON line ``{"volume_bytes", "peak_increase_bytes"}``: the peak resident set (``VmHWM``, reset first)
above the resident set with the volume (and, to decode, the stream) loaded. Run by
:func:`.mv3d_benchmark.peak_memory`, one process for the sender and one for the receiver.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..codecs.mvc import MVWaveletCodec
from ..data.volume_io import read_volume

__all__ = ["measure", "status_kib"]


def status_kib(field: str) -> int:
    """A ``/proc/self/status`` field in KiB (``VmRSS``, ``VmHWM``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(f"/proc/self/status has no {field}")


def measure(mode: str, volume: str, stream: str) -> dict:
    """Encode ``volume`` (a NIfTI/DICOM path) to ``stream`` or decode ``stream``; the memory it took, in bytes."""
    raw, affine, _ = read_volume(volume)
    MVWaveletCodec.decode(
        MVWaveletCodec().encode(raw[:16, :16, :8])
    )  # warm-up: lazy library set-up is not codec memory
    blob = Path(stream).read_bytes() if mode == "decode" else None
    Path("/proc/self/clear_refs").write_text("5")  # Linux: reset the peak RSS (VmHWM) to the current RSS
    before = status_kib("VmRSS")
    if mode == "encode":
        Path(stream).write_bytes(MVWaveletCodec().encode(raw, affine=affine))
    else:
        MVWaveletCodec.decode(blob)
    return {"volume_bytes": int(raw.nbytes), "peak_increase_bytes": 1024 * (status_kib("VmHWM") - before)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("encode", "decode"))
    parser.add_argument("volume")
    parser.add_argument("stream")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.mode, args.volume, args.stream)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
