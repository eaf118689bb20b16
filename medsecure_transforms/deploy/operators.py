"""MONAI Deploy operators: bundle inference with a defense in its preprocessing, and a detector that writes a report.

Both record wall times (seconds, ``time.perf_counter``) into a caller-owned ``timings`` dict so the application can
report the share of the defense and the detector in the end-to-end time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from monai.deploy.core import Fragment, OperatorSpec
from monai.deploy.core import Operator as _Operator
from monai.deploy.operators import DICOMSeriesSelectorOperator
from monai.deploy.operators.monai_bundle_inference_operator import MonaiBundleInferenceOperator

from ..transforms import BlockQuantized, FFTDetect

DETECTOR_REPORT = "detector_report.json"


class RequiredSeriesSelectorOperator(DICOMSeriesSelectorOperator):
    """:class:`DICOMSeriesSelectorOperator` that fails with a clear message when the rules select no series."""

    def filter(self, selection_rules, dicom_study_list, *args, **kwargs):
        selected = super().filter(selection_rules, dicom_study_list, *args, **kwargs)
        if not any(study.selected_series for study in selected or []):
            present = [
                f"{series.SeriesInstanceUID} ({getattr(series, 'Modality', '?')})"
                for study in dicom_study_list or []
                for series in study.get_all_series()
            ]
            raise ValueError(f"no DICOM series matched the selection rules {self._rules_json_str}; present: {present}")
        return selected


class DefendedBundleInferenceOperator(MonaiBundleInferenceOperator):
    """:class:`MonaiBundleInferenceOperator` that appends ``defense`` to the bundle's ``preprocessing``.

    The bundle's preprocessing (its ``LoadImage``/``SaveImage`` steps removed by the SDK) maps the DICOM volume to the
    network input ``[C, *spatial]`` in ``[0, 1]``; ``defense`` (a dictionary transform such as
    ``FrequencyRefined(keys="image", ...)``) then runs on that input, the network and the bundle's
    ``postprocessing`` (which must invert the preprocessing, e.g. ``Invertd``, so the mask lies on the DICOM grid)
    follow. Besides the bundle's outputs the operator emits :attr:`NETWORK_INPUT`: the undefended network input,
    for a detector that must see what an attacker controls.

    Args:
        defense: dictionary transform applied after the bundle's preprocessing, or ``None`` (the bundle's own
            preprocessing may then contain the defense).
        timings: dict receiving ``preprocessing_s``, ``defense_s``, ``network_s`` and ``postprocessing_s``.
        emit_network_input: add the :attr:`NETWORK_INPUT` port (it must then be connected, or Holoscan never
            schedules the operator).
        Other arguments are those of :class:`MonaiBundleInferenceOperator`.
    """

    NETWORK_INPUT = "network_input"

    def __init__(
        self,
        fragment: Fragment,
        *args,
        defense: Callable[[Mapping], Mapping] | None,
        timings: dict[str, float],
        emit_network_input: bool = True,
        **kwargs,
    ) -> None:
        self._defense = defense
        self.timings = timings
        self._emit_network_input = emit_network_input
        self._network_input: torch.Tensor | None = None
        self._source_shape: tuple[int, ...] = ()
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        super().setup(spec)
        if self._emit_network_input:
            spec.output(self.NETWORK_INPUT)

    def _image_key(self) -> str:
        return next(iter(self._inputs))

    def pre_process(self, data: Any, *args, **kwargs) -> Any:
        key = self._image_key()
        if self._defense is not None and any(isinstance(t, BlockQuantized) for t in self._preproc.transforms):
            raise ValueError(
                "the bundle's preprocessing already contains a block-quantization defense; run the app with no "
                "extra defense (defense=None / --no-defense) instead of applying it twice"
            )
        self._source_shape = tuple(data[key].shape)
        start = time.perf_counter()
        data = super().pre_process(data, *args, **kwargs)
        self.timings["preprocessing_s"] = time.perf_counter() - start
        self._network_input = data[key].detach().clone()
        if self._defense is not None:
            start = time.perf_counter()
            data = self._defense(data)
            self.timings["defense_s"] = time.perf_counter() - start
        return data

    def predict(self, data: Any, *args, **kwargs) -> Any:
        start = time.perf_counter()
        result = super().predict(data, *args, **kwargs)
        self.timings["network_s"] = time.perf_counter() - start
        return result

    def post_process(self, data: Any, *args, **kwargs) -> Any:
        start = time.perf_counter()
        result = super().post_process(data, *args, **kwargs)
        self.timings["postprocessing_s"] = time.perf_counter() - start
        pred = result[next(iter(self._outputs))] if isinstance(result, Mapping) else result
        if tuple(pred.shape[-len(self._source_shape) :]) != self._source_shape:
            raise ValueError(
                f"bundle prediction has spatial shape {tuple(pred.shape[1:])} but the DICOM volume is "
                f"{self._source_shape}: the bundle's postprocessing must invert its preprocessing (Invertd)"
            )
        return result

    def compute(self, op_input, op_output, context) -> None:
        super().compute(op_input, op_output, context)
        if self._emit_network_input:
            op_output.emit(self._network_input, self.NETWORK_INPUT)


class DetectorReportOperator(_Operator):
    """Run ``FFTDetect`` on the network input and write its report as JSON beside the SEG.

    Input port ``image``: the undefended network input ``[C, *spatial]`` (a volume is scored slice by slice).
    ``output_folder /`` :data:`DETECTOR_REPORT` gets FFTDetect's report (``fft_detect_score``,
    ``fft_detect_flagged``, ``fft_detect_threshold``, ``fft_detect_detector``, per-slice scores ...) plus
    ``input_shape`` and ``seconds``. The policy should be ``"flag"``: the report informs, the SEG is still written.

    Args:
        detector: the configured :class:`~medsecure_transforms.transforms.FFTDetect`.
        output_folder: folder of the report (created).
        timings: dict receiving ``detector_s``.
    """

    def __init__(
        self,
        fragment: Fragment,
        *args,
        detector: FFTDetect,
        output_folder: Path,
        timings: dict[str, float],
        **kwargs,
    ) -> None:
        self._detector = detector
        self.output_folder = Path(output_folder)
        self.timings = timings
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        spec.input("image")

    def compute(self, op_input, op_output, context) -> None:
        image = op_input.receive("image")
        start = time.perf_counter()
        _, report = self._detector.inspect(image)
        self.timings["detector_s"] = time.perf_counter() - start
        report = {**report, "input_shape": list(image.shape), "seconds": self.timings["detector_s"]}
        self.output_folder.mkdir(parents=True, exist_ok=True)
        (self.output_folder / DETECTOR_REPORT).write_text(json.dumps(report, indent=2))
