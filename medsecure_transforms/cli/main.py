"""The ``medsecure`` command: each subcommand lives in its own module exposing ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import sys

# One line per subcommand module; each defines ``register(subparsers)`` and sets ``func`` on its parser.
SUBCOMMAND_MODULES = (
    "medsecure_transforms.cli.calibrate",
    "medsecure_transforms.cli.codec",
    "medsecure_transforms.cli.demo",
    "medsecure_transforms.cli.evaluate",
)


def build_parser() -> argparse.ArgumentParser:
    """Parser with every registered subcommand."""
    parser = argparse.ArgumentParser(prog="medsecure", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module_name in SUBCOMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``medsecure`` console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
