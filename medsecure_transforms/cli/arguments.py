"""Argument groups, value checks and the parser class shared by the ``medsecure`` subcommands and ``scripts/``.

A public module: scripts import these groups from here, never from the command modules. It imports neither torch
nor MONAI (``medsecure --help`` builds every parser from it in well under a second): commands import their methods
inside their ``run`` functions.

Value checks (``positive_float``, ``positive_int``, ...) are argparse ``type=`` callables: a bad value stops the
command at parse time with one line ``medsecure <command>: error: argument --flag: ...`` and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from ..attacks.presets import ASMA_PRESETS

if TYPE_CHECKING:
    from ..attacks import ASMA
    from ..bundle import BundleAdapter

# ASMA values a flag can override; each flag defaults to None = the preset's value
ASMA_OVERRIDES = ("max_iter", "beta", "tau", "target_iou", "max_linf")
DEFAULT_THREADS = 1
"""torch CPU threads of the commands: one per process (see ``--threads`` in README.md for the measurement)."""
FLOAT32_MAX = 3.4028234663852886e38
FLOAT32_TINY = 1.1754943508222875e-38  # smallest normal float32


class CommandParser(argparse.ArgumentParser):
    """``ArgumentParser`` whose errors are one line on stderr: ``<prog>: error: <message>``, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions kept as written; every option with a default other than ``None``/``False``/``[]`` shows it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if not action.option_strings or default in (None, False, [], argparse.SUPPRESS) or "default" in text:
            return text
        shown = " ".join(map(str, default)) if isinstance(default, list | tuple) else str(default)
        return f"{text} (default: {shown.replace('%', '%%')})"


def add_command(
    subparsers: argparse._SubParsersAction,
    name: str,
    help: str,
    description: str | None = None,
    func: Callable[[argparse.Namespace], int] | None = None,
) -> argparse.ArgumentParser:
    """A subcommand parser with :class:`HelpFormatter` and, when ``func`` runs it, ``--debug``.

    Its errors are one line when ``subparsers`` belongs to a :class:`CommandParser` (subparsers take their parent's
    class).
    """
    parser = subparsers.add_parser(name, help=help, description=description or help, formatter_class=HelpFormatter)
    if func is not None:
        parser.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help="on an error, show the Python traceback instead of one line",
        )
        parser.set_defaults(func=func, prog=parser.prog)
    return parser


def _number(text: str, kind: type, check: Callable[[float], bool], expected: str) -> float | int:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not (math.isfinite(value) and check(value)):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def finite_float(text: str) -> float:
    """A finite number (no NaN, no inf)."""
    return _number(text, float, lambda v: True, "a finite number")


def positive_float(text: str) -> float:
    """A finite number > 0."""
    return _number(text, float, lambda v: v > 0, "a finite number > 0")


def non_negative_float(text: str) -> float:
    """A finite number >= 0."""
    return _number(text, float, lambda v: v >= 0, "a finite number >= 0")


def probability(text: str) -> float:
    """A number in [0, 1] (an IoU, a Dice score, a drop of one)."""
    return _number(text, float, lambda v: 0 <= v <= 1, "a number in [0, 1]")


def float32_positive(text: str) -> float:
    """A positive normal float32 number: quantization steps and value ranges are stored as float32."""
    return _number(
        text, float, lambda v: FLOAT32_TINY <= v <= FLOAT32_MAX, f"a number in [{FLOAT32_TINY:.3g}, {FLOAT32_MAX:.3g}]"
    )


def positive_int(text: str) -> int:
    """An integer >= 1."""
    return _number(text, int, lambda v: v >= 1, "an integer >= 1")


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    return _number(text, int, lambda v: v >= 0, "an integer >= 0")


def add_data_root_argument(parser: argparse.ArgumentParser) -> None:
    """``--data-root`` (else ``$MEDSECURE_DATA_ROOT``, else ``../shared/data``)."""
    parser.add_argument(
        "--data-root", default=None, help="dataset root (default: $MEDSECURE_DATA_ROOT or ../shared/data)"
    )


def add_threads_argument(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, default: int | None = DEFAULT_THREADS
) -> None:
    """``--threads``: torch CPU threads (``None``: torch's choice, one per core)."""
    shown = "torch's choice, one per core" if default is None else default
    parser.add_argument("--threads", type=positive_int, default=default, help=f"torch CPU threads (default: {shown})")


def add_output_dir_argument(parser: argparse.ArgumentParser, default: str | None, what: str) -> None:
    """``--output-dir`` (required when ``default`` is ``None``) and ``--overwrite``."""
    parser.add_argument("--output-dir", default=default, required=default is None, help=what)
    add_overwrite_argument(parser)


def add_overwrite_argument(parser: argparse.ArgumentParser) -> None:
    """``--overwrite``: replace existing outputs (refused otherwise)."""
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs (refused otherwise)")


def add_bundle_arguments(
    parser: argparse.ArgumentParser, bundle: str | None, split: str, limit_help: str = "first N samples only"
) -> None:
    """``--bundle`` (required when ``bundle`` is ``None``), ``--split``, ``--limit`` and ``--data-root``: the studies
    of the project's own bundles on the registered dataset splits (``scripts/``); commands that take any MONAI bundle
    use :func:`add_adapter_arguments`."""
    parser.add_argument(
        "--bundle", default=bundle, required=bundle is None, help="bundle name under bundles/ or a bundle folder"
    )
    parser.add_argument("--split", default=split, help="dataset split")
    parser.add_argument("--limit", type=positive_int, default=None, help=limit_help)
    add_data_root_argument(parser)


def config_override(text: str) -> tuple[str, Any]:
    """``"ID=VALUE"`` -> ``(ID, VALUE)``, VALUE parsed as JSON when it is JSON, else kept as a string (an argparse
    ``type``)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected ID=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def add_adapter_arguments(
    parser: argparse.ArgumentParser, bundle: str | None, limit_help: str = "first N samples only"
) -> argparse._ArgumentGroup:
    """The ``bundle`` group: any MONAI bundle read as ``monai.bundle run`` reads it (:func:`adapter_from_args`).

    ``--bundle`` (required when ``bundle`` is ``None``), ``--config``, ``--set``, ``--preprocessing-id``,
    ``--datalist``, ``--split``, ``--image-key``, ``--label-key``, ``--clip``, ``--ckpt``, ``--limit``,
    ``--data-root``. Returns the group so a command can add its own data flags to it.
    """
    group = parser.add_argument_group(
        "bundle", "any MONAI bundle, read as `monai.bundle run` reads it (model-zoo conventions: docs/bundles.md)"
    )
    group.add_argument(
        "--bundle", default=bundle, required=bundle is None, help="bundle folder, or a bundle name under bundles/"
    )
    group.add_argument(
        "--config",
        nargs="+",
        default=None,
        metavar="FILE",
        help="config file(s) merged in order, overlays last (e.g. $(medsecure overlay defend_fr)); default: "
        "configs/evaluate.json, after configs/train.json or inference.json when it is an overlay",
    )
    group.add_argument(
        "--set",
        type=config_override,
        action="append",
        default=[],
        metavar="ID=VALUE",
        help="set a config id as `monai.bundle run --ID VALUE` does (VALUE: JSON, else a string), e.g. "
        "--set dataset_dir=/data/Task09_Spleen; repeatable",
    )
    group.add_argument(
        "--preprocessing-id",
        default=None,
        help="config id of the preprocessing (default: preprocessing, validate#preprocessing)",
    )
    group.add_argument(
        "--datalist",
        default=None,
        help="a JSON datalist file (MONAI's decathlon format) or a config id (default: dataset#data, "
        "validate#dataset#data, datalist)",
    )
    group.add_argument(
        "--split",
        default=None,
        help="key of a JSON --datalist file (training, validation ...), or the value of the bundle's 'split' "
        "config id where it has one (the project's bundles; default: the bundle's own)",
    )
    group.add_argument("--image-key", default="image", help="key of the image in the bundle's samples")
    group.add_argument("--label-key", default="label", help="key of the label in the bundle's samples")
    group.add_argument(
        "--clip",
        type=finite_float,
        nargs=2,
        default=None,
        metavar=("LOW", "HIGH"),
        help="value range of the network input, the attack's box (default: the metadata's value_range, else 0 1)",
    )
    group.add_argument(
        "--ckpt",
        default=None,
        help="weights file (default: ckpt_path, a CheckpointLoader's load_path, else models/model.pt)",
    )
    group.add_argument("--limit", type=positive_int, default=None, help=limit_help)
    group.add_argument(
        "--data-root",
        default=None,
        help="dataset root of bundles with a 'data_root' config id (default: $MEDSECURE_DATA_ROOT or ../shared/data)",
    )
    return group


def read_datalist_file(path: str | Path, key: str | None) -> list[dict]:
    """Items of a JSON datalist file in MONAI's decathlon format (``{"training": [...], "validation": [...]}``): the
    list under ``key`` (may be left out when the file holds one list), relative paths resolved against the file's
    folder (``monai.data.load_decathlon_datalist``)."""
    from monai.data import load_decathlon_datalist

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"datalist file {path} does not exist")
    content = json.loads(path.read_text())
    lists = sorted(k for k, v in content.items() if isinstance(v, list)) if isinstance(content, dict) else []
    if key is None and len(lists) == 1:
        key = lists[0]
    if key not in lists:
        wanted = "name one with --split" if key is None else f"no list {key!r}"
        raise ValueError(f"datalist file {path}: {wanted} (lists in the file: {lists})")
    return load_decathlon_datalist(str(path), is_segmentation=True, data_list_key=key)


def adapter_from_args(args: argparse.Namespace, device: str = "cpu", **changes: Any) -> BundleAdapter:
    """The :class:`~medsecure_transforms.bundle.BundleAdapter` of the ``bundle`` group's flags (``changes`` replace
    some of them, e.g. ``datalist="train#dataset#data"``).

    ``--set`` overrides config ids; ``--split`` picks the list of a JSON ``--datalist`` file, else sets the bundle's
    ``split`` config id; ``--data-root`` sets its ``data_root`` id. A flag with no config id to act on is an error
    naming the files searched.
    """
    from ..bundle import BundleAdapter
    from ..data import resolve_data_root

    values = {**vars(args), **changes}
    datalist, split = values.get("datalist"), values.get("split")
    from_file = datalist is not None and Path(datalist).suffix.lower() == ".json"
    adapter = BundleAdapter(
        values["bundle"],
        values.get("config"),
        preprocessing_id=values.get("preprocessing_id"),
        datalist_id=None if from_file else datalist,
        ckpt=values.get("ckpt"),
        image_key=values["image_key"],
        label_key=values["label_key"],
        clip=values.get("clip"),
        device=device,
        overrides=dict(values.get("set") or []),
    )
    ids = {"data_root": values.get("data_root"), "split": None if from_file else split}
    for key, value in ids.items():
        if value is None:
            continue
        if key not in adapter.parser:
            files = ", ".join(str(f) for f in adapter.config_files)
            raise ValueError(
                f"--{key.replace('_', '-')}: bundle {adapter.name!r} has no config id {key!r} (searched {files}); "
                "choose its data with --datalist (a JSON datalist file or a config id) or --set ID=VALUE"
            )
        adapter.parser[key] = str(resolve_data_root(value)) if key == "data_root" else value
    if from_file:
        adapter.parser[adapter.ids["datalist"] or "datalist"] = read_datalist_file(datalist, split)
    return adapter


VALIDATE_DATALIST, TRAIN_DATALIST = "validate#dataset#data", "train#dataset#data"
"""Model-zoo ids of a train config's validation and training data: the calibration defaults."""


def calibration_adapter(
    args: argparse.Namespace, datalist: str | None, split: str | None, default_datalist: str, device: str = "cpu"
) -> BundleAdapter:
    """:func:`adapter_from_args` for calibration data, which must not be the evaluation data.

    Without ``--config`` the bundle's train config (``configs/train.json``) is read before its evaluation configs
    (:func:`~medsecure_transforms.bundle.default_config_files`, which win on shared ids; the ``imports`` of all of
    them are kept). Without ``datalist`` and ``split`` the data are ``default_datalist`` (:data:`VALIDATE_DATALIST`,
    :data:`TRAIN_DATALIST`) when the configs have it, else the bundle's own.
    """
    from monai.bundle import ConfigParser

    from ..bundle import bundle_dir, default_config_files

    changes: dict[str, Any] = {"datalist": datalist, "split": split}
    if args.config is None:
        folder = bundle_dir(args.bundle)
        files = default_config_files(folder)
        candidates = (folder / "configs" / f"train{suffix}" for suffix in (".json", ".yaml", ".yml"))
        train = next((p for p in candidates if p.is_file()), None)
        if train is not None and train not in files:
            files = [train, *files]
            imports = [i for f in files for i in ConfigParser.load_config_file(str(f)).get("imports", [])]
            changes["set"] = [("imports", list(dict.fromkeys(imports))), *(args.set or [])]
        changes["config"] = [str(f) for f in files]
    adapter = adapter_from_args(args, device, **changes)
    if datalist is None and split is None and default_datalist in adapter.parser:
        adapter = adapter_from_args(args, device, **{**changes, "datalist": default_datalist})
    return adapter


def add_attack_arguments(parser: argparse.ArgumentParser, preset: str, batch_size: int) -> argparse._ArgumentGroup:
    """The ``attack`` group: ``--attack-preset`` (a name of ``ASMA_PRESETS``), one flag per value it can override,
    ``--seed`` and ``--batch-size``. Returns the group so a command can add its own attack flags to it."""
    names = "; ".join(f"{name}: {p.max_iter} x beta {p.beta:g}, tau {p.tau:g}" for name, p in ASMA_PRESETS.items())
    group = parser.add_argument_group("attack", "ASMA from a named preset, each ASMA flag overriding one of its values")
    group.add_argument("--attack-preset", choices=sorted(ASMA_PRESETS), default=preset, help=f"ASMA schedule ({names})")
    group.add_argument("--max-iter", type=positive_int, default=None, help="ASMA iterations (default: the preset's)")
    group.add_argument("--beta", type=non_negative_float, default=None, help="ASMA IoU-proportional step multiplier")
    group.add_argument("--tau", type=non_negative_float, default=None, help="ASMA constant step multiplier")
    group.add_argument("--max-linf", type=positive_float, default=None, help="ASMA Linf budget (image units)")
    group.add_argument("--target-iou", type=probability, default=None, help="ASMA stopping IoU with the target")
    group.add_argument("--seed", type=int, default=0, help="seed of the attack and of the target-mask draws")
    group.add_argument("--batch-size", type=positive_int, default=batch_size, help="images per batch")
    return group


def asma_from_args(args: argparse.Namespace, clip: tuple[float, float] | None = None) -> ASMA:
    """:class:`ASMA` of ``--attack-preset`` with every explicit override flag and ``--seed`` applied; ``clip``: the
    network input's value range (e.g. ``BundleAdapter.clip``; default the preset's, ``(0, 1)``)."""
    from ..attacks import asma_preset

    overrides = {k: getattr(args, k) for k in ASMA_OVERRIDES if getattr(args, k) is not None}
    if clip is not None:
        overrides["clip"] = tuple(clip)
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
