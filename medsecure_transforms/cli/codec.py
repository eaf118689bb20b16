"""``medsecure compress`` / ``medsecure decompress``: MVCompress3D ``.mvc`` files from/to NIfTI or DICOM series.

Outputs are written under a temporary name and renamed into place; an existing output is refused unless
``--overwrite``, an output that is the input always.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .arguments import add_command, add_overwrite_argument, add_threads_argument, float32_positive, positive_float
from .outputs import check_outputs, staged_file, staged_folder

LOSSY_METHOD = "MEDSECURE_MVC"
"""LossyImageCompressionMethod of series decoded from a lossy ``.mvc`` (DICOM defines no term for this codec)."""
WAVELETS_HELP = "haar, db2, bior2.2, bior4.4 (CDF 9/7) or rev5/3 (lossless)"
MAPPINGS_HELP = "machine_vision (Eq. 4), jpeg2000 or uniform"
MODALITIES = ("CT", "MR")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``compress`` and ``decompress`` subcommands."""
    comp = add_command(
        subparsers,
        "compress",
        help="compress a NIfTI file, DICOM series folder or .npy volume into an MVCompress3D .mvc file",
        description="Machine-vision guided 3D wavelet compression (Liu et al., CVPR 2019) into the .mvc format.",
        func=run_compress,
    )
    comp.add_argument("input", help="NIfTI file, DICOM series folder or .npy array")
    comp.add_argument("output", help="output .mvc file")
    comp.add_argument("--state", help="codec parameters as JSON (from `medsecure calibrate mv3d`); flags override")
    comp.add_argument("--wavelet", help=f"wavelet: {WAVELETS_HELP} (default: bior4.4)")
    comp.add_argument("--levels", type=int, nargs="+", help="levels per spatial axis (default: 3 per axis)")
    comp.add_argument("--q-min", type=float32_positive, help="smallest quantization step (default: 1)")
    comp.add_argument("--q-max", type=float32_positive, help="largest quantization step (default: 16)")
    comp.add_argument("--mapping", help=f"step mapping: {MAPPINGS_HELP} (default: machine_vision)")
    comp.add_argument(
        "--value-range", type=float32_positive, help="intensities mapped to [0, value_range] (default: 255)"
    )
    comp.add_argument("--raw-units", action="store_true", help="code raw intensities (steps in stored units)")
    rate = comp.add_mutually_exclusive_group()
    rate.add_argument("--target-ratio", type=positive_float, help="scale the steps until this compression ratio is met")
    rate.add_argument("--scale", type=positive_float, help="multiply both step bounds by this factor (fixed quality)")
    rate.add_argument(
        "--lossless", action="store_true", help="bit-exact: reversible 5/3 lifting, steps 1 (integer volumes only)"
    )
    comp.add_argument(
        "--keep-identifiers",
        action="store_true",
        help="DICOM input: keep patient/study identifiers in <output>.identifiers.json (default: drop)",
    )
    add_overwrite_argument(comp)
    add_threads_argument(comp)

    dec = add_command(
        subparsers, "decompress", help="decode an .mvc file into NIfTI or a DICOM series", func=run_decompress
    )
    dec.add_argument("input", help=".mvc file")
    dec.add_argument("output", help="output NIfTI file (.nii or .nii.gz); any other name: a new DICOM series folder")
    dec.add_argument(
        "--drop-identifiers",
        action="store_true",
        help="DICOM output: ignore <input>.identifiers.json (new study UID, empty patient fields)",
    )
    dec.add_argument("--modality", choices=MODALITIES, default="MR", help="DICOM output modality")
    add_overwrite_argument(dec)
    add_threads_argument(dec)


def load_state(path: str) -> dict:
    """The JSON object of ``--state``; ``ValueError`` naming the file when it is not one."""
    try:
        state = json.loads(Path(path).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"--state {path} is not a JSON codec state ({err})") from None
    if not isinstance(state, dict):
        raise ValueError(f"--state {path} must hold a JSON object, got {type(state).__name__}")
    return state


def codec_from_args(args: argparse.Namespace, spatial_dims: int):
    """:class:`MVWaveletCodec` from ``--state`` (if given) with every explicit flag applied on top.

    Without ``--levels`` or a state, a ``spatial_dims``-D input gets 3 levels per axis.
    """
    from ..codecs.mvc.codec import MVWaveletCodec

    state = load_state(args.state) if args.state else {"levels": [3] * spatial_dims}
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
    try:
        codec = MVWaveletCodec.from_dict(state)
    except TypeError as err:  # a value of the wrong type in the state file
        raise ValueError(f"codec parameters {state}: {err}") from None
    return codec if args.scale is None else codec.scaled(args.scale)


def run_compress(args: argparse.Namespace) -> int:
    import torch

    from ..artefacts import atomic_write
    from ..codecs.mvc.codec import LOSSLESS_DTYPES, encode_to_ratio
    from ..codecs.mvc.format import DTYPES
    from ..data.dicom_series import identifiers_sidecar, read_dicom_series, save_identifiers
    from ..data.volume_io import nifti_codes, read_volume

    torch.set_num_threads(args.threads)
    output, sidecar = Path(args.output), identifiers_sidecar(args.output)
    check_outputs([output, sidecar], [args.input], args.overwrite)  # a stale sidecar must not describe a new file
    identifiers = None
    if Path(args.input).is_dir():
        series = read_dicom_series(args.input)
        array, affine, spacing = series.array, series.affine, series.spacing
        identifiers = series.identifiers if args.keep_identifiers else None
    else:
        array, affine, spacing = read_volume(args.input)
    if array.dtype.name not in (LOSSLESS_DTYPES if args.lossless else DTYPES):
        kind = "--lossless codes" if args.lossless else "MVCompress3D codes"
        allowed = LOSSLESS_DTYPES if args.lossless else DTYPES
        raise ValueError(f"{kind} volumes of dtype {', '.join(allowed)}; {args.input} holds {array.dtype}")
    codec = codec_from_args(args, array.ndim)
    if args.target_ratio is not None:
        codec, blob = encode_to_ratio(
            codec, array, args.target_ratio, affine=affine, spacing=spacing, nifti_codes=nifti_codes(args.input)
        )
    else:
        blob = codec.encode(array, affine=affine, spacing=spacing, nifti_codes=nifti_codes(args.input))
    if identifiers is None:
        sidecar.unlink(missing_ok=True)  # only reached with --overwrite: never keep identifiers of an earlier run
        atomic_write(output, lambda handle: handle.write(blob))
    else:
        with staged_file(sidecar) as staged_sidecar:  # renamed into place after the .mvc file
            save_identifiers(staged_sidecar, identifiers)
            atomic_write(output, lambda handle: handle.write(blob))
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
    import torch

    from ..codecs.mvc.codec import decompress_volume
    from ..data.dicom_series import LossyCompression, identifiers_sidecar, load_identifiers, write_dicom_series
    from ..data.volume_io import write_nifti
    from ..frequency.wavelet import REVERSIBLE_53

    torch.set_num_threads(args.threads)
    output = Path(args.output)
    check_outputs([output], [args.input], args.overwrite)
    array, header = decompress_volume(Path(args.input).read_bytes())
    if args.output.endswith((".nii", ".nii.gz")):
        with staged_file(output) as staged:
            write_nifti(staged, array, header.affine, header.nifti_codes)
    else:
        sidecar = identifiers_sidecar(args.input)
        identifiers = None if args.drop_identifiers or not sidecar.is_file() else load_identifiers(sidecar)
        lossy = None if header.wavelet == REVERSIBLE_53 else LossyCompression(header.compression_ratio, LOSSY_METHOD)
        with staged_folder(output) as staged:  # swaps an existing folder (--overwrite) only once the series is whole
            write_dicom_series(
                array, header.affine, staged, identifiers=identifiers, modality=args.modality, lossy=lossy
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
