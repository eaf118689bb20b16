"""Generic MONAI bundle overlays shipped with the package (found from a pip install with :func:`path`).

Each overlay is a JSON file merged after a bundle's own configs (``python -m monai.bundle run --config_file
"['configs/inference.json', '<overlay path>']" --bundle_root .``). It only appends: ``+imports``,
``+preprocessing#transforms`` (a list), ``+preprocessing`` (a dict, ``compress``), ``+handlers``, ids of its own, and
``output_dir``: its results go to ``<bundle_root>/eval/<folder>``, never over plain outputs. Of the bundle it reads
``preprocessing``, ``handlers``, ``bundle_root`` and the metadata ``_meta_``; ``--<id> <value>`` sets its own ids.

====================  ==========================================================  ====================
overlay               appends                                                     output folder
====================  ==========================================================  ====================
``defend_fr``         ``FrequencyRefined`` (``defense_table``)                    ``eval/defended``
``defend_jpeg``       ``JPEGQuantized`` (``defense_quality``)                     ``eval/defended``
``guard``             ``FFTDetectd`` (``guard_detector``, ``guard_policy``)       ``eval/guarded``
``compress``          ``MVCompress3Dd`` right after loading (``compress_codec``)  ``eval/compressed``
``evaluate_attack``   an attack evaluation of the evaluator's data (``attack``)   ``eval/attack``
====================  ==========================================================  ====================

These fit ``inference.json``, a standalone ``evaluate.json`` and an ``evaluate.json`` over ``inference.json``. The
``<name>_validate`` variants append to ``validate#preprocessing`` / ``validate#handlers`` instead, for the model
zoo's ``evaluate.json`` over ``train.json`` (whose ``validate#preprocessing#transforms`` is a ``%`` macro that ``+``
cannot extend: they merge :class:`~medsecure_transforms.overlays.compose.OverlayCompose` into it).

Each appends a :class:`~medsecure_transforms.evaluation.tracking.BundleRunReport` to the handlers (``run.json``:
bundle, defense, table, codec, guard; MLflow parameters under ``--tracking mlflow``). The defaults
(``defense_table``, ``compress_codec``) are package data found with :func:`artefact`. Importing this module imports
neither torch nor MONAI.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path

__all__ = ["BASE_NAMES", "NAMES", "artefact", "path", "value_range"]

BASE_NAMES = ("compress", "defend_fr", "defend_jpeg", "evaluate_attack", "guard")
NAMES = tuple(sorted(BASE_NAMES + tuple(f"{name}_validate" for name in BASE_NAMES)))
DEFAULT_RANGE = (0.0, 1.0)


def _resource(relative: str) -> Path:
    return Path(str(resources.files(__package__).joinpath(relative)))


def path(name: str) -> Path:
    """The JSON file of the overlay ``name`` (one of :data:`NAMES`, with or without ``.json``).

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    stem = name[: -len(".json")] if name.endswith(".json") else name
    if stem not in NAMES:
        raise ValueError(f"no overlay {name!r}; known: {list(NAMES)}")
    return _resource(f"{stem}.json")


def artefact(name: str) -> Path:
    """A file the overlays use by default, e.g. ``"fr_table.json"`` (a quantization table), ``"mv3d_codec.json"``.

    Raises:
        FileNotFoundError: no such file among the package's overlay artefacts.
    """
    found = _resource(f"artefacts/{name}")
    if not found.is_file():
        known = sorted(p.name for p in _resource("artefacts").iterdir() if p.suffix == ".json")
        raise FileNotFoundError(f"no overlay artefact {name!r}; known: {known}")
    return found


def value_range(meta: Mapping | None, key: str = "image") -> tuple[float, float]:
    """The network input's intensity range from bundle metadata: ``network_data_format.inputs.<key>.value_range``
    (the only input when ``key`` is not one), else ``(0, 1)`` (the same rule as ``BundleAdapter.clip``)."""
    inputs = ((meta or {}).get("network_data_format") or {}).get("inputs") or {}
    spec = inputs.get(key) or (next(iter(inputs.values())) if len(inputs) == 1 else {})
    found = spec.get("value_range") if isinstance(spec, Mapping) else None
    if isinstance(found, (list, tuple)) and len(found) == 2:
        return float(found[0]), float(found[1])
    return DEFAULT_RANGE
