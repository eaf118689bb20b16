"""The generic overlays (medsecure_transforms/overlays) applied unchanged to model-zoo-style bundles and to ours.

Every overlay runs in-process through ``monai.bundle.run`` (what ``python -m monai.bundle run`` calls) on the three
test bundles of ``tests/zoo_bundles`` (random weights, generated NIfTI data; its ``_validate`` variant on the
``evaluate.json`` over ``train.json``) and on ``skin_lesion_seg`` (its trained weights, its FR table and guard, two
generated images); each writes under ``<bundle_root>/eval/<overlay folder>`` and records what ran in ``run.json``.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import make_zoo_bundles
from monai.bundle import run as bundle_run
from PIL import Image

from medsecure_transforms import overlays
from medsecure_transforms.codecs.mvc import MVWaveletCodec
from medsecure_transforms.defenses import FFTDetector

REPO = Path(__file__).resolve().parents[1]
SLICE, CT, OVERLAY = "slice_2d_on_3d", "ct_sliding_window", "train_eval_overlay"
FOLDERS = {
    "defend_fr": "defended",
    "defend_jpeg": "defended",
    "guard": "guarded",
    "compress": "compressed",
    "evaluate_attack": "attack",
}
KEY_IDS = {
    "defend_fr": "defense_keys",
    "defend_jpeg": "defense_keys",
    "guard": "guard_keys",
    "compress": "compress_keys",
}
# ids only our own bundles have: an overlay must not refer to them
OUR_IDS = ("dataset_name", "spatial_transforms", "load_transforms", "network_transforms", "split", "data_root")
# zoo layouts the overlays apply to: name, config files, run id, image key, overlay variant
LAYOUTS = [
    (SLICE, ["evaluate.json"], "evaluating", "img", ""),
    (CT, ["inference.json", "evaluate.json"], "run", "image", ""),
    (OVERLAY, ["inference.json"], "run", "image", ""),
    (OVERLAY, ["train.json", "evaluate.json"], "run", "image", "_validate"),
]
LAYOUT_IDS = ["slice-evaluate", "ct-inference+evaluate", "2d-inference", "2d-train+evaluate"]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    """The zoo test bundles, each with a calibrated guard detector at the overlay's default path; a 2D codec."""
    root = tmp_path_factory.mktemp("overlay_zoo")
    bundles = make_zoo_bundles(root)
    detector = FFTDetector("autoencoder2", 1, "shifted_frequency")
    detector.calibrate(torch.rand(20, 1, 32, 32, generator=torch.Generator().manual_seed(0)))
    for folder, _ in bundles.values():
        detector.save(folder / "models" / "guard" / "detector.pt")
    MVWaveletCodec(levels=(3, 3)).save(root / "codec_2d.json")
    return {**bundles, "codec_2d": (root / "codec_2d.json", {})}


def _run(folder: Path, configs: list[str], overlay_names: list[str], run_id: str = "run", **overrides) -> None:
    """``python -m monai.bundle run <run_id> --config_file "[<configs>, <overlays>]" --bundle_root <folder> ...``."""
    bundle_run(
        run_id,
        config_file=[str(folder / "configs" / c) for c in configs] + [str(overlays.path(n)) for n in overlay_names],
        meta_file=str(folder / "configs" / "metadata.json"),
        bundle_root=str(folder),
        **overrides,
    )


def _report(folder: Path) -> dict:
    return json.loads((folder / "run.json").read_text())


# ---------------------------------------------------------------- the files


def test_path_and_artefacts_are_package_files():
    for name in overlays.NAMES:
        assert overlays.path(name).is_file() and overlays.path(f"{name}.json") == overlays.path(name)
    with pytest.raises(ValueError, match=r"no overlay 'defend'; known: \['compress'"):
        overlays.path("defend")
    assert overlays.artefact("fr_table.json").is_file() and overlays.artefact("mv3d_codec.json").is_file()
    with pytest.raises(FileNotFoundError, match="known: .*fr_table.json"):
        overlays.artefact("nope.json")
    assert overlays.value_range({}) == (0.0, 1.0)
    meta = {"network_data_format": {"inputs": {"image": {"value_range": [-1, 1]}}}}
    assert overlays.value_range(meta) == (-1.0, 1.0) == overlays.value_range(meta, "img")


@pytest.mark.parametrize("name", overlays.NAMES)
def test_overlay_only_appends_and_uses_no_id_of_our_bundles(name):
    config = json.loads(overlays.path(name).read_text())
    base = name.removesuffix("_validate")
    prefix = {"defend_fr": "defense", "defend_jpeg": "defense", "evaluate_attack": "attack"}.get(base, base)
    for key in config:
        assert key.startswith("+") or key.startswith(prefix) or key == "output_dir", f"{name} sets the bundle's {key}"
    assert "imports" not in config and "+imports" in config
    assert "$import medsecure_transforms" in config["+imports"]
    text = overlays.path(name).read_text()
    assert not re.findall(rf"@({'|'.join(OUR_IDS)})\b", text)
    assert config["output_dir"] == f"$@bundle_root + '/eval/{FOLDERS[base]}'"


@pytest.mark.parametrize("name", overlays.BASE_NAMES)
def test_validate_variant_is_the_overlay_on_validate_ids(name):
    """``<name>_validate`` = ``<name>`` with ``validate#handlers`` and an ``OverlayCompose`` merged into
    ``validate#preprocessing`` (whose transforms the model zoo writes as a ``%`` macro that ``+`` cannot extend)."""
    config = json.loads(overlays.path(name).read_text())
    variant = json.loads(overlays.path(f"{name}_validate").read_text())
    compose = "medsecure_transforms.overlays.compose.OverlayCompose"
    expected = {}
    for key, value in config.items():
        if key == "+preprocessing#transforms":
            expected["+validate#preprocessing"] = {"_target_": compose, "append": value}
        else:
            expected[{"+preprocessing": "+validate#preprocessing", "+handlers": "+validate#handlers"}.get(key, key)] = (
                value
            )
    assert variant == expected


# ---------------------------------------------------------------- the zoo layouts


@pytest.mark.parametrize("name", overlays.BASE_NAMES)
@pytest.mark.parametrize("bundle, configs, run_id, key, variant", LAYOUTS, ids=LAYOUT_IDS)
def test_overlay_runs_unchanged_on_zoo_bundle(zoo, name, bundle, configs, run_id, key, variant):
    folder, overrides = zoo[bundle]
    overrides = dict(overrides)
    if name in KEY_IDS and key != "image":
        overrides[KEY_IDS[name]] = key
    if name == "compress" and bundle == OVERLAY:  # 2D images: a 2-level codec
        overrides.update(compress_codec=str(zoo["codec_2d"][0]), compress_target_ratio=8.0)
    if name == "evaluate_attack":
        overrides.update({"attack#max_iter": 2, "attack_regions": {"fg": [1]}})
    shutil.rmtree(folder / "eval", ignore_errors=True)
    _run(folder, configs, [name + variant], run_id, **overrides)

    out = folder / "eval" / FOLDERS[name]
    assert [p.name for p in (folder / "eval").iterdir()] == [FOLDERS[name]]  # nothing over plain outputs
    report = _report(out)
    assert report["params"]["bundle"] == {"name": bundle, "version": "0.1.0"} and report["samples"] == 2
    if "evaluate.json" in configs:
        assert (out / "metrics.csv").is_file()  # the bundle's own MetricsSaver, in the overlay's folder
    else:
        assert len(list(out.glob("*_seg.nii.gz"))) == 2
    value_range = [-1.0, 1.0] if bundle == SLICE else [0.0, 1.0]
    if name == "defend_fr":
        defense = report["params"]["defense"]
        assert defense["table"] == "FRfixed(20,10,60)" and defense["intensity_range"] == value_range
        assert defense["keys"] == [key] and report["metrics"]["pipeline/defense_mean_abs_change"] > 0
    if name == "defend_jpeg":
        assert report["params"]["defense"]["table"] == "JPEG(75)"
    if name == "guard":
        assert report["params"]["guard"]["detector"].startswith("autoencoder2")
        assert report["params"]["guard"]["policy"] == "flag" and "pipeline/guard_score" in report["metrics"]
    if name == "compress":
        target = 8.0 if bundle == OVERLAY else 30.0
        assert report["params"]["codec"]["target_ratio"] == target
        assert report["metrics"]["pipeline/compression_ratio"] == pytest.approx(target, rel=0.1)
    if name == "evaluate_attack":
        robustness = json.loads((out / "robustness.json").read_text())
        assert robustness["params"]["samples"] == 2 and "attack/target_iou" in robustness["aggregate"]
        assert "benign/fg/dice" in robustness["aggregate"]


def test_defense_changes_the_zoo_evaluation(zoo):
    folder, overrides = zoo[CT]
    shutil.rmtree(folder / "eval", ignore_errors=True)
    _run(folder, ["inference.json", "evaluate.json"], [], **overrides)
    _run(folder, ["inference.json", "evaluate.json"], ["defend_fr"], **overrides)
    rows = dict(line.split(",") for line in (folder / "eval" / "metrics.csv").read_text().split())
    plain = float(rows["val_mean_dice"])
    defended = _report(folder / "eval" / "defended")["metrics"]["val_mean_dice"]
    assert plain != defended


def test_compress_goes_right_after_loading(zoo):
    from monai.bundle import ConfigParser

    folder, _ = zoo[CT]
    parser = ConfigParser()
    parser.read_config([str(folder / "configs" / "inference.json"), str(overlays.path("compress"))])
    parser["bundle_root"] = str(folder)
    names = [type(t).__name__ for t in parser.get_parsed_content("preprocessing").transforms]
    assert names == [
        "LoadImaged",
        "EnsureChannelFirstd",
        "MVCompress3Dd",
        "Orientationd",
        "Spacingd",
        "ScaleIntensityRanged",
        "EnsureTyped",
    ]


def test_overlays_combine_and_the_train_layout_needs_the_validate_variant(zoo):
    folder, overrides = zoo[CT]
    shutil.rmtree(folder / "eval", ignore_errors=True)
    _run(folder, ["inference.json", "evaluate.json"], ["compress", "defend_fr"], **overrides)
    params = _report(folder / "eval" / "defended")["params"]  # the last overlay's output_dir wins
    assert params["codec"]["target_ratio"] == 30.0 and params["defense"]["transform"] == "FrequencyRefined"
    # evaluate.json over train.json keeps its preprocessing under validate#: no `preprocessing` to append to
    folder, overrides = zoo[OVERLAY]
    with pytest.raises(KeyError, match="preprocessing"):
        _run(folder, ["train.json", "evaluate.json"], ["defend_fr"], **overrides)


# ---------------------------------------------------------------- one of our bundles


@pytest.fixture(scope="module")
def skin(tmp_path_factory) -> tuple[Path, dict]:
    """skin_lesion_seg (trained weights) with a datalist of two generated 150 x 200 images and masks."""
    root = tmp_path_factory.mktemp("skin")
    rng = np.random.default_rng(0)
    items = []
    for stem in ("a", "b"):
        Image.fromarray(rng.integers(0, 256, (150, 200, 3), dtype=np.uint8)).save(root / f"{stem}.png")
        mask = np.zeros((150, 200), np.uint8)
        mask[40:110, 50:150] = 255
        Image.fromarray(mask).save(root / f"{stem}_mask.png")
        items.append({"image": str(root / f"{stem}.png"), "label": str(root / f"{stem}_mask.png")})
    MVWaveletCodec(levels=(3, 3)).save(root / "codec_2d.json")
    return REPO / "bundles" / "skin_lesion_seg", {"datalist": items, "codec": str(root / "codec_2d.json")}


SKIN_OVERRIDES = {
    "defend_fr": lambda b, s: {"defense_table": str(b / "models" / "fr_table.json")},
    "defend_jpeg": lambda b, s: {},
    "guard": lambda b, s: {
        "guard_detector": str(b / "models" / "guard" / "detector_unet_shifted_frequency.pt"),
        "guard_reformer": str(b / "models" / "guard" / "reformer_unet.pt"),
        "guard_policy": "reform",
    },
    "compress": lambda b, s: {"compress_codec": s["codec"], "compress_target_ratio": 10.0},
    "evaluate_attack": lambda b, s: {"attack#max_iter": 2, "attack_regions": {"lesion": [1]}},
}


@pytest.mark.parametrize("name", overlays.BASE_NAMES)
def test_overlay_runs_on_our_bundle(skin, name, tmp_path):
    bundle, setup = skin
    if not (bundle / "models" / "model.pt").is_file():
        pytest.skip("skin_lesion_seg has no trained weights")
    output = tmp_path / FOLDERS[name]
    extra = SKIN_OVERRIDES[name](bundle, setup)
    _run(bundle, ["evaluate.json"], [name], datalist=setup["datalist"], output_dir=str(output), **extra)
    report = _report(output)
    assert report["params"]["bundle"]["name"] == "skin_lesion_seg" and report["samples"] == 2
    measured = json.loads((output / "metrics.json").read_text())
    assert measured["cases"] == ["a.png", "b.png"] and set(measured["metrics"]) >= {"dice_mean", "dice_per_class"}
    assert report["metrics"]["dice_per_class"] == pytest.approx(measured["metrics"]["dice_per_class"])  # one class
    expected = {
        "defend_fr": ("defense", "table", "FR(80,120,200)"),
        "defend_jpeg": ("defense", "table", "JPEG(75)"),
        "guard": ("guard", "reformer", "unet"),
        "compress": ("codec", "target_ratio", 10.0),
    }
    if name in expected:
        kind, field, value = expected[name]
        assert report["params"][kind][field] == value
    else:
        assert (output / "robustness.json").is_file()
