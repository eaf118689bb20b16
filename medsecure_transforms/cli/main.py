"""The ``medsecure`` command: each subcommand lives in its own module exposing ``register(subparsers)``.

Subcommand modules import only :mod:`argparse` helpers at import time (their methods are imported when they run), so
``--help`` answers in well under a second. A user error (a missing file, an invalid value, a corrupt stream, an
output that exists) ends the command with one line ``medsecure <command>: error: <message>`` and exit code 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings

from .arguments import CommandParser, HelpFormatter

# One line per subcommand module; each defines ``register(subparsers)`` and sets ``func`` on its parser.
SUBCOMMAND_MODULES = (
    "medsecure_transforms.cli.calibrate",
    "medsecure_transforms.cli.codec",
    "medsecure_transforms.cli.demo",
    "medsecure_transforms.cli.evaluate",
    "medsecure_transforms.cli.overlay",
)
USER_ERRORS = (OSError, ValueError, KeyError)
"""Errors reported in one line: missing or existing files, invalid values, JSON and corrupt-stream errors (all
``ValueError``: ``json.JSONDecodeError``, ``CorruptStreamError``, ``DicomSeriesError``), config ids and sample keys
that are not there (``KeyError``: ``BundleKeyError`` names what was tried and what exists)."""


def build_parser() -> argparse.ArgumentParser:
    """Parser with every registered subcommand."""
    parser = CommandParser(
        prog="medsecure",
        description="Attack-test, defend and compress MONAI segmentation pipelines (medsecure-transforms).",
        epilog="`medsecure COMMAND --help` describes each command.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="on an error, show the Python traceback")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in SUBCOMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def error_message(error: BaseException) -> str:
    """One line for ``error``: an ``OSError`` as ``<strerror>: <file>``, others as their text, whitespace folded."""
    if isinstance(error, OSError) and error.strerror and error.filename:
        text = f"{error.strerror}: {error.filename}"
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split())


def quiet_unused_backends() -> None:
    """Silence two notices about back ends no ``medsecure`` command uses (the deploy app, which does, runs apart).

    ``import monai`` imports every package of the monai namespace, the MONAI Deploy SDK included when installed,
    whose Holoscan core warns about the stack size; a ``LoadImage`` without an explicit reader instantiates MONAI's
    nvImageCodec DICOM reader, which reports (as a log record and a warning) that nvImageCodec is not installed.
    """
    warnings.filterwarnings("ignore", message="Current stack size", category=RuntimeWarning, module="holoscan")
    warnings.filterwarnings("ignore", message="NvImgCodecPydicomReader: nvImageCodec decoder plugin did not register")
    logging.getLogger("monai.data.nvimgcodec_pydicom_plugin").setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``medsecure`` console script; returns the exit code (2 for user errors)."""
    args = build_parser().parse_args(argv)
    quiet_unused_backends()
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as error:
        if args.debug:
            raise
        print(f"{args.prog}: error: {error_message(error)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
