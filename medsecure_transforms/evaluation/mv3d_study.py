"""The MVCompress3D rate-accuracy study (Liu et al., CVPR 2019) on a 3D segmentation bundle.

Every stored volume (e.g. int16 grey levels) of a bundle's data is compressed before its network preprocessing, as
on the way to a cloud service, by each codec of :data:`CODECS` at each target ratio; the bundle segments the decoded
volume (its inferer around its network, then its post-processing), scored per foreground class (Dice, Hausdorff,
symmetric ASD, voxel units of the post-processed grid) by :class:`BundleSegmenter`. Rows go to an append-only
``rows.jsonl`` as they are computed (:class:`RowLog`), so an interrupted run resumes where it stopped; the tables
come from :mod:`.mv3d_report`.

The codec sits where a transmission to the cloud would happen: between the bundle's ``load_transforms`` (reading
the stored volume, channel first, stored dtype kept) and ``network_transforms`` (intensity scaling, resampling to
the network grid) when its config has both ids (the project's 3D bundles), else right after the leading
``LoadImaged`` / ``EnsureChannelFirstd`` of its preprocessing (any MONAI bundle, read by
:class:`~medsecure_transforms.bundle.BundleAdapter`).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from monai.data import MetaTensor
from monai.metrics import compute_average_surface_distance, compute_dice, compute_hausdorff_distance
from monai.networks.utils import one_hot
from monai.transforms import Compose, EnsureChannelFirst, EnsureChannelFirstd, LoadImage, LoadImaged
from monai.utils import convert_to_tensor
from tqdm import tqdm

from ..artefacts import atomic_write
from ..bundle import BundleAdapter
from ..codecs.baselines import openjpeg_round_trip, zstd_encode
from ..codecs.mvc import MVWaveletCodec, encode_to_ratio
from ..data import resolve_data_root
from .benchmarking import machine_info
from .metrics import psnr
from .mv3d_report import write_report
from .robustness import BundleScorer

__all__ = [
    "CODECS",
    "BundleSegmenter",
    "RowLog",
    "class_names",
    "compress_at_ratio",
    "run_mv3d_study",
    "split_preprocessing",
    "study_adapter",
]

CODECS = ("mv3d", "jpeg2000_rule", "openjpeg")
"""``mv3d``: MVCompress3D, Eq. (4) steps (the paper's Q_min = 1, Q_max = 16 shape, scaled to each rate);
``jpeg2000_rule``: the same 3-D wavelet codec with human-vision steps (Q doubles per high-pass filter);
``openjpeg``: real JPEG 2000 (OpenJPEG, 2-D per slice, EBCOT)."""


LOADERS = (LoadImage, LoadImaged, EnsureChannelFirst, EnsureChannelFirstd)
SPLIT_IDS = ("load_transforms", "network_transforms")


def study_adapter(
    bundle: str | os.PathLike | BundleAdapter, split: str | None = None, data_root: str | os.PathLike | None = None
) -> BundleAdapter:
    """``bundle`` as a :class:`BundleAdapter` (its default configs); ``split`` / ``data_root`` set the bundle's
    ``split`` / ``data_root`` config ids (the project's bundles; an error where the bundle has no such id)."""
    if isinstance(bundle, BundleAdapter):
        if split is not None or data_root is not None:
            raise ValueError("split / data_root apply to a bundle name or folder, not to a BundleAdapter")
        return bundle
    adapter = BundleAdapter(bundle)
    for key, value in (("split", split), ("data_root", data_root)):
        if value is None:
            continue
        if key not in adapter.parser:
            raise ValueError(f"bundle {adapter.name!r} has no config id {key!r} in {adapter.config_files}")
        adapter.parser[key] = str(resolve_data_root(value)) if key == "data_root" else value
    return adapter


def split_preprocessing(adapter: BundleAdapter) -> tuple[Compose, Compose]:
    """``(loading, network)`` parts of the bundle's preprocessing: its ``load_transforms`` / ``network_transforms``
    ids when it has both, else the leading ``LoadImage(d)`` / ``EnsureChannelFirst(d)`` and the rest."""
    if all(i in adapter.parser for i in SPLIT_IDS):
        parts = [adapter.parser.get_parsed_content(i, instantiate=True) for i in SPLIT_IDS]
        return Compose(parts[0]), Compose(parts[1])
    pre = adapter.preprocessing
    steps = list(pre.flatten().transforms) if isinstance(pre, Compose) else [pre]
    count = 0
    while count < len(steps) and isinstance(steps[count], LOADERS):
        count += 1
    if count == 0:
        names = [type(t).__name__ for t in steps]
        raise ValueError(
            f"bundle {adapter.name!r}: no LoadImaged / EnsureChannelFirstd opens its preprocessing {names}"
        )
    return Compose(steps[:count]), Compose(steps[count:])


def class_names(adapter: BundleAdapter, count: int) -> list[str]:
    """Names of the ``count`` output classes: the ``class_names`` config id, else the metadata's output
    ``channel_def``, else ``class_<k>``."""
    names = adapter.parser.get("class_names")
    if isinstance(names, list) and len(names) == count:
        return [str(n) for n in names]
    outputs = adapter.parser.get("_meta_#network_data_format#outputs", {}) or {}
    channels = next(iter(outputs.values()), {}).get("channel_def", {}) if outputs else {}
    return [str(channels.get(str(k), f"class_{k}")).replace(" ", "_") for k in range(count)]


class BundleSegmenter:
    """A bundle (:class:`BundleAdapter`) scoring raw or decoded volumes against their labels.

    The stored volume comes from the loading part of the preprocessing (:func:`split_preprocessing`); a volume given
    in its place goes through the network part, the bundle's inferer and network, and its post-processing.

    Args:
        adapter: the bundle (its datalist gives the cases).
        limit: first ``limit`` cases only.
    """

    def __init__(self, adapter: BundleAdapter, limit: int | None = None) -> None:
        self.adapter = adapter
        self.load, self.network_transforms = split_preprocessing(adapter)
        self.scorer = BundleScorer(adapter)
        self.datalist = adapter.datalist[:limit]
        if "num_classes" in adapter.parser:
            self.num_classes = int(adapter.parser.get_parsed_content("num_classes"))
        else:
            self.num_classes = int(adapter.parser.get("_meta_#network_data_format#outputs#pred#num_channels") or 0)
        self.classes = class_names(adapter, self.num_classes)[1:] if self.num_classes else []

    def cases(self) -> Iterator[tuple[str, dict, np.ndarray]]:
        """``(case name, loaded sample, stored volume [*spatial])`` for every case of the datalist."""
        key = self.adapter.image_key
        for item in self.datalist:
            sample = self.load(dict(item))
            raw = np.asarray(convert_to_tensor(sample[key], track_meta=False))[0]
            yield os.path.basename(str(item[key])).split(".")[0], sample, raw

    def scores(self, sample: dict, volume: np.ndarray) -> dict[str, np.ndarray]:
        """Per foreground class ``dice`` / ``hausdorff`` / ``asd`` (post-processed grid, voxels) with ``volume`` as
        the stored image."""
        key = self.adapter.image_key
        image = sample[key]
        stored = MetaTensor(
            torch.as_tensor(volume[None]),
            meta=dict(getattr(image, "meta", {})),
            applied_operations=list(getattr(image, "applied_operations", [])),
        )
        data = self.network_transforms({**sample, key: stored})
        with torch.no_grad():
            logits = self.adapter.logits(convert_to_tensor(data[key], track_meta=False)[None].float())[0]
        if not self.num_classes:
            self.num_classes = int(logits.shape[0])
            self.classes = class_names(self.adapter, self.num_classes)[1:]
        pred, label = self.scorer(data, logits)
        pred, label = one_hot(pred[None], self.num_classes), one_hot(label[None].to(pred.device), self.num_classes)
        return {
            "dice": compute_dice(pred, label, include_background=False)[0].cpu().numpy(),
            "hausdorff": compute_hausdorff_distance(pred, label, include_background=False)[0].cpu().numpy(),
            "asd": compute_average_surface_distance(pred, label, include_background=False, symmetric=True)[0]
            .cpu()
            .numpy(),
        }

    def mean_dice(self, sample: dict, volume: np.ndarray) -> float:
        """Mean foreground Dice (NaN classes, absent in both, ignored)."""
        return float(np.nanmean(self.scores(sample, volume)["dice"]))


def compress_at_ratio(name: str, raw: np.ndarray, ratio: float, mv: MVWaveletCodec) -> tuple[np.ndarray, int]:
    """Decoded volume and stream size in bytes of codec ``name`` (one of :data:`CODECS`) at ``ratio`` of ``raw``'s
    bytes; ``mv`` is the MVCompress3D codec whose step bounds the rate search scales."""
    if name == "openjpeg":
        return openjpeg_round_trip(raw, ratio)
    if name not in CODECS:
        raise ValueError(f"unknown codec {name!r}, expected one of {CODECS}")
    codec = mv if name == "mv3d" else MVWaveletCodec.from_dict({**mv.to_dict(), "mapping": "jpeg2000"})
    codec, blob = encode_to_ratio(codec, raw, ratio)
    return codec.decode(blob)[0], len(blob)


class RowLog:
    """Append-only JSON-lines file of study rows keyed by ``(case, codec, target_ratio)``.

    The first line is ``{"format", "version", "settings"}``; each row is appended and flushed as soon as it is
    computed. With ``resume``, an existing file is read back (a last line cut by a crash is dropped) and must carry
    the same ``settings`` (what a row's values depend on), else ``ValueError``; without, the file starts anew.
    """

    FORMAT, VERSION = "medsecure.mv3d_rows", 1

    def __init__(self, path: str | os.PathLike, settings: Mapping, resume: bool = False) -> None:
        self.path = Path(path)
        self.settings = json.loads(json.dumps(settings))  # as read back: tuples become lists
        self.rows: dict[tuple, dict] = {}
        if resume and self.path.is_file():
            self._read()
        else:
            header = {"format": self.FORMAT, "version": self.VERSION, "settings": self.settings}
            atomic_write(self.path, lambda f: f.write((json.dumps(header) + "\n").encode()))

    @staticmethod
    def key(row: Mapping) -> tuple[str, str, float]:
        return row["case"], row["codec"], float(row["target_ratio"])

    def _read(self) -> None:
        data = self.path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        lines = complete.decode().splitlines()
        header = json.loads(lines[0]) if lines else {}
        if not isinstance(header, dict) or (header.get("format"), header.get("version")) != (self.FORMAT, self.VERSION):
            raise ValueError(f"{self.path}: not a {self.FORMAT} version {self.VERSION} row file, cannot resume")
        if header["settings"] != self.settings:
            changed = sorted(
                k for k in {*header["settings"], *self.settings} if header["settings"].get(k) != self.settings.get(k)
            )
            raise ValueError(
                f"{self.path} was written with other settings (differing: {', '.join(changed)}); "
                "rerun without --resume to start over, or write to another output folder"
            )
        if len(complete) < len(data):
            os.truncate(self.path, len(complete))
        for line in lines[1:]:
            row = json.loads(line)
            self.rows[self.key(row)] = row

    def get(self, case: str, codec: str, target_ratio: float) -> dict | None:
        return self.rows.get((case, codec, float(target_ratio)))

    def append(self, row: dict) -> dict:
        """Write ``row`` as one line (flushed on close) and keep it; returns it."""
        with self.path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        self.rows[self.key(row)] = row
        return row


def _row(
    segmenter: BundleSegmenter,
    case: str,
    sample: dict,
    raw: np.ndarray,
    codec: str,
    target: float,
    decoded: np.ndarray,
    nbytes: int,
) -> dict:
    """One study row: achieved ratio, PSNR and the per-class scores of ``decoded`` (``raw`` coded in ``nbytes``)."""
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
        row.update({f"{metric}_{c}": float(v) for c, v in zip(segmenter.classes, values, strict=True)})
    return row


def run_mv3d_study(
    bundle: str | os.PathLike | BundleAdapter,
    out: str | os.PathLike,
    ratios: Sequence[float] = (15, 30, 60, 120, 240),
    codecs: Sequence[str] = CODECS,
    codec: MVWaveletCodec | None = None,
    split: str | None = None,
    data_root: str | os.PathLike | None = None,
    limit: int | None = None,
    table_ratio: float = 30.0,
    dice_drop: float = 0.01,
    resume: bool = False,
    command: str = "",
    progress: bool = True,
) -> dict:
    """Score every case of the bundle's data uncompressed and through each of ``codecs`` at each of ``ratios``;
    write ``rows.jsonl`` (row by row) and the tables of :func:`.mv3d_report.write_report` into ``out``.

    Args:
        bundle: 3D segmentation bundle (``cardiac_seg``, ``hippocampus_seg``, a folder) or a :class:`BundleAdapter`.
        split, data_root: the bundle's ``split`` / ``data_root`` config ids (:func:`study_adapter`; default its own).
        codec: MVCompress3D parameters (default the paper's), also those of ``jpeg2000_rule``.
        table_ratio: ratio of the equal-rate table (one of ``ratios``).
        dice_drop: Dice loss tolerated in the equal-Dice comparison.
        resume: reuse the rows of an earlier run in ``out/rows.jsonl`` (same bundle, split, weights, inferer and
            post-processing, and codec);
            other cases, codecs or ratios may be asked for, only the requested rows enter the tables.
        command: the command line, recorded in ``summary.json``.

    Returns:
        The ``summary.json`` payload (settings, per codec@ratio summary, equal-Dice ratios, machine).
    """
    ratios = [float(r) for r in ratios]
    codecs = list(codecs)
    if float(table_ratio) not in ratios:
        raise ValueError(f"table_ratio {table_ratio:g} is not one of the ratios {ratios}")
    adapter = study_adapter(bundle, split, data_root)
    segmenter = BundleSegmenter(adapter, limit)
    mv = codec or MVWaveletCodec()
    settings = {
        "bundle": adapter.name,
        "split": split,
        "weights": hashlib.sha256(adapter.checkpoint.read_bytes()).hexdigest()[:16],
        "inferer": adapter.ids["inferer"],
        "postprocessing": adapter.ids["postprocessing"],
        "codec_state": mv.to_dict(),
    }
    log = RowLog(Path(out) / "rows.jsonl", settings, resume)
    rows, zstd_ratios, started = [], [], time.time()
    cases = tqdm(segmenter.cases(), total=len(segmenter.datalist), desc="cases", disable=not progress)
    for case, sample, raw in cases:
        zstd_ratios.append(raw.nbytes / len(zstd_encode(raw)))
        for name, target in [("original", 1.0)] + [(c, r) for c in codecs for r in ratios]:
            row = log.get(case, name, target)
            if row is None:
                decoded, nbytes = (raw, raw.nbytes) if name == "original" else compress_at_ratio(name, raw, target, mv)
                row = log.append(_row(segmenter, case, sample, raw, name, target, decoded, nbytes))
            rows.append(row)
    meta = {
        "command": command,
        "bundle": adapter.name,
        "config_files": [str(f) for f in adapter.config_files],
        "split": split,
        "cases": len(segmenter.datalist),
        "codec_state": mv.to_dict(),
        "zstd_ratio": {"mean": float(np.mean(zstd_ratios)), "std": float(np.std(zstd_ratios))},
        "machine": {"platform": platform.platform(), "python": platform.python_version(), **machine_info()},
        "wall_seconds": round(time.time() - started, 1),
    }
    return write_report(out, rows, segmenter.classes, meta, codecs, ratios, table_ratio, dice_drop)
