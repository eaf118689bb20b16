"""Argument groups shared by the ``medsecure`` subcommands and the scripts in ``scripts/``.

A public module: scripts import these groups from here, never from the command modules.
"""

from __future__ import annotations

import argparse

from ..attacks import ASMA, ASMA_PRESETS, asma_preset

# ASMA values a flag can override; each flag defaults to None = the preset's value
ASMA_OVERRIDES = ("max_iter", "beta", "tau", "target_iou", "max_linf")


def add_data_root_argument(parser: argparse.ArgumentParser) -> None:
    """``--data-root`` (else ``$MEDSECURE_DATA_ROOT``, else ``../shared/data``)."""
    parser.add_argument(
        "--data-root", default=None, help="dataset root (default: $MEDSECURE_DATA_ROOT or ../shared/data)"
    )


def add_threads_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup, default: int | None) -> None:
    """``--threads``: torch CPU threads (``None``: torch's choice)."""
    shown = "torch's choice" if default is None else default
    parser.add_argument("--threads", type=int, default=default, help=f"torch CPU threads (default: {shown})")


def add_bundle_arguments(
    parser: argparse.ArgumentParser, bundle: str | None, split: str, limit_help: str = "first N samples only"
) -> None:
    """``--bundle`` (required when ``bundle`` is ``None``), ``--split``, ``--limit`` and ``--data-root``."""
    parser.add_argument(
        "--bundle", default=bundle, required=bundle is None, help="bundle name under bundles/ or a bundle folder"
    )
    parser.add_argument("--split", default=split, help=f"dataset split (default: {split})")
    parser.add_argument("--limit", type=int, default=None, help=limit_help)
    add_data_root_argument(parser)


def add_attack_arguments(parser: argparse.ArgumentParser, preset: str, batch_size: int) -> argparse._ArgumentGroup:
    """The ``attack`` group: ``--attack-preset`` (a name of ``ASMA_PRESETS``), one flag per value it can override,
    ``--seed`` and ``--batch-size``. Returns the group so a command can add its own attack flags to it."""
    names = ", ".join(f"{name} ({p.max_iter} x beta {p.beta:g}, tau {p.tau:g})" for name, p in ASMA_PRESETS.items())
    group = parser.add_argument_group("attack", "ASMA from a named preset, each ASMA flag overriding one of its values")
    group.add_argument(
        "--attack-preset", choices=sorted(ASMA_PRESETS), default=preset, help=f"default {preset}; {names}"
    )
    group.add_argument("--max-iter", type=int, default=None, help="ASMA iterations (default: the preset's)")
    group.add_argument("--beta", type=float, default=None, help="ASMA IoU-proportional step multiplier")
    group.add_argument("--tau", type=float, default=None, help="ASMA constant step multiplier")
    group.add_argument("--max-linf", type=float, default=None, help="ASMA Linf budget (image units)")
    group.add_argument("--target-iou", type=float, default=None, help="ASMA stopping IoU with the target")
    group.add_argument("--seed", type=int, default=0, help="seed of the attack and of the target-mask draws")
    group.add_argument("--batch-size", type=int, default=batch_size, help=f"images per batch (default {batch_size})")
    return group


def asma_from_args(args: argparse.Namespace) -> ASMA:
    """:class:`ASMA` of ``--attack-preset`` with every explicit override flag and ``--seed`` applied."""
    overrides = {k: getattr(args, k) for k in ASMA_OVERRIDES if getattr(args, k) is not None}
    return asma_preset(args.attack_preset, seed=args.seed, **overrides)


def command_line(prog: str, args: argparse.Namespace) -> str:
    """``prog`` followed by every set flag of ``args`` (``None`` and ``False`` left out): the command that reruns it."""
    flags = []
    for key, value in vars(args).items():
        if value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            flags.append(flag)
        else:
            flags.append(f"{flag} {' '.join(map(str, value)) if isinstance(value, list) else value}")
    return " ".join([prog, *flags])
