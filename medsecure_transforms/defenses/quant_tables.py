"""8x8 quantization tables: JPEG (Annex K + libjpeg quality scaling) and the FR defensive table (DQ-table).

The DQ-table of Liu et al. (MICCAI 2020, Sec. 3.3, Eq. 7) sorts the standard deviations of the 64 DCT bands over
calibration images and assigns a step function: the top ``pd_count`` bands (priority defense, PD) get ``QS1``, the
next ``ac_count`` (accuracy compensation, AC) get ``QS2``, the rest (global defense, GD) get ``QS3``. Steps are on
the 8-bit pixel scale with the orthonormal DCT (a DC step of ``q`` moves a flat block by ``q / 8`` grey levels).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ..artefacts import load_json, save_json
from ..frequency.dct import BLOCK, block_dct2, pad_to_block, to_blocks

# ITU-T T.81 Annex K, tables K.1 (luminance) and K.2 (chrominance), quality 50.
JPEG_LUMINANCE = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
JPEG_CHROMINANCE = (
    (17, 18, 24, 47, 99, 99, 99, 99),
    (18, 21, 26, 66, 99, 99, 99, 99),
    (24, 26, 56, 99, 99, 99, 99, 99),
    (47, 66, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
)
BAND_NAMES = ("PD", "AC", "GD")


@dataclass(frozen=True)
class QuantTable:
    """An 8x8 table of positive quantization steps (row = vertical frequency) with its provenance.

    Attributes:
        steps: ``8 x 8`` nested tuple of steps on the 8-bit scale, orthonormal DCT.
        name: short label used in reports, e.g. ``"FR(30,5,80)"`` or ``"JPEG(85)"``.
        provenance: JSON-serialisable record of how the table was made (dataset, QS values, band ranks ...).
    """

    FORMAT: ClassVar[str] = "medsecure.quant_table"
    VERSION: ClassVar[int] = 1

    steps: tuple[tuple[float, ...], ...]
    name: str = "custom"
    provenance: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        arr = np.asarray(self.steps, dtype=np.float64)
        if arr.shape != (BLOCK, BLOCK):
            raise ValueError(f"quantization table {self.name!r} must be {BLOCK}x{BLOCK}, got shape {arr.shape}")
        if not np.isfinite(arr).all() or (arr <= 0).any():
            raise ValueError(f"quantization table {self.name!r} needs finite steps > 0, got min {arr.min()}")
        object.__setattr__(self, "steps", tuple(tuple(float(v) for v in row) for row in arr))

    def as_tensor(self, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None):
        """The steps as a ``[8, 8]`` tensor."""
        return torch.tensor(self.steps, dtype=dtype, device=device)

    def to_dict(self) -> dict:
        return {"name": self.name, "steps": [list(r) for r in self.steps], "provenance": self.provenance}

    @classmethod
    def from_dict(cls, data: dict) -> QuantTable:
        if not isinstance(data, dict) or "steps" not in data:
            raise ValueError("quantization table JSON must be an object with a 'steps' 8x8 array")
        return cls(steps=data["steps"], name=str(data.get("name", "custom")), provenance=data.get("provenance", {}))

    def save(self, path: str | Path) -> Path:
        """Write the table as a JSON artefact (:mod:`medsecure_transforms.artefacts`); returns the path."""
        return save_json(path, self.FORMAT, self.VERSION, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> QuantTable:
        """Read a table written by :meth:`save` (validated by the constructor)."""
        return load_json(path, cls.FORMAT, cls.VERSION, cls.from_dict)


def as_quant_table(table: QuantTable | str | Path | Mapping | Sequence | np.ndarray | torch.Tensor) -> QuantTable:
    """Accept a :class:`QuantTable`, a JSON path, its JSON content (``{"name", "steps", "provenance"}``), or an
    8x8 array of steps."""
    if isinstance(table, QuantTable):
        return table
    if isinstance(table, Mapping):
        return QuantTable.from_dict(dict(table))
    if isinstance(table, (str, Path)):
        return QuantTable.load(table)
    if isinstance(table, torch.Tensor):
        table = table.detach().cpu().numpy()
    return QuantTable(steps=np.asarray(table, dtype=np.float64).tolist())


def jpeg_table(quality: int, chroma: bool = False) -> QuantTable:
    """Annex K table scaled to ``quality`` in 1..100 as libjpeg's ``jpeg_quality_scaling`` (baseline, 1..255)."""
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    quality = int(quality)
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    base = np.asarray(JPEG_CHROMINANCE if chroma else JPEG_LUMINANCE, dtype=np.int64)
    steps = np.clip((base * scale + 50) // 100, 1, 255)
    kind = "chrominance" if chroma else "luminance"
    name = f"JPEG({quality}){'-chroma' if chroma else ''}"
    return QuantTable(steps.tolist(), name, {"kind": f"jpeg-{kind}", "quality": quality})


def band_std(images: Iterable[torch.Tensor], intensity_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """Standard deviation ``[8, 8]`` of each DCT band over all blocks, channels and images.

    Args:
        images: tensors ``[..., H, W]`` (e.g. ``[C, H, W]``) with intensities in ``intensity_range``; they are
            mapped to the 8-bit scale before the orthonormal block DCT, the scale the table steps live on.
    """
    lo, hi = intensity_range
    count, total, total_sq = 0, np.zeros(BLOCK * BLOCK), np.zeros(BLOCK * BLOCK)
    for img in images:
        x = (torch.as_tensor(img, dtype=torch.float64) - lo) * (255.0 / (hi - lo))
        coeffs = to_blocks(block_dct2(pad_to_block(x)[0])).reshape(-1, BLOCK * BLOCK)
        count += coeffs.shape[0]
        total += coeffs.sum(0).numpy()
        total_sq += (coeffs**2).sum(0).numpy()
    if count < 2:
        raise ValueError("band_std needs at least two 8x8 blocks of calibration data")
    var = (total_sq - total**2 / count) / (count - 1)
    return np.sqrt(np.maximum(var, 0.0)).reshape(BLOCK, BLOCK)


def _check_qs(qs: Sequence[float]) -> tuple[float, float, float]:
    if len(qs) != 3 or any(not np.isfinite(q) or q <= 0 for q in qs):
        raise ValueError(f"FR needs three finite positive steps (QS1, QS2, QS3), got {tuple(qs)}")
    return tuple(float(q) for q in qs)


def _fmt(qs: Sequence[float]) -> str:
    return ",".join(f"{q:g}" for q in qs)


def defensive_table(
    std: np.ndarray, qs: Sequence[float], pd_count: int = 3, ac_count: int = 12, dataset: str | None = None
) -> QuantTable:
    """The paper's DQ-table (Eq. 7): bands ranked by decreasing ``std``; ranks ``1..pd_count`` -> QS1 (PD),
    the next ``ac_count`` -> QS2 (AC), the rest -> QS3 (GD). Ties keep row-major (zig-zag agnostic) order.
    """
    qs = _check_qs(qs)
    std = np.asarray(std, dtype=np.float64)
    if std.shape != (BLOCK, BLOCK) or not np.isfinite(std).all():
        raise ValueError(f"band std must be a finite {BLOCK}x{BLOCK} array, got shape {std.shape}")
    if pd_count < 1 or ac_count < 0 or pd_count + ac_count > BLOCK * BLOCK:
        raise ValueError(f"invalid band sizes pd_count={pd_count}, ac_count={ac_count}")
    order = np.argsort(-std.reshape(-1), kind="stable")
    rank = np.empty(BLOCK * BLOCK, dtype=np.int64)
    rank[order] = np.arange(1, BLOCK * BLOCK + 1)
    group = np.where(rank <= pd_count, 0, np.where(rank <= pd_count + ac_count, 1, 2))
    steps = np.asarray(qs)[group].reshape(BLOCK, BLOCK)
    provenance = {
        "kind": "fr-ranked",
        "qs": list(qs),
        "pd_count": pd_count,
        "ac_count": ac_count,
        "band_rank": rank.reshape(BLOCK, BLOCK).tolist(),
        "band_std": np.round(std, 4).tolist(),
        "dataset": dataset,
    }
    return QuantTable(steps.tolist(), f"FR({_fmt(qs)})", provenance)


def fixed_layout_table(qs: Sequence[float]) -> QuantTable:
    """The fixed-layout FR table of the authors' code: PD = low-frequency 2x2, AC = rest of 4x4, GD = the rest."""
    qs = _check_qs(qs)
    steps = np.full((BLOCK, BLOCK), qs[2])
    steps[:4, :4] = qs[1]
    steps[:2, :2] = qs[0]
    return QuantTable(steps.tolist(), f"FRfixed({_fmt(qs)})", {"kind": "fr-fixed", "qs": list(qs)})
