"""FR reproduction study: a tiny run on two Drishti-GS1 test images checked for its keys and values."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
from helpers import require_dataset

from medsecure_transforms.attacks import asma_preset
from medsecure_transforms.bundle import bundle_dir
from medsecure_transforms.evaluation.fr_reproduction import (
    AdversarialCache,
    fr_markdown,
    paper_defenses,
    reproduce_fr,
)

COLUMNS = ["none", "JPEG(85)", "JPEG(50)", "FR(20,10,60)", "FR(30,5,80)", "FRfixed(30,5,80)", "FR(30,5,80)-YCbCr"]


def test_paper_defenses_columns():
    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    defenses = paper_defenses(images, "generated")
    assert list(defenses) == COLUMNS and defenses["none"] is None
    assert list(paper_defenses(images[:, :1], "generated")) == COLUMNS[:-1]  # no YCbCr variant for one channel
    out = defenses["FR(30,5,80)"](images)
    assert out.shape == images.shape


def test_tiny_reproduction(data_root, tmp_path):
    require_dataset(data_root, "fundus-drishti-gs1")
    if not (bundle_dir("fundus_disc_seg") / "models" / "model.pt").is_file():
        pytest.skip("fundus_disc_seg has no trained weights")
    torch.set_num_threads(1)
    attack = asma_preset("small_steps", max_iter=2)
    kwargs = dict(limit=2, cdr=True, bpda_samples=1, bpda_defenses=["JPEG(85)"], bpda_pgd_steps=1)
    report = reproduce_fr("fundus_disc_seg", [1, 2], attack, tmp_path / "out", cache_dir=tmp_path / "cache", **kwargs)

    saved = json.loads((tmp_path / "out" / "fr_reproduction.json").read_text())
    assert saved == json.loads(json.dumps(report))
    assert (tmp_path / "out" / "fr_reproduction.md").read_text() == fr_markdown(report)
    assert (report["samples"], report["split"], report["classes"]) == (2, "test", [1, 2])
    assert report["attack"]["max_iter"] == 2 and report["attack"]["target"] == "OtherSampleMask(seed=0)"
    assert list(report["iou"]) == COLUMNS
    for scores in report["iou"].values():
        assert all(0 <= v <= 1 for k in ("benign_iou", "adversarial_iou") for v in scores[k])
        assert len(scores["benign_iou"]) == 2
    assert report["linf_mean"] <= 8 / 255 + 1e-6
    assert report["iou"]["none"]["benign_iou"][0] > 0.3
    screening = report["screening"]
    assert 0 <= screening["threshold_from_training"] <= 1
    assert set(screening) == {"threshold_from_training", "training"} | {
        f"{c}/{n}" for c in ("benign", "adversarial") for n in COLUMNS
    }
    assert screening["benign/none"]["positives"] + screening["benign/none"]["negatives"] == 2
    bpda = report["bpda"]["JPEG(85)"]
    assert bpda["samples"] == 1 and bpda["pgd"]["steps"] == 1
    assert bpda["nonadaptive_adversarial_iou"] == report["iou"]["JPEG(85)"]["adversarial_iou"][:1]
    assert all(math.isfinite(bpda[k][0]) for k in ("benign_iou", "bpda_adversarial_iou", "bpda_pgd_adversarial_iou"))
    # a rerun takes the adversarial examples from the cache: same numbers
    again = reproduce_fr("fundus_disc_seg", [1, 2], attack, tmp_path / "again", cache_dir=tmp_path / "cache", **kwargs)
    assert (
        again["iou"] == report["iou"]
        and again["bpda"]["JPEG(85)"]["bpda_adversarial_iou"] == bpda["bpda_adversarial_iou"]
    )


class _Interrupting:
    """A stand-in attack: adds 0.01 to the images; raises on call number ``fail_at`` (as a kill would)."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.calls, self.fail_at = 0, fail_at

    def params(self) -> dict:
        return {"name": "shift", "delta": 0.01}

    def __call__(self, model, images, targets):
        self.calls += 1
        if self.calls == self.fail_at:
            raise KeyboardInterrupt
        return type("Result", (), {"adversarial": images + 0.01})()


def test_interrupted_crafting_resumes_after_the_last_whole_batch(tmp_path, monkeypatch):
    monkeypatch.setattr("medsecure_transforms.evaluation.fr_reproduction.weights_digest", lambda bundle: "w")
    model = torch.nn.Conv2d(3, 2, 1)
    images, targets = torch.rand(5, 3, 8, 8), torch.zeros(5, 1, 8, 8, dtype=torch.long)
    cache = AdversarialCache(tmp_path, "bundle", seed=0, batch_size=2)
    with pytest.raises(KeyboardInterrupt):
        cache(model, images, targets, _Interrupting(fail_at=3))  # batches 1 and 2 done, killed in batch 3
    resumed = _Interrupting()
    adversarial, _ = cache(model, images, targets, resumed)
    assert resumed.calls == 1  # only the batch in progress is crafted again
    torch.testing.assert_close(adversarial, images + 0.01)
    other = _Interrupting()
    cache(model, images.flip(0), targets, other)  # other images: nothing stale is read
    assert other.calls == 3


def test_calibration_data_from_another_root(data_root, tmp_path):
    """A test-only folder is evaluated with band statistics and the CDR threshold from another folder."""
    source = require_dataset(data_root, "fundus-drishti-gs1")
    if not (bundle_dir("fundus_disc_seg") / "models" / "model.pt").is_file():
        pytest.skip("fundus_disc_seg has no trained weights")
    meta = json.loads((source / "dataset.json").read_text())
    for name, split in (("test_only", "test"), ("train_only", "training")):
        folder = tmp_path / name / "fundus-drishti-gs1"
        entries = meta[split][:2]
        for entry in entries:
            for key in ("image", "label", "disc", "cup"):
                if key in entry:
                    (folder / entry[key]).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(source / entry[key], folder / entry[key])
        (folder / "dataset.json").write_text(
            json.dumps({**meta, "training": [], "validation": [], "test": []} | {split: entries})
        )
    torch.set_num_threads(1)
    attack = asma_preset("small_steps", max_iter=1)
    kwargs = dict(limit=2, cdr=True, bpda_samples=0, cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match="split 'training' has no cases"):
        reproduce_fr("fundus_disc_seg", [1, 2], attack, tmp_path / "out", data_root=tmp_path / "test_only", **kwargs)
    report = reproduce_fr(
        "fundus_disc_seg",
        [1, 2],
        attack,
        tmp_path / "out",
        data_root=tmp_path / "test_only",
        calibration_data_root=tmp_path / "train_only",
        **kwargs,
    )
    assert report["samples"] == 2 and report["calibration_split"] == "training"
    assert report["defenses"]["FR(30,5,80)"]["table"]["provenance"]["dataset"] == "fundus_disc_seg:training"
