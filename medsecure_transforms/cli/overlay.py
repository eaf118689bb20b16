"""``medsecure overlay``: the path of an overlay shipped with the package (they work from a pip install).

An overlay is merged after a bundle's own configs; ``$(medsecure overlay NAME)`` puts it on a command line::

    python -m monai.bundle run --config_file "['configs/inference.json', '$(medsecure overlay defend_fr)']" \\
        --meta_file configs/metadata.json --bundle_root .
    medsecure evaluate --bundle spleen_ct_segmentation --config inference.json evaluate.json \\
        "$(medsecure overlay defend_jpeg)" --output-dir eval/spleen_jpeg

``--list`` prints every name with its path. The same paths come from Python:
``medsecure_transforms.overlays.path(name)``.
"""

from __future__ import annotations

import argparse

from .arguments import add_command


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``overlay`` subcommand."""
    parser = add_command(
        subparsers, "overlay", help="print the path of a packaged bundle overlay", description=__doc__, func=run
    )
    choice = parser.add_mutually_exclusive_group(required=True)
    choice.add_argument("name", nargs="?", help="overlay name (defend_fr, defend_jpeg, guard, compress ...)")
    choice.add_argument("--list", action="store_true", help="print every overlay name and its path")


def run(args: argparse.Namespace) -> int:
    from .. import overlays

    if args.list:
        width = max(map(len, overlays.NAMES))
        for name in overlays.NAMES:
            print(f"{name:<{width}}  {overlays.path(name)}")
        return 0
    print(overlays.path(args.name))
    return 0
