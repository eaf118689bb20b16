"""``medsecure evaluate`` / ``calibrate fr`` / ``overlay`` unchanged on the model-zoo-style test bundles
(tests/zoo_bundles: a slice inferer on 3D volumes keyed ``img`` / ``seg`` in [-1, 1], a 3D sliding-window CT bundle
with ``Invertd``, an ``evaluate.json`` overlay on ``train.json``), and on fundus_disc_seg where its data and weights
exist.

Each bundle's data lives where its configs say (``--set dataset_dir=...`` where that is outside the bundle); the
benign Dice of ``medsecure evaluate`` is the bundle's own (:meth:`BundleAdapter.score`, which test_bundle_adapter.py
checks against ``monai.bundle run`` of its evaluate configs).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import make_zoo_bundles, require_dataset

from medsecure_transforms import overlays
from medsecure_transforms.bundle import BundleAdapter, bundle_dir
from medsecure_transforms.cli.main import main

SLICE, CT, OVERLAY = "slice_2d_on_3d", "ct_sliding_window", "train_eval_overlay"
KEYS = {SLICE: ["--image-key", "img", "--label-key", "seg"], CT: [], OVERLAY: []}
CLASSES = {SLICE: ["1", "2"], CT: ["1"], OVERLAY: ["1"]}
CLIP = {SLICE: [-1.0, 1.0], CT: [0.0, 1.0], OVERLAY: [0.0, 1.0]}  # the metadata's value_range


def jpeg50(name: str) -> str:
    """``--defense`` JPEG(50) config for the bundle's input range (default colour: per channel on grey levels)."""
    config = {"_target_": "medsecure_transforms.transforms.JPEGQuantize", "quality": 50, "intensity_range": CLIP[name]}
    return f"jpeg={json.dumps(config)}"


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    """Copies of the test bundles with random weights and data: name -> (bundle folder, config ids for the data)."""
    return make_zoo_bundles(tmp_path_factory.mktemp("zoo"))


def bundle_flags(zoo: dict, name: str) -> list[str]:
    folder, overrides = zoo[name]
    return ["--bundle", str(folder), *KEYS[name], *[f"--set={k}={v}" for k, v in overrides.items()]]


def evaluate(zoo: dict, name: str, out: Path, *extra: str) -> dict:
    argv = ["evaluate", *bundle_flags(zoo, name), "--no-mlflow", "--output-dir", str(out), *extra]
    assert main(argv) == 0
    return json.loads((out / "robustness.json").read_text())


@pytest.mark.parametrize("name", [SLICE, CT, OVERLAY])
def test_evaluate_runs_unchanged_and_scores_like_the_bundle(zoo, name, tmp_path):
    report = evaluate(zoo, name, tmp_path / "out", "--attack", "pgd", "--steps", "2", "--defense", jpeg50(name))
    folder, overrides = zoo[name]
    keys = {"image_key": "img", "label_key": "seg"} if name == SLICE else {}
    adapter = BundleAdapter(folder, overrides=overrides, **keys)
    rows = report["per_sample"]
    assert len(rows) == 2
    for row, sample in zip(rows, adapter.samples(), strict=True):
        expected = adapter.score(sample)
        for k, value in enumerate(expected.tolist(), start=1):
            assert row[f"benign/class_{k}/dice"] == pytest.approx(value, abs=1e-6)
    params = report["params"]
    assert params["attack"]["clip"] == list(adapter.clip) == CLIP[name]
    assert params["bundle"]["name"] == name and params["bundle"]["ids"] == adapter.ids
    assert [Path(f).name for f in params["bundle"]["config_files"]] == [f.name for f in adapter.config_files]
    assert params["defenses"]["jpeg"]["table"] == "JPEG(50)"  # grey levels: JPEGQuantize's default colour works
    assert params["scoring"].startswith(f"post-processing of bundle {name!r}")
    markdown = (tmp_path / "out" / "robustness.md").read_text()
    assert f"bundle: `{name}`" in markdown and "defense `jpeg`: `JPEGQuantize`, table JPEG(50)" in markdown


@pytest.mark.parametrize("name", [SLICE, CT, OVERLAY])
def test_calibrate_fr_runs_unchanged(zoo, name, tmp_path):
    out = tmp_path / "fr"
    tiny = ["--max-iter", "2", "--qs1", "20", "--qs2", "10", "--qs3", "60", "80", "--jpeg-qualities", "50"]
    argv = ["calibrate", "fr", *bundle_flags(zoo, name), "--classes", *CLASSES[name], *tiny, "--max-benign-drop", "1"]
    assert main([*argv, "--output-dir", str(out)]) == 0
    table = json.loads((out / "fr_table.json").read_text())
    grid = json.loads((out / "fr_grid.json").read_text())
    assert len(grid["fr"]) == 2 and [r["quality"] for r in grid["jpeg"]] == [50]
    provenance = table["provenance"]
    assert provenance["bundle"]["name"] == name and provenance["tune_samples"] == 2
    assert provenance["intensity_range"] == CLIP[name] == provenance["attack"]["clip"]
    expected = ["validate#dataset#data", "train#dataset#data"] if name == OVERLAY else ["dataset#data"] * 2
    assert [provenance["tune_data"]["datalist"], provenance["std_data"]["datalist"]] == expected


def test_sliding_window_attack_changes_the_prediction(zoo, tmp_path):
    report = evaluate(zoo, CT, tmp_path / "out", "--attack", "pgd", "--steps", "2", "--epsilon", "0.3")
    for row in report["per_sample"]:
        assert row["attack/linf"] == pytest.approx(0.3, abs=1e-5)
        assert row["adversarial/class_1/dice"] != row["benign/class_1/dice"]  # gradients flowed through the window
        assert row["attack/target_iou"] < row["benign/class_1/iou"]


def test_overlay_in_the_config_list_and_a_datalist_file(zoo, tmp_path):
    folder, overrides = zoo[OVERLAY]
    data = Path(overrides["dataset_dir"])
    datalist = {
        "testing": [
            {"image": f"imagesTs/{p.name}", "label": f"labelsTs/{p.name}"}
            for p in sorted((data / "imagesTs").glob("*.nii.gz"))
        ][:1]
    }
    (data / "datalist.json").write_text(json.dumps(datalist))
    config = ["--config", "train.json", "evaluate.json", str(overlays.path("defend_jpeg_validate"))]
    flags = ["--datalist", str(data / "datalist.json"), "--split", "testing", "--attack", "fgsm"]
    report = evaluate(zoo, OVERLAY, tmp_path / "out", *config, *flags)
    assert [r["sample"] for r in report["per_sample"]] == [Path(datalist["testing"][0]["image"]).name]
    (record,) = report["params"]["bundle"]["preprocessing_defenses_codecs"]
    assert (record["transform"], record["table"]) == ("JPEGQuantized", "JPEG(75)")
    assert Path(report["params"]["bundle"]["config_files"][-1]) == overlays.path("defend_jpeg_validate")


def test_bad_input_is_one_line_naming_what_is_missing(zoo, tmp_path, capsys):
    flags = [*bundle_flags(zoo, CT), "--attack", "fgsm", "--no-mlflow", "--output-dir", str(tmp_path / "out")]
    assert main(["evaluate", *flags, "--split", "test"]) == 2
    assert "--split: bundle 'ct_sliding_window' has no config id 'split'" in capsys.readouterr().err
    assert main(["evaluate", *flags, "--preprocessing-id", "nope"]) == 2
    assert "no config id for the preprocessing: tried ['nope']" in capsys.readouterr().err
    assert main(["evaluate", *flags, "--label-key", "mask"]) == 2
    assert "no 'mask' entry (keys: ['image', 'label'])" in capsys.readouterr().err
    assert main(["evaluate", *flags, "--ckpt", str(tmp_path / "none.pt")]) == 2
    assert "has no checkpoint" in capsys.readouterr().err


def test_overlay_command(capsys):
    assert main(["overlay", "defend_fr"]) == 0
    assert capsys.readouterr().out.strip() == str(overlays.path("defend_fr"))
    assert main(["overlay", "--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed] == list(overlays.NAMES)
    assert all(Path(line.split()[1]).is_file() for line in listed)
    assert main(["overlay", "nope"]) == 2
    assert "no overlay 'nope'" in capsys.readouterr().err


def test_fundus_benign_dice_is_the_bundles_own(data_root, tmp_path):
    """On Drishti-GS1 the disc Dice is the one evaluate.json reports (largest connected component included)."""
    require_dataset(data_root, "fundus-drishti-gs1")
    folder = bundle_dir("fundus_disc_seg")
    if not (folder / "models" / "model.pt").is_file():
        pytest.skip("fundus_disc_seg has no trained weights")
    from monai.bundle import run as bundle_run

    torch.set_num_threads(1)
    limited = "$medsecure_transforms.data.load_datalist(@dataset_name, @split, @data_root)[:2]"
    configs = folder / "configs"
    bundle_run(
        "run",
        config_file=str(configs / "evaluate.json"),
        meta_file=str(configs / "metadata.json"),
        bundle_root=str(folder),
        datalist=limited,
        data_root=str(data_root),
        output_dir=str(tmp_path / "bundle"),
    )
    own = json.loads((tmp_path / "bundle" / "metrics.json").read_text())["per_case"]["dice_disc"]
    flags = ["--limit", "2", "--attack", "fgsm", "--regions", "disc=1,2", "--data-root", str(data_root)]
    out = tmp_path / "out"
    assert main(["evaluate", "--bundle", "fundus_disc_seg", *flags, "--no-mlflow", "--output-dir", str(out)]) == 0
    report = json.loads((out / "robustness.json").read_text())
    assert [r["benign/disc/dice"] for r in report["per_sample"]] == pytest.approx([c[0] for c in own], abs=1e-6)


def test_calibrate_mv3d_on_the_sliding_window_bundle(zoo, tmp_path):
    """No load_transforms / network_transforms ids: the codec sits after LoadImaged / EnsureChannelFirstd; scores go
    through the sliding window and Invertd, so the uncompressed score is the bundle's own Dice."""
    out = tmp_path / "mv3d"
    assert main(["calibrate", "mv3d", *bundle_flags(zoo, CT), "--candidates", "8", "16", "--output-dir", str(out)]) == 0
    report = json.loads((out / "mv3d_calibration.json").read_text())
    folder, overrides = zoo[CT]
    adapter = BundleAdapter(folder, overrides=overrides)
    expected = torch.stack([adapter.score(sample).nanmean() for sample in adapter.samples()]).mean()
    assert report["reference_score"] == pytest.approx(float(expected), abs=1e-6)
    assert report["bundle"] == CT and report["ids"]["inferer"] == "inferer" and len(report["cases"]) == 2
