"""``medsecure compress`` / ``medsecure decompress``: MVCompress3D ``.mvc`` files from/to NIfTI or DICOM series."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..codecs.mvc.codec import MAPPINGS, MVWaveletCodec, decompress_volume, encode_to_ratio
from ..codecs.mvc.format import WAVELETS
from ..data.dicom_series import (
    STORAGE_CLASSES,
    LossyCompression,
    identifiers_sidecar,
    load_identifiers,
    read_dicom_series,
    save_identifiers,
    write_dicom_series,
)
from ..data.volume_io import read_volume, write_nifti
from ..frequency.wavelet import REVERSIBLE_53

LOSSY_METHOD = "MEDSECURE_MVC"
"""LossyImageCompressionMethod of series decoded from a lossy ``.mvc`` (DICOM defines no term for this codec)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``compress`` and ``decompress`` subcommands."""
    comp = subparsers.add_parser(
        "compress",
        help="compress a NIfTI file, DICOM series folder or .npy volume into an MVCompress3D .mvc file",
        description="Machine-vision guided 3D wavelet compression (Liu et al., CVPR 2019) into the .mvc format.",
    )
    comp.add_argument("input", help="NIfTI file, DICOM series folder or .npy array")
    comp.add_argument("output", help="output .mvc file")
    comp.add_argument("--state", help="codec parameters as JSON (from `medsecure calibrate mv3d`); flags override")
    comp.add_argument("--wavelet", choices=WAVELETS, help="wavelet (default bior4.4 = CDF 9/7)")
    comp.add_argument("--levels", type=int, nargs="+", help="levels per spatial axis (default 3 3 3)")
    comp.add_argument("--q-min", type=float, help="smallest quantization step (default 1)")
    comp.add_argument("--q-max", type=float, help="largest quantization step (default 16)")
    comp.add_argument("--mapping", choices=MAPPINGS, help="step mapping (default machine_vision = Eq. 4)")
    comp.add_argument("--value-range", type=float, help="intensities mapped to [0, value_range] (default 255)")
    comp.add_argument("--raw-units", action="store_true", help="code raw intensities (steps in stored units)")
    rate = comp.add_mutually_exclusive_group()
    rate.add_argument("--target-ratio", type=float, help="scale the steps until this compression ratio is met")
    rate.add_argument("--scale", type=float, help="multiply both step bounds by this factor (fixed quality)")
    rate.add_argument(
        "--lossless", action="store_true", help="bit-exact: reversible 5/3 lifting, steps 1 (integer volumes only)"
    )
    comp.add_argument(
        "--keep-identifiers",
        action="store_true",
        help="DICOM input: keep patient/study identifiers in <output>.identifiers.json (default: drop)",
    )
    comp.set_defaults(func=run_compress)

    dec = subparsers.add_parser("decompress", help="decode an .mvc file into NIfTI or a DICOM series")
    dec.add_argument("input", help=".mvc file")
    dec.add_argument("output", help="output NIfTI file (.nii or .nii.gz); any other name: a new DICOM series folder")
    dec.add_argument(
        "--drop-identifiers",
        action="store_true",
        help="DICOM output: ignore <input>.identifiers.json (new study UID, empty patient fields)",
    )
    dec.add_argument("--modality", choices=sorted(STORAGE_CLASSES), default="MR", help="DICOM output modality")
    dec.set_defaults(func=run_decompress)


def codec_from_args(args: argparse.Namespace, spatial_dims: int) -> MVWaveletCodec:
    """Codec from ``--state`` (if given) with every explicit flag applied on top.

    Without ``--levels`` or a state, a ``spatial_dims``-D input gets 3 levels per axis.
    """
    state = json.loads(Path(args.state).read_text()) if args.state else {"levels": [3] * spatial_dims}
    overrides = {
        "wavelet": args.wavelet,
        "levels": args.levels,
        "q_min": args.q_min,
        "q_max": args.q_max,
        "mapping": args.mapping,
        "value_range": args.value_range,
    }
    state.update({k: v for k, v in overrides.items() if v is not None})
    if args.raw_units:
        state["value_range"] = None
    if args.lossless:
        lossy = [f"--{k.replace('_', '-')}" for k, v in overrides.items() if v is not None and k != "levels"]
        if lossy or args.raw_units:
            raise ValueError(f"--lossless fixes the wavelet and steps; drop {lossy + ['--raw-units'] * args.raw_units}")
        return MVWaveletCodec.lossless(state["levels"])
    codec = MVWaveletCodec.from_dict(state)
    if args.scale is not None:
        if not args.scale > 0:
            raise ValueError(f"--scale must be positive, got {args.scale}")
        codec = codec.scaled(args.scale)
    return codec


def run_compress(args: argparse.Namespace) -> int:
    sidecar = identifiers_sidecar(args.output)
    sidecar.unlink(missing_ok=True)  # never leave identifiers of an earlier run beside a new file
    if Path(args.input).is_dir():
        series = read_dicom_series(args.input)
        array, affine, spacing = series.array, series.affine, series.spacing
        if args.keep_identifiers:
            save_identifiers(sidecar, series.identifiers)
    else:
        array, affine, spacing = read_volume(args.input)
    codec = codec_from_args(args, array.ndim)
    if args.target_ratio:
        codec, blob = encode_to_ratio(codec, array, args.target_ratio, affine=affine, spacing=spacing)
    else:
        blob = codec.encode(array, affine=affine, spacing=spacing)
    Path(args.output).write_bytes(blob)
    summary = {
        "input": str(args.input),
        "output": str(args.output),
        "shape": list(array.shape),
        "dtype": array.dtype.name,
        "original_bytes": int(array.nbytes),
        "compressed_bytes": len(blob),
        "compression_ratio": round(array.nbytes / len(blob), 3),
        "bits_per_voxel": round(8 * len(blob) / array.size, 4),
        "codec": codec.to_dict(),
    }
    print(json.dumps(summary, indent=2))
    return 0


def run_decompress(args: argparse.Namespace) -> int:
    array, header = decompress_volume(Path(args.input).read_bytes())
    if args.output.endswith((".nii", ".nii.gz")):
        write_nifti(args.output, array, header.affine)
    else:
        sidecar = identifiers_sidecar(args.input)
        identifiers = None if args.drop_identifiers or not sidecar.is_file() else load_identifiers(sidecar)
        lossy = None if header.wavelet == REVERSIBLE_53 else LossyCompression(header.compression_ratio, LOSSY_METHOD)
        write_dicom_series(
            array, header.affine, args.output, identifiers=identifiers, modality=args.modality, lossy=lossy
        )
    print(
        json.dumps(
            {
                "input": str(args.input),
                "output": str(args.output),
                "shape": list(array.shape),
                "dtype": header.dtype,
                "compression_ratio": round(header.compression_ratio, 3),
            },
            indent=2,
        )
    )
    return 0
