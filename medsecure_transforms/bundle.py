"""Access to the project's MONAI bundles (``bundles/<name>``): configs, trained networks and preprocessing.

Every bundle follows the MONAI bundle layout (``configs/{metadata,train,evaluate,inference}.json``,
``models/model.pt``). Its configs name the dataset (``dataset_name``), the data root (``data_root``), the split
(``split``, in ``evaluate.json`` / ``inference.json``), the deterministic ``preprocessing`` producing ``image``
``[C, *spatial]`` in ``[0, 1]`` at the network input size (and ``label`` class indices ``[1, *spatial]`` in
``evaluate.json``), and the ``network_def``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from monai.bundle import ConfigParser
from monai.utils import convert_to_tensor
from tqdm import tqdm

from .data import load_datalist, resolve_data_root

BUNDLES_ROOT = Path(__file__).resolve().parents[1] / "bundles"
WEIGHTS_FILE = Path("models") / "model.pt"


def bundle_dir(name_or_path: str | os.PathLike) -> Path:
    """Folder of a bundle: a path to a bundle folder, else ``./bundles/<name>``, else ``BUNDLES_ROOT/<name>``.

    Raises:
        FileNotFoundError: no folder with a ``configs/`` subfolder at any of these places.
    """
    candidate = Path(name_or_path)
    for folder in (candidate, Path.cwd() / "bundles" / candidate, BUNDLES_ROOT / candidate):
        if (folder / "configs").is_dir():
            return folder.resolve()
    known = sorted(p.name for p in BUNDLES_ROOT.glob("*") if (p / "configs").is_dir())
    raise FileNotFoundError(f"no bundle {str(name_or_path)!r}: not a bundle folder and not one of {known}")


def bundle_config(
    name_or_path: str | os.PathLike,
    config: str = "inference.json",
    data_root: str | os.PathLike | None = None,
    **overrides,
) -> ConfigParser:
    """Parsed config ``configs/<config>`` of a bundle, with ``bundle_root`` and (if data exists) ``data_root`` set.

    ``data_root`` follows :func:`medsecure_transforms.data.resolve_data_root` (argument, ``$MEDSECURE_DATA_ROOT``,
    ``../shared/data``); when no data root is found the config's own expression stays and raises on use.
    ``overrides`` set config ids (``"#"``-separated ids can be passed through a dict: ``**{"a#b": 1}``).
    """
    folder = bundle_dir(name_or_path)
    path = folder / "configs" / config
    if not path.is_file():
        raise FileNotFoundError(f"bundle {folder.name!r} has no config {path}")
    parser = ConfigParser()
    parser.read_config(str(path))
    meta = folder / "configs" / "metadata.json"
    if meta.is_file():
        parser.read_meta(str(meta))
    parser["bundle_root"] = str(folder)
    if "data_root" in parser.config and (data_root is not None or _has_data_root()):
        parser["data_root"] = str(resolve_data_root(data_root))
    for key, value in overrides.items():
        parser[key] = value
    parser.parse()
    return parser


def _has_data_root() -> bool:
    try:
        resolve_data_root()
    except FileNotFoundError:
        return False
    return True


def load_state_dict(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Network weights saved by the bundle's ``CheckpointSaver`` (a state dict, or ``{"model": state_dict}``).

    Loaded with ``weights_only=True``: a file holding anything but tensors and containers is rejected.
    """
    state = torch.load(path, map_location=device, weights_only=True)
    if isinstance(state, Mapping) and set(state) == {"model"}:
        state = state["model"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a network state dict of tensors (or {{'model': state_dict}})")
    return dict(state)


def load_bundle_network(name_or_path: str | os.PathLike, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The bundle's ``network_def`` with the trained ``models/model.pt`` weights, in eval mode on ``device``."""
    folder = bundle_dir(name_or_path)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"bundle {folder.name!r} has no trained weights at {weights}")
    network = bundle_config(folder, "inference.json").get_parsed_content("network_def", instantiate=True)
    network.load_state_dict(load_state_dict(weights, device))
    return network.to(device).eval()


def weights_digest(name_or_path: str | os.PathLike) -> str:
    """First 16 hex digits of the SHA-256 of the bundle's ``models/model.pt`` (identifies the trained weights)."""
    return hashlib.sha256((bundle_dir(name_or_path) / WEIGHTS_FILE).read_bytes()).hexdigest()[:16]


def bundle_preprocessing(
    name_or_path: str | os.PathLike,
    split: str = "test",
    data_root: str | os.PathLike | None = None,
    limit: int | None = None,
) -> tuple[list[dict], Callable]:
    """Datalist of ``split`` and the bundle's deterministic evaluation preprocessing.

    The transform maps a datalist item to ``image`` ``[C, *spatial]`` float32 in ``[0, 1]`` at the network input
    size and ``label`` class indices ``[1, *spatial]`` (the preprocessing of ``configs/evaluate.json``).
    """
    parser = bundle_config(name_or_path, "evaluate.json", data_root=data_root)
    datalist = load_datalist(parser["dataset_name"], split, resolve_data_root(data_root), limit=limit)
    return datalist, parser.get_parsed_content("preprocessing", instantiate=True)


def load_split_tensors(
    name_or_path: str | os.PathLike,
    split: str,
    data_root: str | os.PathLike | None = None,
    limit: int | None = None,
    slices: bool = False,
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A bundle's preprocessed split as ``(images float32, labels int64)``, cases in datalist order.

    Images ``[N, C, *spatial]`` in ``[0, 1]``, labels ``[N, 1, *spatial]`` (the preprocessing of
    ``configs/evaluate.json``, see :func:`bundle_preprocessing`); every case must have the same shape. With ``slices``,
    3D cases ``[C, H, W, D]`` are cut into their ``D`` slices ``[C, H, W]`` (2D cases pass unchanged), so ``N`` counts
    slices. ``limit`` keeps the first ``limit`` cases (volumes, not slices).
    """
    datalist, preprocessing = bundle_preprocessing(name_or_path, split, data_root=data_root, limit=limit)
    images: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    for item in tqdm(datalist, desc=f"{Path(name_or_path).name}/{split}", leave=False, disable=not progress):
        sample = preprocessing(item)
        image = convert_to_tensor(sample["image"], dtype=torch.float32, track_meta=False)
        label = convert_to_tensor(sample["label"], dtype=torch.int64, track_meta=False)
        if slices and image.ndim == 4:  # [C, H, W, D] -> D slices [C, H, W]
            images.extend(image.permute(3, 0, 1, 2).unbind(0))
            labels.extend(label.permute(3, 0, 1, 2).unbind(0))
        else:
            images.append(image)
            labels.append(label)
    if not images:
        raise ValueError(f"bundle {Path(name_or_path).name!r}: split {split!r} has no cases")
    return torch.stack(images).contiguous(), torch.stack(labels).contiguous()


def save_engine_metrics(engine, path: str | os.PathLike, class_names: Sequence[str] | None = None) -> dict:
    """Write an ignite engine's ``state.metrics`` and per-case ``state.metric_details`` to a JSON file.

    Tensors become (nested) lists: a ``reduction="mean_batch"`` metric gives one value per class (in the order of
    ``class_names``), a metric's details one row per case (data-loader order, names in ``cases``) with one value per
    class. Returns the written dict.
    """

    def plain(value):
        return value.tolist() if isinstance(value, torch.Tensor) else value

    items = getattr(engine.data_loader.dataset, "data", [])
    record = {
        "class_names": list(class_names) if class_names is not None else None,
        "metrics": {name: plain(value) for name, value in engine.state.metrics.items()},
        "cases": [Path(item["image"]).name for item in items if isinstance(item, Mapping) and "image" in item],
        "per_case": {name: plain(value) for name, value in getattr(engine.state, "metric_details", {}).items()},
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(record, indent=2))
    return record
