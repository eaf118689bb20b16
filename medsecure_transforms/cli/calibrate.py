"""``medsecure calibrate <method>``: calibration steps of the methods, one module per method."""

from __future__ import annotations

import argparse
import importlib

from .arguments import add_command

# One line per method module; each defines ``register(subparsers)`` adding ``<method>`` and setting ``func``.
CALIBRATE_MODULES = ("medsecure_transforms.cli.calibrate_fr", "medsecure_transforms.cli.calibrate_mv")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``calibrate`` with one sub-subcommand per entry of ``CALIBRATE_MODULES``."""
    parser = add_command(subparsers, "calibrate", help="calibrate a defense or codec (tables, thresholds, steps)")
    methods = parser.add_subparsers(dest="method", required=True, metavar="METHOD")
    for module_name in CALIBRATE_MODULES:
        importlib.import_module(module_name).register(methods)
