"""MVCompress3D (Liu et al., CVPR 2019): machine-vision guided 3-D wavelet compression, as :class:`MVWaveletCodec`.

Pipeline per channel: intensities mapped to ``[0, value_range]`` (the range the steps refer to; the
paper's ``Q_min = 1``, ``Q_max = 16`` are in 8-bit grey levels) -> edge padding to multiples of
``2**levels`` -> n-D DWT -> per-subband standard deviation ``delta_n`` (the statistic index, SI) ->
quantization step ``Q_n = a / (delta_n + b)`` clamped to ``[Q_min, Q_max]`` (Eq. 4, ``a, b`` solved
from ``(Q_min, delta_max)`` and ``(Q_max, delta_min)``) -> dead-zone quantization (Eq. 1 applied to
magnitudes, as in JPEG 2000) -> per-subband entropy coding (``codecs.entropy``) -> ``.mvc`` container.

Lossless mode (:meth:`MVWaveletCodec.lossless`): integer voxels, JPEG 2000's reversible 5/3 integer lifting, every step
1 and no intensity map, so the decoded volume equals the input bit for bit.

Two human-vision baselines share the pipeline: ``mapping="jpeg2000"`` (step doubles with every
high-pass filter in a subband: ``Q_min * 2**n_high``, the rule of the paper's Sec. 2.2) and
``mapping="uniform"`` (``Q_min`` everywhere).

Public entry points: :class:`MVWaveletCodec` (``encode`` / ``decode`` / ``steps_for``), the plain
functions :func:`compress_volume` / :func:`decompress_volume`, and :func:`encode_to_ratio`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ...frequency.slabs import row_slabs
from ...frequency.wavelet import (
    REVERSIBLE_53,
    subband_names,
    subband_slices,
    subband_std,
    wavedec_inplace,
    waverec_inplace,
)
from ..entropy import decode_integers, encode_integers
from ..errors import CorruptStreamError
from ..rate_control import match_ratio
from .format import (
    DEFAULT_NIFTI_CODES,
    DTYPES,
    MAX_CHANNELS,
    WAVELETS,
    MVCHeader,
    NiftiCodes,
    max_levels,
    pack_mvc,
    padded_shape,
    unpack_mvc,
)

__all__ = [
    "LOSSLESS_DTYPES",
    "MAPPINGS",
    "MVWaveletCodec",
    "WaveletAnalysis",
    "compress_volume",
    "decompress_volume",
    "dequantize_deadzone",
    "encode_to_ratio",
    "quantize_deadzone",
    "reciprocal_mapping",
    "step_sizes",
]

MAPPINGS = ("machine_vision", "jpeg2000", "uniform")
LOSSLESS_DTYPES = ("uint8", "int8", "uint16", "int16")
"""Dtypes of the lossless mode: their 5/3 coefficients stay well inside the entropy coder's int32 range."""
_INT32_MAX = 2**31 - 1
_SLAB_ELEMENTS = 1 << 16
"""Voxels processed at a time by the element-wise steps (intensity map, (de)quantization): bounds their scratch."""


MAX_STEP_SPAN = 1e6
"""Largest ``q_max / q_min`` the codec accepts: wider spans make Eq. (4)'s ``delta + b`` vanish in float64."""


def reciprocal_mapping(q_min: float, q_max: float, std_min: float, std_max: float) -> tuple[float, float]:
    """Solve Eq. (4) ``Q = a / (delta + b)`` through ``(Q_min, delta_max)`` and ``(Q_max, delta_min)``.

    Returns ``(a, b)``: ``b = (Q_min delta_max - Q_max delta_min) / (Q_max - Q_min)``, ``a = Q_min (delta_max + b)``.
    """
    if not 0 < q_min < q_max:
        raise ValueError(f"need 0 < q_min < q_max, got q_min={q_min}, q_max={q_max}")
    if not 0 <= std_min < std_max:
        raise ValueError(f"need 0 <= std_min < std_max, got std_min={std_min}, std_max={std_max}")
    b = (q_min * std_max - q_max * std_min) / (q_max - q_min)
    return q_min * (std_max + b), b


def step_sizes(
    stds: Mapping[str, float], q_min: float, q_max: float, mapping: str = "machine_vision"
) -> dict[str, float]:
    """Quantization step per subband from the subband standard deviations (float32-representable).

    ``machine_vision``: Eq. (4) clamped to ``[q_min, q_max]`` (all ``q_min`` when every std is equal);
    ``jpeg2000``: ``q_min * 2**(number of 'd' letters in the subband code)``; ``uniform``: ``q_min``.
    """
    if mapping not in MAPPINGS:
        raise ValueError(f"mapping must be one of {MAPPINGS}, got {mapping!r}")
    if q_min <= 0:
        raise ValueError(f"q_min must be positive, got {q_min}")
    if mapping == "uniform":
        steps = dict.fromkeys(stds, q_min)
    elif mapping == "jpeg2000":
        steps = {name: q_min * 2.0 ** name.split("/")[1].count("d") for name in stds}
    else:
        lo, hi = min(stds.values()), max(stds.values())
        if hi - lo <= 1e-12 * max(hi, 1.0):
            steps = dict.fromkeys(stds, q_min)
        else:
            a, b = reciprocal_mapping(q_min, q_max, lo, hi)
            steps = {name: float(np.clip(a / (s + b), q_min, q_max)) for name, s in stds.items()}
    return {name: float(np.float32(step)) for name, step in steps.items()}


def quantize_deadzone(coeffs: torch.Tensor, step: float) -> torch.Tensor:
    """``sign(c) * floor(|c| / step)`` as ``int32`` (Eq. 1 on magnitudes; zero bin twice as wide).

    Integer coefficients (the lossless mode's) with step 1 are their own quantization indices.
    """
    if not coeffs.is_floating_point():
        if step != 1:
            raise ValueError(f"integer coefficients are only coded with step 1, got {step}")
        return coeffs.to(torch.int32)
    flat = torch.atleast_1d(coeffs)
    out = torch.empty(flat.shape, dtype=torch.int32, device=coeffs.device)
    for rows in row_slabs(flat.shape, _SLAB_ELEMENTS):  # a slab at a time: no float scratch the size of the subband
        c = flat[rows]
        q = c.abs().div_(step).floor_()
        if q.numel() and float(q.max()) > _INT32_MAX:
            raise ValueError(f"quantized coefficients exceed int32 with step {step}; use a larger step or value_range")
        out[rows] = q.copysign_(c)
    return out.reshape(coeffs.shape)


def dequantize_deadzone(
    q: torch.Tensor, step: float, offset: float, dtype: torch.dtype = torch.float64, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Reconstruct ``sign(q) * (|q| + offset) * step`` (zero stays zero); ``offset = 0.5`` is the bin centre.

    With ``out`` (a floating tensor or view of ``q``'s shape) the result is written there and ``dtype`` is ignored;
    ``out`` may share ``q``'s memory (the decoder dequantizes in place): each slab is read before it is written.
    """
    out = torch.empty(q.shape, dtype=dtype, device=q.device) if out is None else out
    source, target = torch.atleast_1d(q), torch.atleast_1d(out)
    for rows in row_slabs(target.shape, _SLAB_ELEMENTS):  # a slab at a time: no scratch the size of the subband
        part = source[rows].to(target.dtype)
        sign = part.sign()
        target[rows] = part.abs_().add_(offset).mul_(step).mul_(sign)
    return out


@dataclass(frozen=True)
class WaveletAnalysis:
    """What the encoder computes before choosing steps: layout, intensity maps, subbands and their stds."""

    shape: tuple[int, ...]
    dtype: str
    channel_axis: bool
    levels: tuple[int, ...]
    intensities: list[tuple[float, float]]
    bands: list[dict[str, torch.Tensor]]
    stds: list[dict[str, float]]


@dataclass(frozen=True)
class MVWaveletCodec:
    """The codec's parameters (JSON-serialisable via :meth:`to_dict` / :meth:`save`).

    Attributes:
        wavelet: one of ``format.WAVELETS`` (default ``bior4.4``, the CDF 9/7 pair of JPEG 2000).
        levels: requested levels per spatial axis (the paper's 3-3-3); an axis too short for them gets
            ``max_levels(n)`` (its coarsest band keeps >= 2 samples). Its length sets 2-D or 3-D.
        q_min, q_max: step bounds of Eq. (4), in units of ``[0, value_range]`` intensities.
        mapping: ``machine_vision`` (Eq. 4), or the baselines ``jpeg2000`` / ``uniform``.
        value_range: each channel's ``[min, max]`` is mapped to ``[0, value_range]`` before coding
            (stored exactly in the header); ``None`` codes the raw values (steps in raw units).
        reconstruction_offset: dequantization point inside a bin, ``[0, 1)``.
    """

    wavelet: str = "bior4.4"
    levels: tuple[int, ...] = (3, 3, 3)
    q_min: float = 1.0
    q_max: float = 16.0
    mapping: str = "machine_vision"
    value_range: float | None = 255.0
    reconstruction_offset: float = 0.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "levels", tuple(int(v) for v in self.levels))
        if self.wavelet not in WAVELETS:
            raise ValueError(f"wavelet must be one of {WAVELETS}, got {self.wavelet!r}")
        if len(self.levels) not in (2, 3) or min(self.levels) < 1:
            raise ValueError(f"levels must give >= 1 level for each of 2 or 3 spatial axes, got {self.levels}")
        if self.mapping not in MAPPINGS:
            raise ValueError(f"mapping must be one of {MAPPINGS}, got {self.mapping!r}")
        if not (0 < self.q_min and (self.mapping != "machine_vision" or self.q_min < self.q_max)):
            raise ValueError(f"need 0 < q_min < q_max, got q_min={self.q_min}, q_max={self.q_max}")
        if self.mapping == "machine_vision" and not self.q_max <= MAX_STEP_SPAN * self.q_min:
            raise ValueError(
                f"q_max / q_min must be at most {MAX_STEP_SPAN:g} (Eq. 4 is ill-conditioned beyond), "
                f"got q_min={self.q_min}, q_max={self.q_max}"
            )
        if self.value_range is not None and not self.value_range > 0:
            raise ValueError(f"value_range must be positive or None, got {self.value_range}")
        if not 0 <= self.reconstruction_offset < 1:
            raise ValueError(f"reconstruction_offset must lie in [0, 1), got {self.reconstruction_offset}")
        lossless = (self.q_min, self.mapping, self.value_range, self.reconstruction_offset) == (1, "uniform", None, 0)
        if self.wavelet == REVERSIBLE_53 and not lossless:
            raise ValueError(
                "wavelet rev5/3 is the lossless mode: use MVWaveletCodec.lossless() (q_min 1, mapping 'uniform', "
                "value_range None, reconstruction_offset 0)"
            )

    @classmethod
    def lossless(cls, levels: Sequence[int] = (3, 3, 3)) -> MVWaveletCodec:
        """Bit-exact mode for integer volumes (``LOSSLESS_DTYPES``): reversible 5/3 lifting, every step 1."""
        return cls(REVERSIBLE_53, tuple(levels), 1.0, 1.0, "uniform", None, 0.0)

    @property
    def is_lossless(self) -> bool:
        return self.wavelet == REVERSIBLE_53

    # ---- state -------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {**asdict(self), "levels": list(self.levels), "method": "MVCompress3D"}

    @classmethod
    def from_dict(cls, state: Mapping) -> MVWaveletCodec:
        state = dict(state)
        if state.pop("method", "MVCompress3D") != "MVCompress3D":
            raise ValueError("state does not describe an MVCompress3D codec")
        unknown = set(state) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown MVCompress3D parameters {sorted(unknown)}")
        return cls(**state)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> MVWaveletCodec:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def scaled(self, factor: float) -> MVWaveletCodec:
        """The same codec with both step bounds multiplied by ``factor`` (rate control)."""
        return replace(self, q_min=self.q_min * factor, q_max=self.q_max * factor)

    # ---- analysis ----------------------------------------------------------------------------
    def _layout(self, array: np.ndarray) -> tuple[np.ndarray, bool, tuple[int, ...]]:
        """Validate ``array`` and return it as ``[C, *spatial]``, whether it had a channel axis, levels."""
        d = len(self.levels)
        if array.ndim not in (d, d + 1):
            raise ValueError(
                f"MVWaveletCodec with {d} levels expects [*spatial] or [C, *spatial] of {d} axes, "
                f"got shape {array.shape}"
            )
        if array.dtype.name not in DTYPES:
            raise TypeError(f"MVWaveletCodec supports dtypes {DTYPES}, got {array.dtype}")
        if self.is_lossless and array.dtype.name not in LOSSLESS_DTYPES:
            raise TypeError(f"lossless mode codes integer volumes of dtype {LOSSLESS_DTYPES}, got {array.dtype}")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise ValueError("MVWaveletCodec input contains NaN or infinite values")
        channel_axis = array.ndim == d + 1
        data = array if channel_axis else array[None]
        if not 1 <= data.shape[0] <= MAX_CHANNELS:
            raise ValueError(f"MVWaveletCodec accepts 1..{MAX_CHANNELS} channels, got {data.shape[0]}")
        levels = tuple(min(lv, max_levels(n)) for lv, n in zip(self.levels, data.shape[1:], strict=True))
        if max(levels) < 1:
            raise ValueError(f"spatial shape {data.shape[1:]} is too small for any wavelet level")
        return data, channel_axis, levels

    def _intensity(self, channel: np.ndarray) -> tuple[float, float]:
        """``(offset, scale)`` with ``x = offset + scale * y`` and ``y`` in ``[0, value_range]``."""
        if self.value_range is None:
            return 0.0, 1.0
        lo, hi = float(channel.min()), float(channel.max())
        return lo, (hi - lo) / self.value_range if hi > lo else 1.0

    def _subbands(self, channel: np.ndarray, levels, intensity) -> dict[str, torch.Tensor]:
        """Map ``channel`` into a packed ``float32`` (lossless ``int32``) buffer, edge-pad and transform it in place.

        Returns the subbands as views of that one buffer: the encoder's only volume-sized allocation.
        """
        shape = padded_shape(channel.shape, levels)
        packed = torch.empty(shape, dtype=torch.int32 if self.is_lossless else torch.float32)
        inner = packed.numpy()[tuple(slice(0, n) for n in channel.shape)]
        offset, scale = intensity
        for rows in row_slabs(channel.shape, _SLAB_ELEMENTS):  # float64 intensity map, a slab at a time
            inner[rows] = channel[rows] if self.is_lossless else (channel[rows] - offset) / scale
        _replicate_pad(packed, channel.shape)
        wavedec_inplace(packed, self.wavelet, levels)
        return {name: packed[where] for name, where in subband_slices(shape, levels).items()}

    def analyse(self, array: np.ndarray | torch.Tensor) -> WaveletAnalysis:
        """Validate ``array``, map its intensities and decompose every channel (independent of the steps)."""
        if isinstance(array, torch.Tensor):
            array = array.detach().cpu().numpy()
        data, channel_axis, levels = self._layout(np.asarray(array))
        intensities = [self._intensity(channel) for channel in data]
        bands = [self._subbands(channel, levels, it) for channel, it in zip(data, intensities, strict=True)]
        stds = [{k: float(v) for k, v in subband_std(b, len(levels)).items()} for b in bands]
        return WaveletAnalysis(tuple(data.shape), data.dtype.name, channel_axis, levels, intensities, bands, stds)

    def steps_for(self, array: np.ndarray | torch.Tensor | WaveletAnalysis) -> list[dict[str, float]]:
        """Per-channel step of every subband that :meth:`encode` would use for ``array``."""
        analysis = array if isinstance(array, WaveletAnalysis) else self.analyse(array)
        return [step_sizes(stds, self.q_min, self.q_max, self.mapping) for stds in analysis.stds]

    # ---- coding ------------------------------------------------------------------------------
    def encode(
        self,
        array: np.ndarray | torch.Tensor | WaveletAnalysis,
        affine: np.ndarray | None = None,
        spacing: Sequence[float] | None = None,
        steps: Sequence[Mapping[str, float]] | None = None,
        nifti_codes: NiftiCodes | None = None,
    ) -> bytes:
        """Compress ``[*spatial]`` or ``[C, *spatial]`` into ``.mvc`` bytes.

        Args:
            array: the volume (any of ``format.DTYPES``; torch tensors are moved to CPU numpy), or
                its :meth:`analyse` result (rate control re-uses one analysis for many step sets).
            affine: 4x4 voxel-to-world matrix stored verbatim (default identity).
            spacing: voxel size per spatial axis (default ones).
            steps: explicit per-channel ``{subband: step}`` overriding the mapping (calibration).
            nifti_codes: the source's NIfTI qform/sform codes and units, restored on decoding to NIfTI (default
                :data:`~.format.DEFAULT_NIFTI_CODES`).
        """
        analysis = array if isinstance(array, WaveletAnalysis) else self.analyse(array)
        levels = analysis.levels
        d = len(levels)
        affine = np.eye(4) if affine is None else np.asarray(affine, dtype=np.float64)
        if affine.shape != (4, 4) or not np.isfinite(affine).all():
            raise ValueError(f"affine must be a finite 4x4 matrix, got shape {affine.shape}")
        spacing = (1.0,) * d if spacing is None else tuple(float(s) for s in spacing)
        if len(spacing) != d or not all(np.isfinite(s) and s > 0 for s in spacing):
            raise ValueError(f"spacing must hold {d} positive finite values, got {spacing}")
        names = subband_names(levels)
        channels = analysis.shape[0]
        if self.is_lossless and steps is not None:
            raise ValueError("lossless mode takes no explicit steps (every step is 1)")
        if steps is None:
            steps = self.steps_for(analysis)
        elif len(steps) != channels or any(set(s) != set(names) for s in steps):
            raise ValueError(f"steps must give one {{subband: step}} dict per channel with subbands {names}")
        steps = [{k: float(np.float32(v)) for k, v in channel.items()} for channel in steps]
        if not all(np.isfinite(v) and v > 0 for channel in steps for v in channel.values()):
            raise ValueError("quantization steps must be positive and finite")
        header = MVCHeader(
            shape=analysis.shape[1:],
            dtype=analysis.dtype,
            wavelet=self.wavelet,
            levels=levels,
            channels=channels,
            channel_axis=analysis.channel_axis,
            affine=affine,
            spacing=spacing,
            reconstruction_offset=float(np.float32(self.reconstruction_offset)),
            nifti_codes=NiftiCodes(*(nifti_codes or DEFAULT_NIFTI_CODES)).validate(),
            intensity=list(analysis.intensities),
            steps=steps,
        )
        streams = [
            [encode_integers(quantize_deadzone(bands[n], channel_steps[n]).numpy()) for n in names]
            for bands, channel_steps in zip(analysis.bands, steps, strict=True)
        ]
        return pack_mvc(header, streams)

    @staticmethod
    def decode(blob: bytes) -> tuple[np.ndarray, MVCHeader]:
        """Decode ``.mvc`` bytes into ``(array, header)``; the array has the stored dtype and layout.

        Raises:
            CorruptStreamError: malformed, truncated or damaged input.
        """
        header, streams = unpack_mvc(blob)
        lossless = header.wavelet == REVERSIBLE_53
        shape = padded_shape(header.shape, header.levels)
        crop = tuple(slice(0, n) for n in header.shape)
        out = np.empty((header.channels, *header.shape), dtype=header.dtype)
        for c in range(header.channels):
            packed = torch.empty(shape, dtype=torch.int32 if lossless else torch.float32)
            for (name, where), stream in zip(subband_slices(shape, header.levels).items(), streams[c], strict=True):
                band = packed[where]
                # the indices land in the band's own place (as int32 bits), then become coefficients there
                indices = band if lossless else band.view(torch.int32)
                try:
                    decode_integers(stream, max_count=band.numel(), out=indices.numpy())
                except CorruptStreamError as err:
                    raise CorruptStreamError(f"subband {name}: {err}") from err
                if not lossless:  # lossless: steps 1, the integers are the coefficients
                    dequantize_deadzone(indices, header.steps[c][name], header.reconstruction_offset, out=band)
            y = waverec_inplace(packed, header.wavelet, header.levels)[crop]
            if not lossless:
                offset, scale = header.intensity[c]
                y.mul_(scale).add_(offset)
            _cast_into(out[c], y)
        return (out if header.channel_axis else out[0]), header


def _replicate_pad(packed: torch.Tensor, shape: Sequence[int]) -> None:
    """Fill ``packed`` beyond the leading ``shape`` corner with the nearest edge values (in place, axis by axis)."""
    for axis, (n, total) in enumerate(zip(shape, packed.shape, strict=True)):
        if total > n:
            extents = [t if a <= axis else m for a, (m, t) in enumerate(zip(shape, packed.shape, strict=True))]
            done = packed[tuple(slice(0, e) for e in extents)]
            done.narrow(axis, n, total - n).copy_(done.narrow(axis, n - 1, 1))


def _cast_into(out: np.ndarray, values: torch.Tensor) -> None:
    """Write ``values`` into ``out``: rounded and clipped (in place) to the range of an integer ``out``.

    The clip also guards the lossless path: a forged stream cannot make its integers wrap around.
    """
    if out.dtype.kind in "iu":
        info = np.iinfo(out.dtype)
        if values.is_floating_point():
            values.round_()
        values.clamp_(info.min, info.max)
    np.copyto(out, values.numpy(), casting="unsafe")


def compress_volume(
    array: np.ndarray | torch.Tensor,
    affine: np.ndarray | None = None,
    spacing: Sequence[float] | None = None,
    codec: MVWaveletCodec | None = None,
) -> bytes:
    """Compress a volume (``[*spatial]`` or ``[C, *spatial]``) with ``codec`` (default parameters: the paper's)."""
    return (codec or MVWaveletCodec()).encode(array, affine=affine, spacing=spacing)


def decompress_volume(blob: bytes) -> tuple[np.ndarray, MVCHeader]:
    """Inverse of :func:`compress_volume`: ``(array, header)``; ``header.affine`` / ``.spacing`` as stored."""
    return MVWaveletCodec.decode(blob)


def encode_to_ratio(
    codec: MVWaveletCodec,
    array: np.ndarray,
    target_ratio: float,
    affine: np.ndarray | None = None,
    spacing: Sequence[float] | None = None,
    rel_tol: float = 0.03,
    nifti_codes: NiftiCodes | None = None,
) -> tuple[MVWaveletCodec, bytes]:
    """Rate control: scale both step bounds of ``codec`` until the compression ratio is ``target_ratio``.

    The multiplier is searched on a log2 scale in ``[-8, 10]`` (:func:`rate_control.match_ratio`);
    returns the scaled codec and its stream (the closest found if the target is out of reach).
    """
    analysis = codec.analyse(array)
    original_bytes = int(np.prod(analysis.shape)) * np.dtype(analysis.dtype).itemsize
    log2_scale, blob = match_ratio(
        lambda p: codec.scaled(2.0**p).encode(analysis, affine=affine, spacing=spacing, nifti_codes=nifti_codes),
        original_bytes,
        target_ratio,
        bounds=(-8.0, 10.0),
        start=0.0,
        rel_tol=rel_tol,
    )
    return codec.scaled(2.0**log2_scale), blob
