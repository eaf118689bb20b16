"""The MVCompress3D rate-accuracy study (Liu et al., CVPR 2019) on a 3D segmentation bundle.

Every stored volume (e.g. int16 grey levels) of a split is compressed before the bundle's network preprocessing, as
on the way to a cloud service, by each codec of :data:`CODECS` at each target ratio; the bundle's network segments
the decoded volume, scored per foreground class (Dice, Hausdorff, symmetric ASD at the network grid, voxel units)
by :class:`BundleSegmenter`. Rows go to an append-only ``rows.jsonl`` as they are computed (:class:`RowLog`), so an
interrupted run resumes where it stopped; the tables come from :mod:`.mv3d_report`.

The bundle's ``evaluate.json`` must split its preprocessing into ``load_transforms`` (reading the stored volume,
channel first, stored dtype kept) and ``network_transforms`` (intensity scaling, resampling to the network
grid), so a codec can sit between them, where a transmission to the cloud would happen.
"""

from __future__ import annotations

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
from monai.transforms import Compose
from tqdm import tqdm

from ..artefacts import atomic_write
from ..bundle import bundle_config, load_bundle_network, weights_digest
from ..codecs.baselines import openjpeg_round_trip, zstd_encode
from ..codecs.mvc import MVWaveletCodec, encode_to_ratio
from ..data import load_datalist, resolve_data_root
from .benchmarking import machine_info
from .metrics import psnr
from .mv3d_report import write_report

__all__ = ["CODECS", "BundleSegmenter", "RowLog", "compress_at_ratio", "run_mv3d_study"]

CODECS = ("mv3d", "jpeg2000_rule", "openjpeg")
"""``mv3d``: MVCompress3D, Eq. (4) steps (the paper's Q_min = 1, Q_max = 16 shape, scaled to each rate);
``jpeg2000_rule``: the same 3-D wavelet codec with human-vision steps (Q doubles per high-pass filter);
``openjpeg``: real JPEG 2000 (OpenJPEG, 2-D per slice, EBCOT)."""


class BundleSegmenter:
    """A bundle's network and preprocessing, scoring raw or decoded volumes against their labels.

    Args:
        bundle: bundle name or folder (``cardiac_seg``, ``hippocampus_seg`` ...).
        split: datalist split of the bundle's dataset.
        data_root: dataset root (default: ``$MEDSECURE_DATA_ROOT`` or ``../shared/data``).
        limit: first ``limit`` cases only.
    """

    def __init__(
        self, bundle: str, split: str = "test", data_root: str | os.PathLike | None = None, limit: int | None = None
    ) -> None:
        parser = bundle_config(bundle, "evaluate.json", data_root=data_root)
        for key in ("load_transforms", "network_transforms", "num_classes", "class_names"):
            if key not in parser.config:
                raise ValueError(f"bundle {bundle!r} evaluate.json lacks {key!r} (needed to insert a codec)")
        self.load = Compose(parser.get_parsed_content("load_transforms", instantiate=True))
        self.network_transforms = Compose(parser.get_parsed_content("network_transforms", instantiate=True))
        self.num_classes = int(parser["num_classes"])
        self.classes = list(parser["class_names"])[1:]
        self.network = load_bundle_network(bundle)
        self.datalist = load_datalist(parser["dataset_name"], split, resolve_data_root(data_root), limit=limit)

    def cases(self) -> Iterator[tuple[str, dict, np.ndarray]]:
        """``(case name, loaded sample, stored volume [*spatial])`` for every case of the split."""
        for item in self.datalist:
            sample = self.load(dict(item))
            image = sample["image"]
            raw = np.asarray(image.as_tensor() if isinstance(image, MetaTensor) else image)[0]
            yield os.path.basename(str(item["image"])).split(".")[0], sample, raw

    def scores(self, sample: dict, volume: np.ndarray) -> dict[str, np.ndarray]:
        """Per foreground class ``dice`` / ``hausdorff`` / ``asd`` (network grid, voxels) with ``volume`` as image."""
        meta = dict(getattr(sample["image"], "meta", {}))
        data = self.network_transforms({**sample, "image": MetaTensor(torch.as_tensor(volume[None]), meta=meta)})
        image = data["image"]
        with torch.no_grad():
            logits = self.network(torch.as_tensor(image.as_tensor() if isinstance(image, MetaTensor) else image)[None])
        pred = one_hot(logits.argmax(1, keepdim=True), self.num_classes)
        label = one_hot(torch.as_tensor(data["label"])[None].long(), self.num_classes)
        return {
            "dice": compute_dice(pred, label, include_background=False)[0].numpy(),
            "hausdorff": compute_hausdorff_distance(pred, label, include_background=False)[0].numpy(),
            "asd": compute_average_surface_distance(pred, label, include_background=False, symmetric=True)[0].numpy(),
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
    bundle: str,
    out: str | os.PathLike,
    ratios: Sequence[float] = (15, 30, 60, 120, 240),
    codecs: Sequence[str] = CODECS,
    codec: MVWaveletCodec | None = None,
    split: str = "test",
    data_root: str | os.PathLike | None = None,
    limit: int | None = None,
    table_ratio: float = 30.0,
    dice_drop: float = 0.01,
    resume: bool = False,
    command: str = "",
    progress: bool = True,
) -> dict:
    """Score every case of ``split`` uncompressed and through each of ``codecs`` at each of ``ratios``; write
    ``rows.jsonl`` (row by row) and the tables of :func:`.mv3d_report.write_report` into ``out``.

    Args:
        bundle: 3D segmentation bundle (``cardiac_seg``, ``hippocampus_seg``).
        codec: MVCompress3D parameters (default the paper's), also those of ``jpeg2000_rule``.
        table_ratio: ratio of the equal-rate table (one of ``ratios``).
        dice_drop: Dice loss tolerated in the equal-Dice comparison.
        resume: reuse the rows of an earlier run in ``out/rows.jsonl`` (same bundle, split, weights and codec);
            other cases, codecs or ratios may be asked for, only the requested rows enter the tables.
        command: the command line, recorded in ``summary.json``.

    Returns:
        The ``summary.json`` payload (settings, per codec@ratio summary, equal-Dice ratios, machine).
    """
    ratios = [float(r) for r in ratios]
    codecs = list(codecs)
    if float(table_ratio) not in ratios:
        raise ValueError(f"table_ratio {table_ratio:g} is not one of the ratios {ratios}")
    segmenter = BundleSegmenter(bundle, split, data_root, limit)
    mv = codec or MVWaveletCodec()
    settings = {"bundle": bundle, "split": split, "weights": weights_digest(bundle), "codec_state": mv.to_dict()}
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
        "bundle": bundle,
        "split": split,
        "cases": len(segmenter.datalist),
        "codec_state": mv.to_dict(),
        "zstd_ratio": {"mean": float(np.mean(zstd_ratios)), "std": float(np.std(zstd_ratios))},
        "machine": {"platform": platform.platform(), "python": platform.python_version(), **machine_info()},
        "wall_seconds": round(time.time() - started, 1),
    }
    return write_report(out, rows, segmenter.classes, meta, codecs, ratios, table_ratio, dice_drop)
