"""Baseline bundles: configs parse (ConfigWorkflow properties), metadata schema, API, runs by path with their own
weights, defended evaluation, MLflow tracking, evaluate/inference/DDP runs on the real data."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import numpy as np
import pytest
import torch
from helpers import require_dataset
from monai.bundle import ConfigWorkflow
from monai.bundle import run as bundle_run
from PIL import Image

from medsecure_transforms import overlays
from medsecure_transforms.bundle import (
    BUNDLES_ROOT,
    bundle_config,
    bundle_dir,
    bundle_preprocessing,
    load_bundle_network,
    load_state_dict,
    save_engine_metrics,
)

BUNDLES = {
    "fundus_disc_seg": "fundus-drishti-gs1",
    "skin_lesion_seg": "skin-ham10000",
    "hippocampus_seg": "hippocampus-msd",
}
SCHEMA = json.loads((BUNDLES_ROOT / "schema" / "meta_schema_20240725.json").read_text())
REPRODUCE_CASES = 3


def config_file(name: str, config: str) -> str:
    return str(bundle_dir(name) / "configs" / config)


def require_weights(name: str) -> Path:
    weights = bundle_dir(name) / "models" / "model.pt"
    if not weights.is_file():
        pytest.skip(f"{name}: trained weights {weights} not present")
    return weights


@pytest.mark.parametrize("name", BUNDLES)
@pytest.mark.parametrize(
    "configs, workflow_type",
    [
        (["train.json"], "train"),
        (["train.json", "multi_gpu_train.json"], "train"),
        (["evaluate.json"], "infer"),
        (["inference.json"], "infer"),
    ],
)
def test_config_has_workflow_properties(name, configs, workflow_type, unused_tcp_port):
    """Every required train/infer property resolves. Run in a fresh process: the ``multi_gpu_train.json``
    overlay joins a (one-process gloo) group in ``initialize``, which must not leak into other tests."""
    files = [config_file(name, c) for c in configs]
    check = (
        "import json, sys\n"
        "from monai.bundle import ConfigWorkflow\n"
        "files, kind = json.loads(sys.argv[1]), sys.argv[2]\n"
        "workflow = ConfigWorkflow(config_file=files, workflow_type=kind)\n"
        "workflow.initialize()\n"  # MONAI >= 1.5 resolves properties only after `initialize`
        "try:\n"
        "    print('MISSING=' + json.dumps(workflow.check_properties()))\n"
        "finally:\n"
        "    workflow.finalize()\n"
    )
    env = dict(os.environ, RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1")
    env["MASTER_PORT"] = str(unused_tcp_port)
    done = subprocess.run(
        [sys.executable, "-c", check, json.dumps(files), workflow_type], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "MISSING=[]" in done.stdout.splitlines(), done.stdout[-2000:]


@pytest.mark.parametrize("name", BUNDLES)
def test_metadata_validates_against_schema(name):
    meta = json.loads((bundle_dir(name) / "configs" / "metadata.json").read_text())
    jsonschema.validate(meta, SCHEMA)
    broken = {k: v for k, v in meta.items() if k != "network_data_format"}
    with pytest.raises(jsonschema.ValidationError, match="network_data_format"):
        jsonschema.validate(broken, SCHEMA)


@pytest.mark.parametrize("name", BUNDLES)
def test_network_matches_metadata_shapes(name):
    meta = json.loads((bundle_dir(name) / "configs" / "metadata.json").read_text())["network_data_format"]
    inputs, outputs = meta["inputs"]["image"], meta["outputs"]["pred"]
    network = bundle_config(name, "inference.json").get_parsed_content("network_def").eval()
    with torch.no_grad():
        pred = network(torch.zeros(1, inputs["num_channels"], *inputs["spatial_shape"]))
    assert tuple(pred.shape) == (1, outputs["num_channels"], *outputs["spatial_shape"])


# --- the API on a temporary tiny bundle and dataset (no shared data, no trained weights needed) ---

TINY_NETWORK = {
    "_target_": "UNet",
    "spatial_dims": 2,
    "in_channels": 3,
    "out_channels": 2,
    "channels": [4, 8],
    "strides": [2],
    "num_res_units": 0,
}


@pytest.fixture
def tiny_bundle(tmp_path):
    """A bundle folder with a tiny UNet, saved weights, and a 3-image skin dataset in ``tmp_path/data``."""
    folder = tmp_path / "tiny_bundle"
    (folder / "configs").mkdir(parents=True)
    (folder / "models").mkdir()
    common = {
        "imports": ["$import medsecure_transforms", "$import medsecure_transforms.data"],
        "data_root": "/nonexistent",
        "dataset_name": "skin-ham10000",
        "spatial_size": [16, 12],
        "network_def": TINY_NETWORK,
    }
    evaluate = dict(
        common,
        preprocessing={
            "_target_": "Compose",
            "transforms": "$list(medsecure_transforms.data.loading_transforms(@dataset_name).transforms)"
            " + [monai.transforms.Resized(['image', 'label'], @spatial_size, mode=['area', 'nearest'])]",
        },
    )
    (folder / "configs" / "inference.json").write_text(json.dumps(common))
    (folder / "configs" / "evaluate.json").write_text(json.dumps(evaluate))
    torch.manual_seed(0)
    network = bundle_config(folder, "inference.json").get_parsed_content("network_def")
    torch.save(network.state_dict(), folder / "models" / "model.pt")

    data = tmp_path / "data" / "skin-ham10000"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    rng = np.random.default_rng(0)
    for stem in ("a", "b", "c"):
        Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(data / "images" / f"{stem}.png")
        mask = np.zeros((30, 40), np.uint8)
        mask[8:20, 10:30] = 255
        Image.fromarray(mask).save(data / "masks" / f"{stem}.png")
    items = [{"image": f"images/{s}.png", "label": f"masks/{s}.png"} for s in ("a", "b", "c")]
    (data / "dataset.json").write_text(json.dumps({"training": [], "validation": [], "test": items}))
    return folder, network.state_dict(), tmp_path / "data"


def test_load_bundle_network_restores_weights_in_eval_mode(tiny_bundle):
    folder, state, _ = tiny_bundle
    network = load_bundle_network(folder)
    assert not network.training
    for key, value in network.state_dict().items():
        torch.testing.assert_close(value, state[key])


def test_load_state_dict_accepts_model_key_and_rejects_non_tensors(tmp_path):
    state = {"w": torch.arange(3.0)}
    torch.save({"model": state}, tmp_path / "wrapped.pt")
    torch.testing.assert_close(load_state_dict(tmp_path / "wrapped.pt")["w"], state["w"])
    torch.save({"w": 1}, tmp_path / "not_tensors.pt")
    with pytest.raises(ValueError, match="state dict of tensors"):
        load_state_dict(tmp_path / "not_tensors.pt")
    torch.save({"w": SimpleNamespace(x=1)}, tmp_path / "pickled_object.pt")
    with pytest.raises(Exception, match="[Ww]eights only load failed"):
        load_state_dict(tmp_path / "pickled_object.pt")


def test_bundle_dir_errors_name_the_request(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such_bundle"):
        bundle_dir("no_such_bundle")
    (tmp_path / "untrained" / "configs").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="'untrained' has no trained weights"):
        load_bundle_network(tmp_path / "untrained")


def test_bundle_preprocessing_gives_network_size_unit_range(tiny_bundle):
    folder, _, data_root = tiny_bundle
    datalist, transform = bundle_preprocessing(folder, "test", data_root=data_root, limit=2)
    assert [Path(d["image"]).name for d in datalist] == ["a.png", "b.png"]
    sample = transform(datalist[0])
    assert tuple(sample["image"].shape) == (3, 16, 12) and tuple(sample["label"].shape) == (1, 16, 12)
    assert 0.0 <= float(sample["image"].min()) and float(sample["image"].max()) <= 1.0
    assert set(torch.unique(sample["label"]).tolist()) == {0.0, 1.0}


def test_save_engine_metrics_writes_lists(tmp_path):
    engine = SimpleNamespace(
        state=SimpleNamespace(
            metrics={"dice": torch.tensor([0.5, 0.25]), "mean": 0.375},
            metric_details={"dice": torch.tensor([[0.5, 0.0], [0.5, 0.5]])},
        ),
        data_loader=SimpleNamespace(dataset=SimpleNamespace(data=[{"image": "/x/a.png"}, {"image": "/x/b.png"}])),
    )
    record = save_engine_metrics(engine, tmp_path / "out" / "m.json", ["rim", "cup"])
    assert json.loads((tmp_path / "out" / "m.json").read_text()) == record
    assert record == {
        "class_names": ["rim", "cup"],
        "metrics": {"dice": [0.5, 0.25], "mean": 0.375},
        "cases": ["a.png", "b.png"],
        "per_case": {"dice": [[0.5, 0.0], [0.5, 0.5]]},
    }


# --- the trained bundles run by path on generated images (no shared data needed) ---


def _mlflow_runs(output_dir: Path) -> list:
    """Runs of the store ``monai.bundle run --tracking mlflow`` writes: ``<output_dir>/mlruns.db``."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{output_dir / 'mlruns.db'}")
    return [(client, r) for r in client.search_runs([e.experiment_id for e in client.search_experiments()])]


@pytest.fixture(scope="module")
def fundus_images(tmp_path_factory) -> list[dict]:
    """Two generated fundus-like images (RGB) with 0/1/2 masks (background, disc rim, cup)."""
    root = tmp_path_factory.mktemp("fundus")
    rng = np.random.default_rng(0)
    items = []
    for stem in ("a", "b"):
        yy, xx = np.mgrid[:96, :128]
        radius = np.hypot(yy - 48, xx - 64)
        mask = np.where(radius < 12, 2, np.where(radius < 24, 1, 0)).astype(np.uint8)
        image = np.clip(rng.normal(90, 20, (96, 128, 3)) + 120 * (mask[..., None] > 0), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(root / f"{stem}.png")
        Image.fromarray(mask).save(root / f"{stem}_mask.png")
        items.append({"image": str(root / f"{stem}.png"), "label": str(root / f"{stem}_mask.png")})
    return items


def _run_fundus(configs: list, output_dir: Path, items: list[dict], **overrides) -> dict:
    bundle = bundle_dir("fundus_disc_seg")
    require_weights("fundus_disc_seg")
    files = [str(c) if Path(c).is_absolute() else config_file("fundus_disc_seg", c) for c in configs]
    bundle_run(config_file=files, bundle_root=str(bundle), output_dir=str(output_dir), datalist=items, **overrides)
    return json.loads((output_dir / "run.json").read_text())


def test_evaluate_with_mlflow_logs_params_per_class_scalars_and_reports(fundus_images, tmp_path):
    report = _run_fundus(["evaluate.json"], tmp_path, fundus_images, tracking="mlflow")
    measured = json.loads((tmp_path / "metrics.json").read_text())
    assert measured["class_names"] == ["disc_rim", "cup"] and len(measured["metrics"]["dice_per_class"]) == 2
    [(client, run)] = _mlflow_runs(tmp_path)
    metrics, params = run.data.metrics, run.data.params
    for name in ("dice_per_class", "iou_per_class"):
        for c, value in zip(("disc_rim", "cup"), measured["metrics"][name], strict=True):
            assert metrics[f"{name}/{c}"] == pytest.approx(value) == report["metrics"][f"{name}/{c}"]
    assert metrics["dice_mean"] == pytest.approx(measured["metrics"]["dice_mean"])
    assert params["bundle.name"] == "fundus_disc_seg" and params["bundle.version"] == "0.2.0"
    assert params["defense"] == params["codec"] == params["guard"] == "none"
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"metrics.json", "run.json"}


def test_defended_evaluate_gives_dice_with_the_defense_and_records_it(fundus_images, tmp_path):
    plain = _run_fundus(["evaluate.json"], tmp_path / "plain", fundus_images)
    table = bundle_dir("fundus_disc_seg") / "models" / "fr_table.json"
    defended = _run_fundus(
        ["evaluate.json", overlays.path("defend_fr")],
        tmp_path / "defended",
        fundus_images,
        defense_table=str(table),
        tracking="mlflow",
    )
    assert defended["params"]["defense"] == {
        "transform": "FrequencyRefined",
        "keys": ["image"],
        "table": "FR(120,80,300)",
        "color": "rgb",
        "intensity_range": [0.0, 1.0],
    }
    assert defended["metrics"]["pipeline/defense_mean_abs_change"] > 0
    assert defended["metrics"]["dice_mean"] != plain["metrics"]["dice_mean"]
    assert json.loads((tmp_path / "defended" / "metrics.json").read_text())["cases"] == ["a.png", "b.png"]
    [(_, run)] = _mlflow_runs(tmp_path / "defended")
    assert run.data.params["defense.table"] == "FR(120,80,300)" and "dice_per_class/cup" in run.data.metrics


def test_copied_bundle_run_by_path_uses_its_own_weights(fundus_images, tmp_path, monkeypatch):
    """Zoo convention: ``bundle_root`` is ``.`` (or ``--bundle_root``); a copy never reads the repository's weights."""
    source = bundle_dir("skin_lesion_seg")
    require_weights("skin_lesion_seg")
    copy = shutil.copytree(source, tmp_path / "skin_copy", ignore=shutil.ignore_patterns("eval", "train_output*"))
    state = load_state_dict(copy / "models" / "model.pt")
    torch.save({k: -v if v.is_floating_point() else v for k, v in state.items()}, copy / "models" / "model.pt")
    images = [{"image": item["image"]} for item in fundus_images]
    masks = {}
    for name, root in (("source", source), ("copy", copy)):
        bundle_run(
            config_file=str(root / "configs" / "inference.json"),
            bundle_root=str(root),
            output_dir=str(tmp_path / name),
            datalist=images,
            tracking="mlflow" if name == "copy" else None,
        )
        masks[name] = [np.asarray(Image.open(p)) for p in sorted((tmp_path / name).glob("*_seg.png"))]
    assert len(masks["copy"]) == 2 and any((a != b).any() for a, b in zip(*masks.values(), strict=True))
    # run from the copy's folder without --bundle_root: "." is the copy
    monkeypatch.chdir(copy)
    bundle_run(config_file="configs/inference.json", output_dir=str(tmp_path / "cwd"), datalist=images)
    again = [np.asarray(Image.open(p)) for p in sorted((tmp_path / "cwd").glob("*_seg.png"))]
    assert all((a == b).all() for a, b in zip(again, masks["copy"], strict=True))
    [(_, run)] = _mlflow_runs(tmp_path / "copy")  # inference under --tracking mlflow: bundle and pipeline logged
    assert run.data.params["bundle.name"] == "skin_lesion_seg" and run.data.params["defense"] == "none"


def test_training_with_mlflow_logs_the_bundle(fundus_images, tmp_path):
    require_weights("skin_lesion_seg")
    masks = []
    for item in fundus_images:  # skin labels are 0/255
        mask = (np.asarray(Image.open(item["label"])) > 0).astype(np.uint8) * 255
        Image.fromarray(mask).save(tmp_path / Path(item["label"]).name)
        masks.append({"image": item["image"], "label": str(tmp_path / Path(item["label"]).name)})
    bundle_run(
        config_file=config_file("skin_lesion_seg", "train.json"),
        bundle_root=str(bundle_dir("skin_lesion_seg")),
        tracking="mlflow",
        output_dir=str(tmp_path / "out"),
        ckpt_dir=str(tmp_path / "models"),
        max_epochs=1,
        val_interval=1,
        batch_size=2,
        spatial_size=[32, 32],
        **{"train#datalist": masks, "validate#datalist": masks},
    )
    [(_, run)] = _mlflow_runs(tmp_path / "out")
    assert run.data.params["bundle.name"] == "skin_lesion_seg" and "val_mean_dice" in run.data.metrics
    assert (tmp_path / "models" / "model.pt").is_file()


# --- the trained bundles on the real datasets ---


@pytest.mark.slow
@pytest.mark.parametrize("name", BUNDLES)
def test_evaluate_reproduces_documented_dice(name, data_root, tmp_path):
    require_dataset(data_root, BUNDLES[name])
    require_weights(name)
    documented = json.loads((bundle_dir(name) / "docs" / "test_metrics.json").read_text())
    workflow = ConfigWorkflow(
        config_file=config_file(name, "evaluate.json"),
        workflow_type="infer",
        bundle_root=str(bundle_dir(name)),
        output_dir=str(tmp_path),
        data_root=str(data_root),
        datalist=f"$medsecure_transforms.data.load_datalist(@dataset_name, @split, @data_root, {REPRODUCE_CASES})",
    )
    workflow.initialize()
    workflow.run()
    workflow.finalize()
    measured = json.loads((tmp_path / "metrics.json").read_text())
    assert measured["cases"] == documented["cases"][:REPRODUCE_CASES]
    for metric, rows in measured["per_case"].items():
        np.testing.assert_allclose(rows, documented["per_case"][metric][:REPRODUCE_CASES], atol=0.01, err_msg=metric)


@pytest.mark.slow
def test_inference_writes_original_size_masks_and_mlflow_sqlite(data_root, tmp_path):
    require_dataset(data_root, "skin-ham10000")
    require_weights("skin_lesion_seg")
    bundle_run(
        config_file=config_file("skin_lesion_seg", "inference.json"),
        bundle_root=str(bundle_dir("skin_lesion_seg")),
        tracking="mlflow",
        output_dir=str(tmp_path),
        data_root=str(data_root),
        datalist="$[{'image': d['image']} for d in medsecure_transforms.data.load_datalist("
        "@dataset_name, @split, @data_root, limit=2)]",
    )
    masks = sorted(tmp_path.glob("*_seg.png"))
    assert len(masks) == 2
    for mask in masks:
        array = np.asarray(Image.open(mask))
        assert array.shape == (150, 200) and set(np.unique(array)) <= {0, 1}
    assert (tmp_path / "mlruns.db").is_file()
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns.db'}")
    experiments = client.search_experiments()
    assert client.search_runs([e.experiment_id for e in experiments])


@pytest.mark.slow
def test_multi_gpu_overlay_trains_with_two_gloo_processes(data_root, tmp_path):
    require_dataset(data_root, "skin-ham10000")
    configs = [config_file("skin_lesion_seg", c) for c in ("train.json", "multi_gpu_train.json")]
    datalist = "$medsecure_transforms.data.load_datalist(@dataset_name, '{}', @data_root, limit={})"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes=1",
        "--nproc_per_node=2",
        "-m",
        "monai.bundle",
        "run",
        "--config_file",
        json.dumps(configs),
        "--bundle_root",
        str(bundle_dir("skin_lesion_seg")),
        "--data_root",
        str(data_root),
        "--ckpt_dir",
        str(tmp_path),
        "--max_epochs",
        "2",
        "--val_interval",
        "1",
        "--spatial_size",
        "[32,32]",
        "--batch_size",
        "2",
        "--train#datalist",
        datalist.format("training", 4),
        "--validate#datalist",
        datalist.format("validation", 2),
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, cwd=BUNDLES_ROOT.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Epoch[2] Metrics" in result.stdout + result.stderr
    network = bundle_config("skin_lesion_seg", "inference.json").get_parsed_content("network_def")
    network.load_state_dict(load_state_dict(tmp_path / "model.pt"))
