"""Access to the project's MONAI bundles (``bundles/<name>``): configs, trained networks and preprocessing.

Every bundle follows the MONAI bundle layout (``configs/{metadata,train,evaluate,inference}.json``,
``models/model.pt``). Its configs name the dataset (``dataset_name``), the data root (``data_root``), the split
(``split``, in ``evaluate.json`` / ``inference.json``), the deterministic ``preprocessing`` producing ``image``
``[C, *spatial]`` in ``[0, 1]`` at the network input size (and ``label`` class indices ``[1, *spatial]`` in
``evaluate.json``), and the ``network_def``.

:class:`BundleAdapter` reads any MONAI bundle (model-zoo conventions, overlays included) the way
``monai.bundle run`` does and gives the attack engine the bundle's own inferer and post-processing.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor
from monai.inferers import Inferer, SimpleInferer
from monai.metrics import compute_dice
from monai.networks.utils import one_hot
from monai.transforms import (
    Compose,
    SaveClassificationd,
    SaveImage,
    SaveImaged,
    WriteFileMapping,
    WriteFileMappingd,
)
from monai.utils import CommonKeys, convert_to_tensor
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
    if "data_root" in parser.config and (data_root is not None or _has_data_root()):
        overrides = {"data_root": str(resolve_data_root(data_root)), **overrides}
    _set_bundle_fields(parser, folder, overrides)
    parser.parse()
    return parser


def _set_bundle_fields(parser: ConfigParser, folder: Path, overrides: Mapping[str, Any]) -> None:
    """Read the bundle's ``configs/metadata`` into ``parser``, set ``bundle_root`` to ``folder``, then ``overrides``."""
    meta = _config_file(folder / "configs", "metadata")
    if meta is not None:
        parser.read_meta(str(meta))
    parser["bundle_root"] = str(folder)
    for key, value in overrides.items():
        parser[key] = value


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
    return BundleAdapter(folder, "inference.json", network_id="network_def", ckpt=weights, device=device).network


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


# ---------------------------------------------------------------- any MONAI bundle (model-zoo conventions)

PREPROCESSING_IDS = ("preprocessing", "validate#preprocessing")
DATALIST_IDS = ("dataset#data", "validate#dataset#data", "datalist")
NETWORK_IDS = ("network_def", "network")
INFERER_IDS = ("inferer", "validate#inferer")
POSTPROCESSING_IDS = ("postprocessing", "validate#postprocessing")
CKPT_IDS = ("ckpt_path",)
CHECKPOINT_LOADER_IDS = ("checkpointloader", "handlers", "validate#handlers")
CONFIG_SUFFIXES = (".json", ".yaml", ".yml")
WRITER_TRANSFORMS = (SaveImage, SaveImaged, SaveClassificationd, WriteFileMapping, WriteFileMappingd)
DEFAULT_CLIP = (0.0, 1.0)


class BundleKeyError(KeyError):
    """A config id or a sample key that is not there; the message names what was tried and what exists."""

    def __str__(self) -> str:
        return str(self.args[0])


def _config_file(configs: Path, stem: str) -> Path | None:
    return next((configs / f"{stem}{s}" for s in CONFIG_SUFFIXES if (configs / f"{stem}{s}").is_file()), None)


def default_config_files(folder: str | os.PathLike) -> list[Path]:
    """The config files an evaluation of a bundle reads, model-zoo style.

    ``configs/evaluate.json`` alone when it defines a network (standalone); else, as an overlay, after
    ``configs/train.json`` (zoo convention) or ``configs/inference.json``; without ``evaluate.json``,
    ``configs/inference.json``. ``.yaml`` / ``.yml`` files count like ``.json``.
    """
    configs = Path(folder) / "configs"
    evaluate = _config_file(configs, "evaluate")
    if evaluate is not None:
        if any(key in ConfigParser.load_config_file(str(evaluate)) for key in NETWORK_IDS):
            return [evaluate]
        base = _config_file(configs, "train") or _config_file(configs, "inference")
        if base is not None:
            return [base, evaluate]
    inference = _config_file(configs, "inference")
    if inference is None:
        raise FileNotFoundError(f"bundle {Path(folder).name!r}: no configs/evaluate.json or configs/inference.json")
    return [inference]


def bundle_config_files(
    folder: str | os.PathLike, config: str | os.PathLike | Sequence[str | os.PathLike] | None = None
) -> list[Path]:
    """Config files of a bundle, in merge order: ``config`` (one file or a list), else :func:`default_config_files`.

    A relative name is looked up in the bundle folder, then in its ``configs/``, then in the working directory
    (``"evaluate.json"``, ``"configs/evaluate.json"`` and ``"bundles/x/configs/evaluate.json"`` all work).
    """
    folder = Path(folder)
    if config is None:
        return default_config_files(folder)
    names = [config] if isinstance(config, (str, os.PathLike)) else list(config)
    files = []
    for name in names:
        path = Path(name)
        candidates = [path] if path.is_absolute() else [folder / path, folder / "configs" / path, path]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise FileNotFoundError(f"bundle {folder.name!r}: no config file {str(name)!r} (looked at {candidates})")
        files.append(found.resolve())
    return files


def _without_writers(transform: Callable) -> Callable:
    """``transform`` with the writer transforms (``SaveImaged`` ...) removed, nested ``Compose`` included."""
    if not isinstance(transform, Compose):
        return transform
    stripped = copy.copy(transform)
    kept = [t for t in transform.transforms if not isinstance(t, WRITER_TRANSFORMS)]
    stripped.transforms = tuple(_without_writers(t) for t in kept)
    return stripped


def _class_map(x: torch.Tensor) -> torch.Tensor:
    """Class indices ``[1, *spatial]`` from one-hot / probabilities / logits ``[K, *spatial]`` or indices."""
    x = convert_to_tensor(x, track_meta=False)
    return x.argmax(0, keepdim=True) if x.shape[0] > 1 else x.round().long()


class BundleAdapter:
    """Any MONAI bundle read as ``monai.bundle run`` reads it, for attacks, defenses and scoring.

    The config files (``config``: one file or a list of overlays merged in order, default
    :func:`default_config_files`) are read with ``ConfigParser.read_config``, ``configs/metadata.json`` with
    ``read_meta``, ``bundle_root`` is set to the bundle folder and ``overrides`` (``{"dataset_dir": ...}``) set last.
    Each part comes from the first existing config id of its candidates, or from the id given:

    - ``preprocessing``: ``preprocessing``, ``validate#preprocessing``;
    - datalist: ``dataset#data``, ``validate#dataset#data``, ``datalist`` (file names become ``{image_key: name}``);
    - network: ``network_def``, ``network``; weights from ``ckpt`` or the ``ckpt_path`` id, else the ``load_path``
      of a ``CheckpointLoader`` in ``checkpointloader`` / ``handlers`` / ``validate#handlers``, else
      ``models/model.pt`` (relative paths: in the bundle folder); a missing file is an error;
    - inferer: ``inferer``, ``validate#inferer``, else ``SimpleInferer``;
    - post-processing: ``postprocessing``, ``validate#postprocessing`` without its writers (``SaveImaged`` ...),
      else none (scores the argmax of the logits).

    ``clip`` (the input value range for attacks) defaults to the metadata's
    ``network_data_format.inputs.<image_key>.value_range``, else ``(0, 1)``.
    Parts are built on first use, so a bundle without a datalist still gives its network.
    """

    def __init__(
        self,
        bundle: str | os.PathLike,
        config: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
        *,
        preprocessing_id: str | None = None,
        datalist_id: str | None = None,
        network_id: str | None = None,
        inferer_id: str | None = None,
        postprocessing_id: str | None = None,
        ckpt: str | os.PathLike | None = None,
        image_key: str = "image",
        label_key: str = "label",
        clip: tuple[float, float] | None = None,
        device: str | torch.device = "cpu",
        overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self.folder = bundle_dir(bundle)
        self.config_files = bundle_config_files(self.folder, config)
        self.image_key, self.label_key = str(image_key), str(label_key)
        self.device = torch.device(device)
        self._explicit = {
            "preprocessing": preprocessing_id,
            "datalist": datalist_id,
            "network": network_id,
            "inferer": inferer_id,
            "postprocessing": postprocessing_id,
        }
        self._ckpt, self._clip = ckpt, clip
        self.parser = ConfigParser()
        try:
            self.parser.read_config([str(f) for f in self.config_files])
        except (KeyError, ValueError) as error:
            names = [f.name for f in self.config_files]
            raise BundleKeyError(
                f"bundle {self.folder.name!r}: cannot merge {names} ({error}); an overlay such as a zoo "
                "evaluate.json needs its base config first: ['train.json', 'evaluate.json']"
            ) from error
        _set_bundle_fields(self.parser, self.folder, overrides or {})
        self.name = str(self.parser.get("_meta_#name", self.folder.name))

    def __repr__(self) -> str:
        return f"BundleAdapter({str(self.folder)!r}, config={[f.name for f in self.config_files]})"

    # ---------------------------------------------------------------- config ids

    def _id(self, part: str, candidates: Sequence[str], required: bool = True) -> str | None:
        """The config id of ``part``: the one given, else the first existing candidate (``None`` if optional)."""
        explicit = self._explicit[part]
        tried = [explicit] if explicit else list(candidates)
        found = next((i for i in tried if i in self.parser), None)
        if found is None and (required or explicit):
            files = ", ".join(str(f) for f in self.config_files)
            raise BundleKeyError(f"bundle {self.name!r}: no config id for the {part}: tried {tried} in {files}")
        return found

    @property
    def ids(self) -> dict[str, str | None]:
        """Config id of each part (``None``: not in the configs, or the checkpoint given / the default file)."""
        candidates = {
            "preprocessing": PREPROCESSING_IDS,
            "datalist": DATALIST_IDS,
            "network": NETWORK_IDS,
            "inferer": INFERER_IDS,
            "postprocessing": POSTPROCESSING_IDS,
        }
        found = {part: self._id(part, ids, required=False) for part, ids in candidates.items()}
        return {**found, "checkpoint": None if self._ckpt is not None else self._checkpoint_id()}

    def _missing_key(self, sample: Mapping, key: str, role: str, where: str) -> BundleKeyError:
        return BundleKeyError(
            f"bundle {self.name!r}: {where} has no {role} {key!r}; available keys: {sorted(map(str, sample))}"
        )

    def _image(self, sample: Mapping) -> torch.Tensor:
        if self.image_key not in sample:
            raise self._missing_key(sample, self.image_key, "image_key", "the sample")
        return sample[self.image_key]

    # ---------------------------------------------------------------- parts

    @cached_property
    def preprocessing(self) -> Callable:
        """The bundle's deterministic preprocessing (datalist item -> sample dict)."""
        return self.parser.get_parsed_content(self._id("preprocessing", PREPROCESSING_IDS), instantiate=True)

    @cached_property
    def datalist(self) -> list[dict]:
        """The bundle's own data: dicts holding ``image_key`` (and ``label_key`` where the bundle has labels)."""
        datalist_id = self._id("datalist", DATALIST_IDS)
        items = self.parser.get_parsed_content(datalist_id, instantiate=True)
        data = [{self.image_key: item} if isinstance(item, (str, os.PathLike)) else dict(item) for item in items]
        for i, item in enumerate(data):
            if self.image_key not in item:
                raise self._missing_key(item, self.image_key, "image_key", f"datalist {datalist_id!r} item {i}")
        return data

    @cached_property
    def checkpoint(self) -> Path:
        """The weights file (see the class docstring for the search order); it must exist."""
        if self._ckpt is not None:
            path, source = Path(self._ckpt), "the ckpt argument"
        else:
            ckpt_id = self._checkpoint_id()
            path = Path(WEIGHTS_FILE if ckpt_id is None else self.parser.get_parsed_content(ckpt_id))
            path = path if path.is_absolute() else self.folder / path
            source = f"the default {WEIGHTS_FILE}" if ckpt_id is None else f"config id {ckpt_id!r}"
        if not path.is_file():
            raise FileNotFoundError(
                f"bundle {self.name!r} has no checkpoint: {path} (from {source}) does not exist; "
                "train the bundle or pass its weights file (ckpt)"
            )
        return path

    def _checkpoint_id(self) -> str | None:
        """Config id of the weights path: ``ckpt_path``, else a ``CheckpointLoader``'s ``load_path``."""
        for ckpt_id in CKPT_IDS:
            if ckpt_id in self.parser:
                return ckpt_id
        for loader_id in CHECKPOINT_LOADER_IDS:
            raw = self.parser.get(loader_id)
            entries = enumerate(raw) if isinstance(raw, list) else [(None, raw)]
            for index, entry in entries:
                if (
                    isinstance(entry, Mapping)
                    and str(entry.get("_target_", "")).rsplit(".", 1)[-1] == "CheckpointLoader"
                    and "load_path" in entry
                    and str(entry.get("_disabled_", False)).lower() != "true"
                ):
                    return f"{loader_id}#load_path" if index is None else f"{loader_id}#{index}#load_path"
        return None

    @cached_property
    def network(self) -> torch.nn.Module:
        """The bundle's network with the checkpoint's weights, in eval mode on ``device``."""
        network = self.parser.get_parsed_content(self._id("network", NETWORK_IDS), instantiate=True)
        network.load_state_dict(load_state_dict(self.checkpoint, self.device))
        return network.to(self.device).eval()

    @cached_property
    def inferer(self) -> Inferer:
        """The bundle's inferer (``SlidingWindowInferer``, ``SliceInferer`` ...), else ``SimpleInferer``."""
        inferer_id = self._id("inferer", INFERER_IDS, required=False)
        return SimpleInferer() if inferer_id is None else self.parser.get_parsed_content(inferer_id, instantiate=True)

    @cached_property
    def postprocessing(self) -> Callable:
        """The bundle's post-processing without writer transforms (identity when the bundle has none)."""
        post_id = self._id("postprocessing", POSTPROCESSING_IDS, required=False)
        if post_id is None:
            return Compose([])
        post = self.parser.get_parsed_content(post_id, instantiate=True)
        return _without_writers(Compose(list(post)) if isinstance(post, (list, tuple)) else post)

    @property
    def clip(self) -> tuple[float, float]:
        """Value range of the network input (attack clip): given, else the metadata's ``value_range``, else (0, 1)."""
        if self._clip is not None:
            return float(self._clip[0]), float(self._clip[1])
        inputs = self.parser.get("_meta_#network_data_format#inputs", {}) or {}
        spec = inputs.get(self.image_key) or (next(iter(inputs.values())) if len(inputs) == 1 else {})
        value_range = spec.get("value_range") if isinstance(spec, Mapping) else None
        if isinstance(value_range, Sequence) and len(value_range) == 2:
            return float(value_range[0]), float(value_range[1])
        return DEFAULT_CLIP

    # ---------------------------------------------------------------- running

    def load(self, item: Mapping) -> dict:
        """A datalist item through the bundle's preprocessing (a sample dict holding ``image_key``)."""
        sample = self.preprocessing(dict(item))
        if self.image_key not in sample:
            raise self._missing_key(sample, self.image_key, "image_key", "the preprocessed sample")
        return sample

    def samples(self, limit: int | None = None) -> Iterator[dict]:
        """Preprocessed samples of the datalist, one at a time (shapes may differ between samples)."""
        for item in self.datalist[:limit]:
            yield self.load(item)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable ``[B, C, *spatial]`` -> ``[B, K, *spatial]``: the bundle's inferer with the network."""
        return self.inferer(x.to(self.device), self.network)

    def postprocess(self, sample: Mapping, logits: torch.Tensor) -> dict:
        """The bundle's post-processing of one sample's ``logits`` ``[K, *spatial]``, as its evaluator applies it.

        Like ``SupervisedEvaluator``: the sample's keys plus ``image``, ``label`` (from ``image_key`` / ``label_key``,
        ``None`` without a label) and ``pred`` (the logits, with the image's metadata so ``Invertd`` works).
        """
        image = self._image(sample)
        pred = logits.detach()
        if isinstance(image, MetaTensor):
            pred = MetaTensor(pred, meta=image.meta, applied_operations=image.applied_operations)
        data = dict(sample)
        data.update({CommonKeys.IMAGE: image, CommonKeys.LABEL: sample.get(self.label_key), CommonKeys.PRED: pred})
        return self.postprocessing(data)

    def _run(self, sample: Mapping, image: torch.Tensor | None) -> tuple[torch.Tensor, dict]:
        x = convert_to_tensor(self._image(sample) if image is None else image, track_meta=False)
        with torch.no_grad():
            logits = self.logits(x[None].float())[0]
        return logits, self.postprocess(sample, logits)

    def predict(self, sample: Mapping, image: torch.Tensor | None = None) -> dict:
        """Post-processed prediction of a preprocessed sample, or of ``image`` ``[C, *spatial]`` (attacked,
        defended) in its place; the sample's metadata is kept for inverting transforms."""
        return self._run(sample, image)[1]

    def score(self, sample: Mapping, image: torch.Tensor | None = None) -> torch.Tensor:
        """Per-class Dice ``[K - 1]`` (background excluded, NaN where the label lacks the class), as the bundle's
        ``MeanDice`` sees it: post-processed ``pred`` against post-processed ``label``."""
        if self.label_key not in sample:
            raise self._missing_key(sample, self.label_key, "label_key", "the sample")
        logits, out = self._run(sample, image)
        pred, label = _class_map(out[CommonKeys.PRED]), _class_map(out[CommonKeys.LABEL])
        if pred.shape != label.shape:
            shapes = f"pred {tuple(pred.shape)} vs label {tuple(label.shape)}"
            raise ValueError(f"bundle {self.name!r}: post-processed {shapes}; invert the label like the pred")
        classes = max(int(logits.shape[0]), 2)
        return compute_dice(one_hot(pred[None], classes), one_hot(label[None], classes), include_background=False)[0]
