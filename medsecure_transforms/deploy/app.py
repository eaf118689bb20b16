"""The defended hippocampus segmentation app: DICOM series in, DICOM SEG and a detector report out.

Operator graph (MONAI Deploy App SDK on Holoscan)::

    DICOMDataLoaderOperator -> RequiredSeriesSelectorOperator (rules JSON) -> DICOMSeriesToVolumeOperator
        -> DefendedBundleInferenceOperator (bundle preprocessing + FrequencyRefined, network, postprocessing)
            pred ----------> DICOMSegmentationWriterOperator (SNOMED-coded segments)  -> <out>/<SOP UID>.dcm
            network_input -> DetectorReportOperator (FFTDetect)                       -> <out>/detector_report.json

Run: ``python -m medsecure_transforms.deploy.app -i <dicom dir> -o <out dir>`` (see ``docs/deploy.md``). The input
is validated before the graph starts, and outputs are written to a staging folder whose files are renamed into place
only when every operator succeeded, so a failing run leaves no partial output (nor an output folder it created). The
output folder must be new or empty unless ``--overwrite`` (files of the same name are then replaced), and must not
be, or lie inside, the input folder.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from monai.deploy.conditions import CountCondition
from monai.deploy.core import AppContext, Application, Image, IOType
from monai.deploy.operators import (
    DICOMDataLoaderOperator,
    DICOMSegmentationWriterOperator,
    DICOMSeriesToVolumeOperator,
)
from monai.deploy.operators.monai_bundle_inference_operator import BundleConfigNames, IOMapping

from ..bundle import bundle_dir
from ..data.dicom_series import DicomSeriesError, validate_dicom_input
from ..transforms import FFTDetect
from .components import default_defense, default_detector
from .operators import DefendedBundleInferenceOperator, DetectorReportOperator, RequiredSeriesSelectorOperator
from .segments import hippocampus_segments

DEFAULT_BUNDLE = "hippocampus_seg"
DEFAULT_RULES = {"selections": [{"name": "MR series", "conditions": {"Modality": "(?i)MR"}}]}
"""Series selection rules (DICOMSeriesSelectorOperator syntax): the first MR series of the study."""


class DefendedSegmentationApp(Application):
    """DICOM -> defended bundle inference -> DICOM SEG, plus a detector report (see the module docstring).

    Args:
        input_folder: folder with the DICOM study.
        output_folder: folder receiving the SEG instance and :data:`DETECTOR_REPORT`.
        bundle_path: MONAI bundle folder (``configs/metadata.json``, ``configs/inference.json``, ``models/``).
        defense: dictionary transform appended to the bundle's preprocessing, or ``None``.
        detector: ``FFTDetect`` (policy ``"flag"``) for :class:`DetectorReportOperator`, or ``None`` for no report.
        rules: series selection rules.
        timings: dict the operators fill with their wall times (seconds).
    """

    def __init__(
        self,
        *args,
        input_folder: Path,
        output_folder: Path,
        bundle_path: Path,
        defense: Callable[[Mapping], Mapping] | None,
        detector: FFTDetect | None,
        rules: Mapping = DEFAULT_RULES,
        timings: dict[str, float] | None = None,
        **kwargs,
    ) -> None:
        self.input_folder = Path(input_folder)
        self.output_folder = Path(output_folder)
        self.bundle_path = Path(bundle_path)
        self.defense = defense
        self.detector = detector
        self.rules = dict(rules)
        self.timings = {} if timings is None else timings
        super().__init__(*args, **kwargs)

    def _bundle_io(self) -> tuple[str, str, str]:
        """``(input name, output name, version)`` from the bundle's ``configs/metadata.json``."""
        meta = json.loads((self.bundle_path / "configs" / "metadata.json").read_text())
        formats = meta.get("network_data_format", {})
        if not formats.get("inputs") or not formats.get("outputs"):
            raise ValueError(f"{self.bundle_path}: metadata.json needs network_data_format inputs and outputs")
        return next(iter(formats["inputs"])), next(iter(formats["outputs"])), str(meta.get("version", "0"))

    def compose(self) -> None:
        input_name, output_name, version = self._bundle_io()
        context = AppContext(
            {"input": str(self.input_folder), "output": str(self.output_folder), "model": str(self.bundle_path)}
        )
        # The SDK's model factory wraps a bundle folder as a model without a predictor; with no context model the
        # bundle operator loads the folder itself (network_def from the config, models/model.pt as a state dict).
        context.models = None
        loader = DICOMDataLoaderOperator(self, CountCondition(self, 1), input_folder=self.input_folder, name="loader")
        selector = RequiredSeriesSelectorOperator(self, rules=json.dumps(self.rules), name="series_selector")
        to_volume = DICOMSeriesToVolumeOperator(self, name="series_to_volume")
        inference = DefendedBundleInferenceOperator(
            self,
            input_mapping=[IOMapping(input_name, Image, IOType.IN_MEMORY)],
            output_mapping=[IOMapping(output_name, Image, IOType.IN_MEMORY)],
            app_context=context,
            bundle_path=self.bundle_path,
            bundle_config_names=BundleConfigNames(config_names=["inference"]),
            defense=self.defense,
            timings=self.timings,
            emit_network_input=self.detector is not None,
            name="bundle_inference",
        )
        writer = DICOMSegmentationWriterOperator(
            self,
            segment_descriptions=hippocampus_segments(version),
            output_folder=self.output_folder,
            custom_tags={"SeriesDescription": "Hippocampus segmentation (defended)"},
            name="seg_writer",
        )
        self.add_flow(loader, selector, {("dicom_study_list", "dicom_study_list")})
        self.add_flow(selector, to_volume, {("study_selected_series_list", "study_selected_series_list")})
        self.add_flow(to_volume, inference, {("image", input_name)})
        self.add_flow(inference, writer, {(output_name, "seg_image")})
        self.add_flow(selector, writer, {("study_selected_series_list", "study_selected_series_list")})
        if self.detector is not None:
            report = DetectorReportOperator(
                self, detector=self.detector, output_folder=self.output_folder, timings=self.timings, name="detector"
            )
            self.add_flow(inference, report, {(DefendedBundleInferenceOperator.NETWORK_INPUT, "image")})


def check_output_folder(input_folder: Path, output_folder: Path, overwrite: bool) -> None:
    """Refuse an output folder that is (or lies inside) the input folder, is a file, or holds files (unless
    ``overwrite``)."""
    if output_folder.resolve() == input_folder.resolve() or input_folder.resolve() in output_folder.resolve().parents:
        raise ValueError(f"output folder {output_folder} is, or lies inside, the input folder {input_folder}")
    if output_folder.exists() and not output_folder.is_dir():
        raise NotADirectoryError(f"output {output_folder} is not a folder")
    if not overwrite and output_folder.is_dir() and any(output_folder.iterdir()):
        raise FileExistsError(f"output folder {output_folder} is not empty; pass --overwrite to replace its files")


def run_app(
    input_folder: str | Path,
    output_folder: str | Path,
    bundle: str | Path = DEFAULT_BUNDLE,
    defense: Callable[[Mapping], Mapping] | None = None,
    detector: FFTDetect | None = None,
    rules: Mapping | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Validate the input, run :class:`DefendedSegmentationApp`, move its outputs into ``output_folder``.

    Without ``rules`` the input must hold exactly one series (segmented with :data:`DEFAULT_RULES`); a folder with
    several series then needs rules that pick one. ``output_folder`` must be new or empty unless ``overwrite``
    (its files of the same names are then replaced); a failing run leaves it as it was.

    Returns:
        ``{"outputs": [file names], "timings": {...seconds}}`` with ``total_s`` the end-to-end wall time
        (validation, graph run and moving the outputs) and the per-operator times.

    Raises:
        DicomSeriesError: the input is not a readable set of DICOM series, or holds several series and no
            ``rules`` (nothing is written).
        ValueError: ``output_folder`` is, or lies inside, the input folder.
        FileExistsError: ``output_folder`` holds files and ``overwrite`` is false.
        RuntimeError: the graph ran but wrote no SEG (e.g. no series matched the rules; nothing is written).
    """
    start = time.perf_counter()
    timings: dict[str, float] = {}
    input_folder, output_folder = Path(input_folder), Path(output_folder)
    check_output_folder(input_folder, output_folder, overwrite)
    series = validate_dicom_input(input_folder)
    if rules is None and len(series) > 1:
        listed = ", ".join(f"{uid} ({count} slices)" for uid, count in series.items())
        raise DicomSeriesError(f"{input_folder} holds {len(series)} series ({listed}); pass --rules to pick one")
    timings["validation_s"] = time.perf_counter() - start
    created = not output_folder.exists()
    output_folder.mkdir(parents=True, exist_ok=True)
    # staged inside the output folder: same file system, so each output is renamed into place (also on a mount)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=output_folder))
    done = False
    try:
        graph_start = time.perf_counter()
        DefendedSegmentationApp(
            input_folder=input_folder,
            output_folder=staging,
            bundle_path=bundle_dir(bundle),
            defense=defense,
            detector=detector,
            rules=DEFAULT_RULES if rules is None else rules,
            timings=timings,
        ).run()
        timings["graph_s"] = time.perf_counter() - graph_start
        written = sorted(staging.iterdir())
        if not any(p.suffix == ".dcm" for p in written):
            raise RuntimeError(f"no DICOM SEG was written for {input_folder}: did any series match the rules {rules}?")
        for path in written:
            path.replace(output_folder / path.name)
        done = True
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created and not done:
            shutil.rmtree(output_folder, ignore_errors=True)
    timings["total_s"] = time.perf_counter() - start
    return {"outputs": [p.name for p in written], "timings": timings}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser("python -m medsecure_transforms.deploy.app", description=__doc__.splitlines()[0])
    parser.add_argument(
        "-i",
        "--input",
        default=os.environ.get("HOLOSCAN_INPUT_PATH", "input"),
        help="DICOM folder (default: $HOLOSCAN_INPUT_PATH or ./input)",
    )
    parser.add_argument(
        "-o",
        "--output",
        default=os.environ.get("HOLOSCAN_OUTPUT_PATH", "output"),
        help="output folder (default: $HOLOSCAN_OUTPUT_PATH or ./output)",
    )
    parser.add_argument(
        "-m",
        "--model",
        default=os.environ.get("HOLOSCAN_MODEL_PATH", DEFAULT_BUNDLE),
        help=f"bundle folder or name (default: $HOLOSCAN_MODEL_PATH or {DEFAULT_BUNDLE})",
    )
    parser.add_argument(
        "--defense-table", default=None, help="FrequencyRefine DQ-table JSON (default: the table shipped with the app)"
    )
    parser.add_argument("--no-defense", action="store_true", help="run the bundle without the added defense")
    parser.add_argument("--detector", default=None, help="FFTDetect state file (default: the one shipped with the app)")
    parser.add_argument("--no-detector", action="store_true", help="skip the detector report")
    parser.add_argument(
        "--rules",
        default=None,
        help="series selection rules JSON file (default: the only series of the input; several series need rules)",
    )
    parser.add_argument("--overwrite", action="store_true", help="write into an output folder that holds files")
    parser.add_argument("-l", "--log-level", default="WARNING", help="Python logging level")
    parser.add_argument("--debug", action="store_true", help="on an error, show the Python traceback")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; prints the run summary (outputs and timings) as JSON.

    A user error (missing or invalid input, rules that are not JSON, an occupied output folder) ends in one line
    ``<prog>: error: <message>`` and exit code 2 (``--debug``: the traceback).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper())
    try:
        rules = json.loads(Path(args.rules).read_text()) if args.rules else None
        summary = run_app(
            args.input,
            args.output,
            bundle=args.model,
            defense=None if args.no_defense else default_defense(args.defense_table),
            detector=None if args.no_detector else default_detector(args.detector),
            rules=rules,
            overwrite=args.overwrite,
        )
    except (OSError, ValueError) as error:
        if args.debug:
            raise
        print(f"{parser.prog}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
