"""MONAI adapters for the FFTDetect guard: ``FFTDetect`` / ``FFTDetectd`` and ``Reform`` / ``Reformd``.

Inputs are channel-first float images ``[C, H, W]`` or volumes ``[C, H, W, D]`` (scored and reformed slice by slice
along ``D``) in the networks' intensity range, as numpy arrays, tensors or MetaTensors: ``FFTDetect``'s
``intensity_range`` (default ``[0, 1]``, the project's guards) and, for ``Reform``, the reformer's ``clip`` range.
Intensities outside it raise ``ValueError`` (the scores and reconstructions of such inputs mean nothing). Outputs
keep type, dtype, device and metadata.

``FFTDetect`` records in the MetaTensor metadata (and, for ``FFTDetectd``, in the dictionary key
``"<key>_fft_detect"``, present for every input type):

* ``fft_detect_score``: reconstruction error (the maximum over slices for a volume);
* ``fft_detect_flagged``: ``score > threshold``;
* ``fft_detect_threshold``, ``fft_detect_detector`` (e.g. ``"unet_shifted_frequency"``), ``fft_detect_policy``;
* ``fft_detect_reformed``: whether the reformer was applied (``policy="reform"``);
* ``fft_detect_slice_scores``: per-slice scores of a volume.

Every flagged input is logged (``WARNING`` on this module's logger). Policies: ``"flag"`` passes the image through
unchanged; ``"reform"`` applies the reformer to flagged inputs
(``reform="flagged"``, flagged slices only for a volume) or to every input (``reform="always"``); ``"reject"``
raises :class:`~medsecure_transforms.defenses.AdversarialInputRejected` for a flagged input (``reject="raise"``) or
returns ``None`` with a logged warning (``reject="drop"``; use a collate function that skips ``None``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Hashable, Mapping
from typing import Any

import torch
from monai.config import KeysCollection
from monai.config.type_definitions import NdarrayOrTensor
from monai.data import MetaTensor
from monai.data.meta_obj import get_track_meta
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type

from ..defenses.fft_detect import AdversarialInputRejected, FFTDetector
from ..defenses.reformer import Reformer
from .keywise import KeywiseMapTransform
from .validation import check_image, naming_key

logger = logging.getLogger(__name__)

POLICIES = ("flag", "reform", "reject")
REFORM_WHEN = ("flagged", "always")
REJECT_MODES = ("raise", "drop")
REPORT_POSTFIX = "fft_detect"


def _as_slices(
    img: NdarrayOrTensor, name: str, intensity_range: tuple[float, float], range_argument: str | None
) -> tuple[torch.Tensor, bool]:
    """``[C, H, W]`` -> ``[1, C, H, W]``; ``[C, H, W, D]`` -> ``[D, C, H, W]``; checked by :func:`check_image`."""
    x = check_image(img, name, floating=True, intensity_range=intensity_range, range_argument=range_argument)
    volume = x.ndim == 4
    return (x.permute(3, 0, 1, 2) if volume else x[None]), volume


def _from_slices(batch: torch.Tensor, volume: bool) -> torch.Tensor:
    return batch.permute(1, 2, 3, 0) if volume else batch[0]


def _load_reformer(reformer: Reformer | str | os.PathLike | None, device: str | torch.device) -> Reformer | None:
    if reformer is None or isinstance(reformer, Reformer):
        return reformer
    return Reformer.load(reformer, device)


class Reform(Transform):
    """Replace an image by the reformer's reconstruction (per slice for a volume), recording ``reformed_by``.

    Inputs must lie in the reformer's ``clip`` range (what it was trained on and clips its output to).

    Args:
        reformer: a :class:`~medsecure_transforms.defenses.Reformer` or the path of its artefact.
        device: where a reformer loaded from a path runs.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, reformer: Reformer | str | os.PathLike, device: str | torch.device = "cpu") -> None:
        self.reformer = _load_reformer(reformer, device)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        batch, volume = _as_slices(img, type(self).__name__, self.reformer.clip, None)
        with torch.no_grad():
            out = self.reformer(batch.to(self.reformer.model.device)).to(batch.device, batch.dtype)
        result, *_ = convert_to_dst_type(_from_slices(out, volume), img, dtype=img.dtype)
        if isinstance(result, MetaTensor):
            result.meta["reformed_by"] = self.reformer.name
        return result


class FFTDetect(Transform):
    """Score an input with a calibrated FFTDetect detector and apply a policy (see the module docstring).

    Args:
        detector: a calibrated :class:`~medsecure_transforms.defenses.FFTDetector` or the path of its artefact.
        policy: ``"flag"``, ``"reform"`` or ``"reject"``.
        reformer: :class:`~medsecure_transforms.defenses.Reformer` or artefact path (required for ``"reform"``).
        reform: ``"flagged"`` or ``"always"`` (policy ``"reform"`` only).
        reject: ``"raise"`` or ``"drop"`` (policy ``"reject"`` only).
        expected_domain: when given, a detector loaded from a path must use this input domain.
        device: where detector and reformer loaded from paths run.
        intensity_range: ``(low, high)`` of the images the detector was trained and calibrated on; inputs outside
            it raise ``ValueError``.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        detector: FFTDetector | str | os.PathLike,
        policy: str = "flag",
        reformer: Reformer | str | os.PathLike | None = None,
        reform: str = "flagged",
        reject: str = "raise",
        expected_domain: str | None = None,
        device: str | torch.device = "cpu",
        intensity_range: tuple[float, float] = (0.0, 1.0),
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
        if reform not in REFORM_WHEN:
            raise ValueError(f"reform must be one of {REFORM_WHEN}, got {reform!r}")
        if reject not in REJECT_MODES:
            raise ValueError(f"reject must be one of {REJECT_MODES}, got {reject!r}")
        if isinstance(detector, FFTDetector):
            if expected_domain is not None and detector.domain != expected_domain:
                raise ValueError(f"detector uses domain {detector.domain!r}, expected {expected_domain!r}")
            self.detector = detector
        else:
            self.detector = FFTDetector.load(detector, device, domain=expected_domain)
        if self.detector.threshold is None:
            raise ValueError("the detector is not calibrated (no threshold): call FFTDetector.calibrate() first")
        self.reformer = _load_reformer(reformer, device)
        if policy == "reform" and self.reformer is None:
            raise ValueError("policy 'reform' needs a reformer")
        if self.reformer is not None and self.reformer.in_channels != self.detector.in_channels:
            raise ValueError(
                f"reformer expects {self.reformer.in_channels} channels, detector {self.detector.in_channels}"
            )
        self.policy, self.reform, self.reject = policy, reform, reject
        low, high = (float(v) for v in intensity_range)
        if not high > low:
            raise ValueError(f"intensity_range must be (low, high) with high > low, got {intensity_range}")
        self.intensity_range = (low, high)

    def inspect(self, img: NdarrayOrTensor) -> tuple[NdarrayOrTensor | None, dict[str, Any]]:
        """``(output, report)``: the policy's output (``None`` when dropped) and the JSON-ready report."""
        name = type(self).__name__
        batch, volume = _as_slices(img, name, self.intensity_range, "intensity_range")
        scores, flags = self.detector.detect(batch.to(self.detector.model.device))
        scores, flags = scores.cpu(), flags.cpu()
        report: dict[str, Any] = {
            "fft_detect_score": float(scores.max()),
            "fft_detect_flagged": bool(flags.any()),
            "fft_detect_threshold": float(self.detector.threshold),
            "fft_detect_detector": self.detector.name,
            "fft_detect_policy": self.policy,
            "fft_detect_reformed": False,
        }
        if volume:
            report["fft_detect_slice_scores"] = [float(s) for s in scores]
        if report["fft_detect_flagged"] and self.policy == "reject":
            message = (
                f"{name}: input rejected, score {report['fft_detect_score']:.6g} > threshold "
                f"{report['fft_detect_threshold']:.6g} ({self.detector.name})"
            )
            if self.reject == "raise":
                raise AdversarialInputRejected(message, report["fft_detect_score"], report["fft_detect_threshold"])
            logger.warning("%s; sample dropped", message)
            return None, report
        if report["fft_detect_flagged"]:
            logger.warning(
                "%s: input flagged, score %.6g > threshold %.6g (%s); policy %s",
                name,
                report["fft_detect_score"],
                report["fft_detect_threshold"],
                self.detector.name,
                self.policy,
            )
        out_t = batch
        if self.policy == "reform" and (self.reform == "always" or report["fft_detect_flagged"]):
            select = torch.ones_like(flags) if self.reform == "always" else flags
            with torch.no_grad():
                reformed = self.reformer(batch[select].to(self.reformer.model.device)).to(batch.device, batch.dtype)
            out_t = batch.clone()
            out_t[select] = reformed
            report["fft_detect_reformed"] = True
        result, *_ = convert_to_dst_type(_from_slices(out_t, volume), img, dtype=img.dtype)
        if isinstance(result, MetaTensor) and get_track_meta():
            result.meta.update(report)
        return result, report

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor | None:
        return self.inspect(img)[0]


class Reformd(KeywiseMapTransform):
    """Dictionary version of :class:`Reform`."""

    backend = Reform.backend

    def __init__(
        self,
        keys: KeysCollection,
        reformer: Reformer | str | os.PathLike,
        device: str | torch.device = "cpu",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = Reform(reformer, device)


class FFTDetectd(MapTransform):
    """Dictionary version of :class:`FFTDetect`; the report of ``key`` goes to ``"<key>_<report_postfix>"``.

    With ``policy="reject", reject="drop"`` a flagged key makes the whole sample ``None``.
    """

    backend = FFTDetect.backend

    def __init__(
        self,
        keys: KeysCollection,
        detector: FFTDetector | str | os.PathLike,
        policy: str = "flag",
        reformer: Reformer | str | os.PathLike | None = None,
        reform: str = "flagged",
        reject: str = "raise",
        expected_domain: str | None = None,
        device: str | torch.device = "cpu",
        report_postfix: str = REPORT_POSTFIX,
        intensity_range: tuple[float, float] = (0.0, 1.0),
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = FFTDetect(detector, policy, reformer, reform, reject, expected_domain, device, intensity_range)
        self.report_postfix = report_postfix

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, Any] | None:
        d = dict(data)
        for key in self.key_iterator(d):
            with naming_key(key):
                out, report = self.transform.inspect(d[key])
            d[f"{key}_{self.report_postfix}"] = report
            if out is None:
                return None
            d[key] = out
        return d


FFTDetectD = FFTDetectDict = FFTDetectd
ReformD = ReformDict = Reformd
