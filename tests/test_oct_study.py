"""OCT codec workflows on a generated oct-kermany look-alike: the content-keyed canvas cache, tiny runs of codec
training, the study, the lesion-Dice study and the speed benchmark (keys and value ranges, CompressAI example-test
style), the byte-budget baselines, and the lesion command line (evaluates by default, never overwrites a model)."""

from __future__ import annotations

import json
import os
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medsecure_transforms.codecs.baselines import jpeg_encode, jpeg_to_size, openjpeg_encode, openjpeg_to_size
from medsecure_transforms.codecs.oct import LearnedOCTCodec
from medsecure_transforms.codecs.oct.training import codec_channels, train_codec
from medsecure_transforms.evaluation.oct_benchmark import bench_oct_codec
from medsecure_transforms.evaluation.oct_data import CanvasParams, load_canvases, load_lesion_canvases
from medsecure_transforms.evaluation.oct_lesion import (
    lesion_dice_study,
    load_lesion_net,
    save_lesion_net,
    train_lesion_net,
)
from medsecure_transforms.evaluation.oct_study import oct_study

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "bundles" / "oct_codec" / "models"
SPLITS = {"training": 2, "validation": 1, "test": 2}


def bscan(seed: int, depth: int = 200, lateral: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """RGB B-scan ``[depth, lateral, 3]`` (dark background, speckled retina band, bright Bruch's membrane) and a
    lesion mask ``[depth, lateral]`` (class 2 inside the band)."""
    rng = np.random.default_rng(seed)
    img = 10 + 10 * rng.random((depth, lateral))
    top = 60 + seed % 7
    img[top : top + 60] = 110 + 60 * rng.random((60, lateral))
    img[top + 56 : top + 60] = 230
    mask = np.zeros((depth, lateral), np.uint8)
    mask[top + 20 : top + 35, 100 + 10 * seed : 140 + 10 * seed] = 2
    gray = np.clip(img, 0, 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2), mask


def write_dataset(root: Path, seed: int = 0) -> Path:
    """An ``oct-kermany`` folder under ``root`` with :data:`SPLITS` entries; returns ``root``."""
    folder = root / "oct-kermany"
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(exist_ok=True)
    meta, k = {}, seed
    for split, n in SPLITS.items():
        meta[split] = []
        for _ in range(n):
            img, mask = bscan(k)
            Image.fromarray(img).save(folder / "images" / f"b{k}.png")
            Image.fromarray(mask).save(folder / "masks" / f"b{k}.png")
            meta[split].append({"image": f"images/b{k}.png", "label": f"masks/b{k}.png"})
            k += 1
    (folder / "dataset.json").write_text(json.dumps(meta))
    return root


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("oct_data"))


@pytest.fixture(scope="module")
def test_canvases(fake_root, tmp_path_factory) -> list[np.ndarray]:
    return load_canvases("test", True, tmp_path_factory.mktemp("cache"), fake_root, progress=False)


# --- canvas cache ------------------------------------------------------------------------------------------------


def test_canvases_and_masks(fake_root, tmp_path):
    canvases = load_canvases("test", True, tmp_path, fake_root, progress=False)
    images, masks = load_lesion_canvases("test", tmp_path, fake_root, progress=False)
    assert [c.shape for c in canvases] == [(512, 256)] * SPLITS["test"]
    assert all(c.dtype == np.float32 and 0 <= c.min() and c.max() <= 1 for c in canvases)
    assert all(np.array_equal(a, b) for a, b in zip(canvases, images, strict=True))
    assert all(m.dtype == np.uint8 and set(np.unique(m)) <= {0, 1} and m.any() for m in masks)
    raw = load_canvases("test", False, tmp_path, fake_root, progress=False)
    assert [c.shape for c in raw] == [(512, 256)] * SPLITS["test"]


def test_cache_hit_returns_same_arrays(fake_root, tmp_path):
    first = load_canvases("test", True, tmp_path, fake_root, progress=False)
    files = sorted(tmp_path.glob("*.npz"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    again = load_canvases("test", True, tmp_path, fake_root, progress=False)
    assert files[0].stat().st_mtime_ns == stamp
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))


def test_cache_keyed_by_content(tmp_path):
    """Other data under the same split name (changed files, another root, fewer files) never returns stale
    canvases; the old cache, named by split only, returned the first data's canvases for all of these."""
    cache = tmp_path / "cache"
    root_a = write_dataset(tmp_path / "a", seed=0)
    root_b = write_dataset(tmp_path / "b", seed=10)  # same file layout, other pixels
    a = load_canvases("test", False, cache, root_a, progress=False)
    b = load_canvases("test", False, cache, root_b, progress=False)
    fresh_b = load_canvases("test", False, tmp_path / "fresh", root_b, progress=False)
    assert not np.array_equal(a[0], b[0])
    assert all(np.array_equal(x, y) for x, y in zip(b, fresh_b, strict=True))
    assert len(load_canvases("test", False, cache, root_a, limit=1, progress=False)) == 1
    # rewrite one file of root a in place: its canvases must be recomputed
    first = root_a / "oct-kermany" / "images" / "b3.png"
    img, _ = bscan(20)
    Image.fromarray(img).save(first)
    os.utime(first, ns=(1, 1))  # even with an older modification time
    changed = load_canvases("test", False, cache, root_a, progress=False)
    assert not np.array_equal(changed[0], a[0])
    assert np.array_equal(changed[1], a[1])
    assert len(list(cache.glob("*.npz"))) == 4


def test_cache_key_covers_parameters(fake_root, tmp_path):
    from medsecure_transforms.data import dataset_dir, load_datalist
    from medsecure_transforms.evaluation.oct_data import cache_key

    items = load_datalist("oct-kermany", "test", fake_root)
    folder = dataset_dir("oct-kermany", fake_root)
    base = cache_key("test", items, ("image",), CanvasParams(), folder)
    assert base != cache_key("test", items, ("image",), CanvasParams(h_factor=2.0), folder)
    assert base != cache_key("test", items, ("image",), CanvasParams(preprocess=False), folder)
    assert base != cache_key("test", items, ("image", "label"), CanvasParams(), folder)
    assert base != cache_key("test", items[:1], ("image",), CanvasParams(), folder)
    assert {"folder", "files", "params", "code_sha256", "cache_version"} <= set(base)


# --- baselines at a byte budget -------------------------------------------------------------------------------------


def test_baselines_largest_within_budget(test_canvases):
    img8 = np.clip(np.round(test_canvases[0] * 255), 0, 255).astype(np.uint8)
    budget = 4000
    quality, blob = jpeg_to_size(img8, budget)
    assert len(blob) <= budget < len(jpeg_encode(img8, quality + 1)) and blob == jpeg_encode(img8, quality)
    psnr_db, stream = openjpeg_to_size(img8, budget)
    assert len(stream) <= budget < len(openjpeg_encode(img8, psnr_db + 85 / 2**14, codestream=True))  # next grid step
    assert stream[:2] == b"\xff\x4f"  # a bare J2K codestream (SOC marker), not a JP2 file
    assert jpeg_to_size(img8, 10) == (1, jpeg_encode(img8, 1))  # nothing fits: the lowest quality


# --- tiny runs ------------------------------------------------------------------------------------------------------


def test_train_codec_tiny(fake_root, tmp_path):
    train = load_canvases("training", True, tmp_path, fake_root, progress=False)
    val = load_canvases("validation", True, tmp_path, fake_root, progress=False)
    out = tmp_path / "model.pt"
    summary = train_codec(train, val, out, ratio=80, steps=2, batch=2, val_every=1, command="test", progress=False)
    expected = {"command", "init", "ratio_target", "latent_channels", "features", "preprocessing", "best", "history"}
    assert expected <= set(summary)
    assert [h["step"] for h in summary["history"]] == [1, 2]
    assert summary["latent_channels"] == list(codec_channels(80)) and summary["val_measured_ratio"] > 10
    assert 0 < summary["best"]["ms_ssim"] <= 1 and summary["best"]["step"] in (1, 2)
    assert json.loads(out.with_suffix(".json").read_text()) == json.loads(json.dumps(summary))
    blob = torch.load(out, weights_only=True)
    assert (blob["format"], blob["version"]) == (LearnedOCTCodec.FORMAT, LearnedOCTCodec.VERSION)
    assert all(v.dtype == torch.float16 for v in blob["state"].values() if v.is_floating_point())
    codec = LearnedOCTCodec.load(out)
    assert codec.decompress(codec.compress(val[0])).shape == val[0].shape
    assert codec_channels(40, skips=False) == (72, 0, 0, 0)


def test_oct_study_tiny(tmp_path, test_canvases):
    calls = []

    def canvases(preprocess: bool) -> list[np.ndarray]:
        calls.append(preprocess)
        return test_canvases[:1]

    results = oct_study(canvases, MODELS, tmp_path, ratios=(40, 160), progress=False)
    assert calls == [True, False]
    assert {"machine", "test_images", "ratios", "ablation_r40"} <= set(results) and results["test_images"] == 1
    r40 = results["ratios"]["40"]
    assert r40["model"] == "model_r40.pt" and set(r40) >= {"ours", "jpeg", "jpeg2000", "nominal_ratio_eq1"}
    for name in ("ours", "jpeg", "jpeg2000"):
        e = r40[name]
        assert 0 < e["ms_ssim"] <= 1 and e["psnr"] > 10 and e["images"] == 1
    assert 25 < r40["ours"]["measured_ratio"] < 80
    assert r40["jpeg"]["bytes_total"] <= r40["ours"]["bytes_total"] >= r40["jpeg2000"]["bytes_total"]
    nominal = results["ratios"]["160"]
    assert nominal["model"] is None and "ours" not in nominal and nominal["jpeg2000"]["measured_ratio"] >= 160
    ablation = results["ablation_r40"]
    assert ablation["neither"] is None and ablation["skips only (no preprocessing)"]["preprocessing"] is False
    assert ablation["preprocessing only (no skips)"]["latent_channels"] == [72, 0, 0, 0]
    for name in ("study.json", "study.md", "ms_ssim_vs_ratio.png", "panel_r40.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert json.loads((tmp_path / "study.json").read_text()) == results
    assert "| 40 | model_r40.pt |" in (tmp_path / "study.md").read_text()


def test_lesion_study_tiny(fake_root, tmp_path):
    images, masks = load_lesion_canvases("training", tmp_path, fake_root, progress=False)
    net, record = train_lesion_net(images, masks, images, masks, steps=2, batch=2, crop=64, val_every=1)
    assert [h["step"] for h in record["history"]] == [1, 2] and 0 <= record["best_val_pooled_dice"] <= 1
    save_lesion_net(tmp_path / "seg.pt", net, record)
    loaded, loaded_record = load_lesion_net(tmp_path / "seg.pt")
    assert loaded_record == json.loads(json.dumps(record))
    x = torch.from_numpy(images[0])[None, None]
    assert torch.equal(loaded(x), net(x))
    test_images, test_masks = load_lesion_canvases("test", tmp_path, fake_root, progress=False)
    results = lesion_dice_study(loaded, loaded_record, test_images, test_masks, MODELS, tmp_path, ratios=(40,))
    assert results["test_images"] == 2 and results["test_images_with_lesion"] == 2
    assert set(results["original"]) == {"pooled_dice", "mean_dice_lesion_images"}
    assert set(results["ratios"]["40"]) == {"ours", "jpeg", "jpeg2000"}
    for e in results["ratios"]["40"].values():
        assert 25 < e["measured_ratio"] < 100 and 0 <= e["pooled_dice"] <= 1
    assert json.loads((tmp_path / "lesion_dice.json").read_text()) == json.loads(json.dumps(results))
    assert "| 40 | ours |" in (tmp_path / "lesion_dice.md").read_text()


def test_bench_tiny(test_canvases):
    result = bench_oct_codec(MODELS / "model_r40.pt", test_canvases[:1], repeats=1)
    assert {"machine", "tile", "tiles", "repeats", "model", "rows"} <= set(result) and result["tiles"] == 1
    rows = result["rows"]
    assert {"learned (cpu)", "jpeg2000 (openjpeg)", "jpeg (pillow)"} <= set(rows)
    assert rows["jpeg2000 (openjpeg)"]["vs_jpeg2000"] == 1.0
    assert all(r["ms"] > 0 and r["ratio"] >= rows["learned (cpu)"]["ratio"] for r in rows.values())


# --- lesion command line --------------------------------------------------------------------------------------------


def lesion_cli(*args: str) -> int:
    """``main`` of ``scripts/oct_lesion_dice.py`` run in this process with ``args``."""
    return runpy.run_path(str(REPO / "scripts" / "oct_lesion_dice.py"))["main"](list(args))


def test_lesion_cli_refuses_existing_model(tmp_path, capsys):
    model = tmp_path / "seg.pt"
    model.write_bytes(b"keep me")
    with pytest.raises(SystemExit) as stop:
        lesion_cli("--train", "--model", str(model), "--out", str(tmp_path))
    assert stop.value.code == 2 and "--overwrite" in capsys.readouterr().err
    assert model.read_bytes() == b"keep me"


def test_lesion_cli_evaluates_committed_model(fake_root, tmp_path):
    """Without --train the committed network is read, not retrained or rewritten (the old script always trained
    2000 steps and overwrote bundles/oct_codec/models/lesion_seg.pt)."""
    committed = MODELS / "lesion_seg.pt"
    before = committed.read_bytes(), committed.stat().st_mtime_ns
    args = ("--data-root", str(fake_root), "--cache-dir", str(tmp_path), "--limit", "1", "--out", str(tmp_path))
    assert lesion_cli(*args) == 0
    assert (committed.read_bytes(), committed.stat().st_mtime_ns) == before
    results = json.loads((tmp_path / "lesion_dice.json").read_text())
    assert results["lesion_seg"] == load_lesion_net(committed)[1] and results["test_images"] == 1
    assert set(results["ratios"]) == {"10", "20", "40", "80"}


# --- bundle configs -------------------------------------------------------------------------------------------------


def run_bundle(configs: list[str], **overrides) -> object:
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(REPO / "bundles" / "oct_codec" / "configs" / name) for name in configs])
    parser.update({"bundle_root": str(REPO / "bundles" / "oct_codec"), **overrides})
    return parser.get_parsed_content("run")


def test_bundle_train_config_calls_package(fake_root, tmp_path):
    out = tmp_path / "model_r80.pt"
    run_bundle(
        ["train.json", "train_r80.json"],
        steps=2,
        batch=2,
        data_root=str(fake_root),
        cache_dir=str(tmp_path),
        model_path=str(out),
    )
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["ratio_target"] == 80 and [h["step"] for h in summary["history"]] == [2]
    assert LearnedOCTCodec.load(out).latent_channels == codec_channels(80)


def test_bundle_evaluate_config_calls_package(fake_root, tmp_path):
    run_bundle(["evaluate.json"], limit=1, data_root=str(fake_root), cache_dir=str(tmp_path), output_dir=str(tmp_path))
    results = json.loads((tmp_path / "study.json").read_text())
    assert results["test_images"] == 1 and set(results["ratios"]) == {"10", "20", "40", "80"}
