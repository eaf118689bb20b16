"""BundleAdapter on test bundles that follow MONAI model-zoo conventions (tests/zoo_bundles, our own JSON).

- ``slice_2d_on_3d``: a 2D UNet applied to 3D volumes by a ``SliceInferer``, keys ``img`` / ``seg``, inputs in
  [-1, 1], ``ckpt_path`` naming ``models/slice_unet.pt``, old run id ``evaluating``, standalone ``evaluate.json``;
- ``ct_sliding_window``: a 3D UNet with ``SlidingWindowInferer``, ``Orientationd`` / ``Spacingd`` and a HU window
  (``ScaleIntensityRanged`` clip), ``checkpointloader`` + ``initialize``, ``evaluate.json`` an overlay on
  ``inference.json``, ``Invertd`` in the post-processing;
- ``train_eval_overlay``: 2D images, ``train.json`` (``train#`` / ``validate#`` ids, ``CheckpointSaver``) with
  ``evaluate.json`` an overlay on it (``CheckpointLoader`` at ``@ckpt_dir``, ``run`` runs the validator).

The session fixture copies them, writes tiny random weights and NIfTI data in each bundle's layout; the bundles run
in-process through ``monai.bundle.run`` (what ``python -m monai.bundle run`` calls).
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import jsonschema
import nibabel as nib
import pytest
import torch
from helpers import ZOO_BUNDLES, make_zoo_bundles
from monai.bundle import run as bundle_run
from monai.inferers import SimpleInferer, SliceInferer, SlidingWindowInferer

from medsecure_transforms.bundle import BundleAdapter, BundleKeyError, bundle_config_files

ZOO = ZOO_BUNDLES
SCHEMA = Path(__file__).resolve().parents[1] / "bundles" / "schema" / "meta_schema_20240725.json"
SLICE, CT, OVERLAY = "slice_2d_on_3d", "ct_sliding_window", "train_eval_overlay"


@pytest.fixture(scope="session")
def zoo(tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    """Copies of the test bundles with random weights and data: name -> (bundle folder, overrides for the data)."""
    return make_zoo_bundles(tmp_path_factory.mktemp("zoo"))


def _monai_run(folder: Path, configs: list[str], overrides: dict, run_id: str = "run") -> None:
    """``python -m monai.bundle run <run_id> --config_file [...] --bundle_root <folder> --<id> <value>``."""
    bundle_run(
        run_id,
        config_file=[str(folder / "configs" / c) for c in configs],
        meta_file=str(folder / "configs" / "metadata.json"),
        bundle_root=str(folder),
        **overrides,
    )


def _mean_dice_file(folder: Path) -> float:
    """``val_mean_dice`` from MetricsSaver's ``metrics.csv`` (``name,value`` rows)."""
    rows = dict(csv.reader((folder / "eval" / "metrics.csv").open()))
    return float(rows["val_mean_dice"])


def _adapter_mean_dice(adapter: BundleAdapter) -> float:
    return float(torch.stack([adapter.score(s) for s in adapter.samples()]).nanmean())


@pytest.mark.parametrize(
    "name, configs, run_id",
    [
        (SLICE, ["inference.json"], "evaluating"),
        (CT, ["inference.json"], "run"),
        (OVERLAY, ["inference.json"], "run"),
    ],
)
def test_inference_runs_as_shipped(zoo, name, configs, run_id):
    folder, overrides = zoo[name]
    _monai_run(folder, configs, overrides, run_id)
    masks = sorted((folder / "eval").glob("*_seg.nii.gz"))
    assert len(masks) == 2
    written = nib.load(str(masks[0]))
    original = nib.load(str(sorted(Path(overrides.get("dataset_dir", folder / "data")).glob("imagesTs/*"))[0]))
    assert written.shape[: len(original.shape)] == original.shape  # Invertd / no resampling: original grid


@pytest.mark.parametrize(
    "name, configs, run_id",
    [
        (SLICE, ["evaluate.json"], "evaluating"),
        (CT, ["inference.json", "evaluate.json"], "run"),
        (OVERLAY, ["train.json", "evaluate.json"], "run"),
    ],
)
def test_evaluate_runs_as_shipped_and_agrees_with_adapter_scores(zoo, name, configs, run_id):
    folder, overrides = zoo[name]
    _monai_run(folder, configs, overrides, run_id)
    adapter = BundleAdapter(folder, image_key="img" if name == SLICE else "image", overrides=overrides)
    adapter.label_key = "seg" if name == SLICE else "label"
    assert [f.name for f in adapter.config_files] == configs
    expected = _mean_dice_file(folder)
    assert expected > 0 and _adapter_mean_dice(adapter) == pytest.approx(expected, abs=1e-4)


def test_training_overlay_then_evaluate_loads_the_trained_checkpoint(zoo, tmp_path):
    source, overrides = zoo[OVERLAY]
    folder = shutil.copytree(source, tmp_path / OVERLAY, ignore=shutil.ignore_patterns("models", "eval"))
    _monai_run(folder, ["train.json"], {**overrides, "train#trainer#max_epochs": 1})
    adapter = BundleAdapter(folder, overrides=overrides)
    assert adapter.checkpoint == folder / "models" / "model.pt"
    saved = torch.load(adapter.checkpoint, weights_only=True)
    for key, value in adapter.network.state_dict().items():
        torch.testing.assert_close(value, saved[key])


# name, configs, inferer type, checkpoint id, checkpoint file, clip, network input / logits spatial shape
READS = [
    (SLICE, None, SliceInferer, "ckpt_path", "models/slice_unet.pt", (-1.0, 1.0), (32, 32, 6)),
    (CT, ["inference.json"], SlidingWindowInferer, "checkpointloader#load_path", "models/model.pt", (0.0, 1.0), None),
    (OVERLAY, None, SimpleInferer, "validate#handlers#0#load_path", "models/model.pt", (0.0, 1.0), (32, 32)),
    (OVERLAY, ["inference.json"], SimpleInferer, "handlers#0#load_path", "models/model.pt", (0.0, 1.0), (32, 32)),
    (OVERLAY, ["train.json"], SimpleInferer, None, "models/model.pt", (0.0, 1.0), (32, 32)),
]


@pytest.mark.parametrize("name, configs, inferer, ckpt_id, ckpt_file, clip, spatial", READS)
def test_adapter_reads_each_convention(zoo, name, configs, inferer, ckpt_id, ckpt_file, clip, spatial):
    folder, overrides = zoo[name]
    keys = {"image_key": "img", "label_key": "seg"} if name == SLICE else {}
    adapter = BundleAdapter(folder, configs, overrides=overrides, **keys)
    assert isinstance(adapter.inferer, inferer)
    assert adapter.ids["checkpoint"] == ckpt_id and adapter.checkpoint == folder / ckpt_file
    assert adapter.clip == clip
    assert len(adapter.datalist) == 2 and all(adapter.image_key in item for item in adapter.datalist)
    saved = torch.load(adapter.checkpoint, weights_only=True)
    saved = saved.get("model", saved)
    for key, value in adapter.network.state_dict().items():
        torch.testing.assert_close(value, saved[key])
    assert not adapter.network.training

    sample = next(adapter.samples())
    image = sample[adapter.image_key]
    assert spatial is None or tuple(image.shape[1:]) == spatial
    assert clip[0] - 1e-6 <= float(image.min()) and float(image.max()) <= clip[1] + 1e-6
    x = image.as_tensor()[None].clone().requires_grad_(True)
    logits = adapter.logits(x)
    classes = adapter.parser.get("_meta_#network_data_format#outputs#pred#num_channels")
    assert tuple(logits.shape) == (1, classes, *image.shape[1:])
    logits[:, 1].sum().backward()
    assert float((x.grad != 0).float().mean()) > 0.9  # gradients reach (nearly) every voxel through the inferer


def test_sliding_window_keeps_gradients_and_predict_inverts_to_the_original_grid(zoo):
    folder, overrides = zoo[CT]
    adapter = BundleAdapter(folder, overrides=overrides)
    sample = next(adapter.samples())
    assert tuple(sample["image"].shape) == (1, 24, 24, 20)  # 1.5 mm -> 2 mm: larger than the 16^3 window
    x = sample["image"].as_tensor()[None].clone().requires_grad_(True)
    adapter.logits(x)[:, 1].sum().backward()
    assert x.grad is not None and float((x.grad != 0).float().mean()) > 0.9
    inference = BundleAdapter(folder, "inference.json", overrides=overrides)
    assert [type(t).__name__ for t in inference.postprocessing.transforms] == ["Activationsd", "Invertd", "AsDiscreted"]
    out = adapter.predict(sample)
    assert tuple(out["pred"].shape) == (2, 32, 32, 20) and tuple(out["label"].shape) == (2, 32, 32, 20)
    same = adapter.predict(sample, image=sample["image"].as_tensor().clone())
    torch.testing.assert_close(same["pred"], out["pred"])


@pytest.mark.parametrize("name", [SLICE, CT, OVERLAY])
def test_metadata_validates_against_the_bundle_schema(name):
    meta = json.loads((ZOO / name / "configs" / "metadata.json").read_text())
    jsonschema.validate(meta, json.loads(SCHEMA.read_text()))


def test_default_config_files_follow_the_zoo_layout(zoo):
    names = {name: [f.name for f in bundle_config_files(zoo[name][0])] for name in (SLICE, CT, OVERLAY)}
    assert names == {
        SLICE: ["evaluate.json"],
        CT: ["inference.json", "evaluate.json"],
        OVERLAY: ["train.json", "evaluate.json"],
    }


def test_value_range_and_inferer_defaults(zoo, tmp_path):
    folder = shutil.copytree(zoo[OVERLAY][0], tmp_path / OVERLAY)
    meta_path = folder / "configs" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    del meta["network_data_format"]["inputs"]["image"]["value_range"]
    meta_path.write_text(json.dumps(meta))
    config = json.loads((folder / "configs" / "inference.json").read_text())
    del config["inferer"]
    (folder / "configs" / "plain.json").write_text(json.dumps(config))
    adapter = BundleAdapter(folder, "plain.json")
    assert adapter.clip == (0.0, 1.0) and BundleAdapter(folder, "plain.json", clip=(-2, 3)).clip == (-2.0, 3.0)
    assert isinstance(adapter.inferer, SimpleInferer) and adapter.ids["inferer"] is None


def test_bad_input_names_what_is_missing(zoo, tmp_path):
    folder, overrides = zoo[SLICE]
    with pytest.raises(BundleKeyError, match=r"preprocessing: tried \['nope'\] in .*/inference\.json"):
        _ = BundleAdapter(folder, "inference.json", preprocessing_id="nope").preprocessing
    with pytest.raises(BundleKeyError, match=r"cannot merge \['evaluate.json'\].*base config first"):
        BundleAdapter(zoo[OVERLAY][0], "evaluate.json")
    config = json.loads((folder / "configs" / "inference.json").read_text())
    del config["network_def"], config["network"]
    (tmp_path / "no_network.json").write_text(json.dumps(config))
    with pytest.raises(BundleKeyError, match=r"tried \['network_def', 'network'\] in .*/no_network\.json"):
        _ = BundleAdapter(folder, tmp_path / "no_network.json").network
    with pytest.raises(FileNotFoundError, match="no config file 'missing.json'"):
        BundleAdapter(folder, "missing.json")
    # keys: the default image key on a bundle keyed 'img' / 'seg', and a sample without its label
    with pytest.raises(BundleKeyError, match=r"no image_key 'image'; available keys: \['img', 'seg'\]"):
        _ = BundleAdapter(folder).datalist
    adapter = BundleAdapter(folder, "inference.json", image_key="img", label_key="seg")
    sample = next(adapter.samples())
    with pytest.raises(BundleKeyError, match=r"no label_key 'seg'; available keys: \[.*'img'.*\]"):
        adapter.score(sample)
    # no checkpoint: an error naming the expected file, never another bundle's weights
    bare = shutil.copytree(zoo[CT][0], tmp_path / CT, ignore=shutil.ignore_patterns("models", "eval"))
    with pytest.raises(FileNotFoundError, match=r"has no checkpoint: .*ct_sliding_window/models/model\.pt"):
        _ = BundleAdapter(bare, "inference.json").network
    with pytest.raises(FileNotFoundError, match="from the ckpt argument"):
        _ = BundleAdapter(bare, "inference.json", ckpt=tmp_path / "none.pt").checkpoint
