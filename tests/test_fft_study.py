"""FFTDetect study (evaluation/fft_study.py, roc.py, fft_guard.py) and guard training (defenses/detector_training.py):
ROC/AUC against the Mann-Whitney U statistic, tiny study runs on generated images (keys, values, cache, files),
a tiny guard training run, and two real skin-lesion images against the numbers of the pre-refactor script."""

from __future__ import annotations

import json
import re
import tempfile
import unittest
from pathlib import Path

import numpy as np
import torch
from helpers import require_dataset
from scipy.stats import mannwhitneyu

from medsecure_transforms.defenses import FFTDetector, Reformer
from medsecure_transforms.defenses.detector_training import GuardRecipe, build_guard_model, train_guard_model
from medsecure_transforms.evaluation.fft_guard import GUARD_NETWORK_KWARGS, train_guard_suite
from medsecure_transforms.evaluation.fft_study import (
    COMBINATIONS,
    FFTStudySettings,
    fft_study,
    pick_slices,
    run_bundle_study,
    write_study,
)
from medsecure_transforms.evaluation.metrics import mean_foreground_dice, predict_classes
from medsecure_transforms.evaluation.roc import roc_auc, roc_points

REPO = Path(__file__).resolve().parents[1]
TINY = FFTStudySettings(dag_iter=2, asma_iter=2, pgd_steps=2, adaptive_steps=2)
ATTACKS = ["DAG", "ASMA", "PGD"]


class Threshold(torch.nn.Module):
    """Two-class 'network': foreground where the image exceeds 0.5 (logits ``[B, 2, H, W]``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = 8 * (x.mean(1, keepdim=True) - 0.5)
        return torch.cat([-m, m], 1)


def squares(n: int = 4, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``[n, 1, size, size]``: a bright square (label 1) at a different place on a darker noisy background,
    both within 0.01 of the 0.5 decision level (so that tiny attacks flip pixels)."""
    g = torch.Generator().manual_seed(0)
    images = 0.49 + 0.005 * torch.rand(n, 1, size, size, generator=g)
    labels = torch.zeros(n, 1, size, size, dtype=torch.long)
    for i in range(n):
        labels[i, 0, 2 + i : 10 + i, 3 : 9 + i] = 1
    return images.masked_fill(labels.bool(), 0.505), labels


class TestROC(unittest.TestCase):
    def test_auc_is_mann_whitney_u(self):
        rng = np.random.default_rng(0)
        for n_clean, n_adv in ((5, 7), (30, 30), (1, 4)):
            clean = rng.integers(0, 6, n_clean).astype(float)  # ties within and across the classes
            adv = rng.integers(2, 8, n_adv).astype(float)
            u = mannwhitneyu(adv, clean).statistic
            self.assertAlmostEqual(roc_auc(torch.as_tensor(clean), torch.as_tensor(adv)), u / (n_clean * n_adv))
            fpr, tpr = roc_points(clean, adv)
            self.assertEqual((fpr[0], tpr[0], fpr[-1], tpr[-1]), (0.0, 0.0, 1.0, 1.0))
            self.assertTrue(np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0))
            self.assertAlmostEqual(float(np.trapezoid(tpr, fpr)), u / (n_clean * n_adv))

    def test_separated_and_reversed(self):
        self.assertEqual(roc_auc(np.array([0.1, 0.2]), np.array([0.3, 0.4, 0.5])), 1.0)
        self.assertEqual(roc_auc(np.array([0.3, 0.4]), np.array([0.1, 0.2])), 0.0)
        self.assertEqual(
            roc_points(np.array([0.1, 0.2]), np.array([0.3, 0.4])),
            ([0.0, 0.0, 0.0, 0.5, 1.0], [0.0, 0.5, 1.0, 1.0, 1.0]),
        )


class TestStudy(unittest.TestCase):
    def setUp(self):
        torch.manual_seed(0)
        self.images, self.labels = squares()
        self.network = Threshold()
        small = {"channels": [4, 8]}
        # threshold 0: every input flagged; 1e6: none
        self.detectors = {
            "autoencoder1": FFTDetector("autoencoder1", 1, "spatial", threshold=0.0),
            "unet_shifted_frequency": FFTDetector("unet", 1, "shifted_frequency", network_kwargs=small, threshold=1e6),
        }
        self.reformers = {
            "autoencoder1": Reformer("autoencoder1", 1),
            "unet": Reformer("unet", 1, network_kwargs=small),
        }

    def test_tables(self):
        results, scores = fft_study(self.network, self.images, self.labels, self.detectors, self.reformers, TINY)
        self.assertEqual(results["num_classes"], 2)
        self.assertEqual(results["dice_clean"], 1.0)  # the threshold network segments the squares exactly
        self.assertEqual(list(results["dice_adversarial"]), ATTACKS)
        self.assertLess(results["dice_adversarial"]["PGD"], 1.0)
        self.assertLessEqual(results["attacks"]["PGD"]["mean_linf"], TINY.pgd_eps + 1e-6)
        self.assertLessEqual(results["attacks"]["ASMA"]["mean_linf"], TINY.asma_linf + 1e-6)
        self.assertEqual(results["attacks"]["DAG"]["params"]["max_iter"], 2)
        self.assertEqual(results["detector_thresholds"], {"autoencoder1": 0.0, "unet_shifted_frequency": 1e6})
        for d, row in results["table1_auc"].items():
            self.assertEqual(list(row), ATTACKS)
            for a in ATTACKS:
                self.assertEqual(scores[d][a].shape, (4,))
                self.assertEqual(row[a], roc_auc(scores[d]["clean"], scores[d][a]))

        table2 = {row["combination"]: row for row in results["table2"]}
        self.assertEqual([(r["detector"], r["reformer"]) for r in results["table2"]], list(COMBINATIONS))
        self.assertEqual(table2[2]["missing"], ["autoencoder2"])
        self.assertEqual(table2[9]["missing"], ["unet_frequency"])
        flag_all = table2[5]  # autoencoder1 detector (flags everything) + UNet reformer: every input counts as clean
        self.assertEqual((flag_all["clean_rejected"], flag_all["dice_clean_pipeline"]), (1.0, 1.0))
        for a in ATTACKS:
            self.assertEqual((flag_all[f"{a}_rejected"], flag_all[f"{a}_dice_accepted"]), (1.0, None))
            self.assertEqual(flag_all[f"{a}_dice_recovered"], 1.0)
        accept_all = table2[13]  # UNet detector (flags nothing) + UNet reformer: the reformed Dice
        reformed_clean = mean_foreground_dice(
            predict_classes(self.network, self.reformers["unet"](self.images)), self.labels, 2
        )
        self.assertAlmostEqual(accept_all["dice_clean_pipeline"], float(reformed_clean.nanmean()), places=6)
        for a in ATTACKS:
            self.assertEqual(accept_all[f"{a}_rejected"], 0.0)
            self.assertEqual(accept_all[f"{a}_dice_accepted"], accept_all[f"{a}_dice_recovered"])

        adaptive = results["adaptive"]
        self.assertEqual(
            (adaptive["detector"], adaptive["steps"], adaptive["detected_adaptive"]), ("unet_shifted_frequency", 2, 0.0)
        )
        self.assertEqual(adaptive["auc_plain_pgd"], results["table1_auc"]["unet_shifted_frequency"]["PGD"])
        self.assertTrue(0.0 <= adaptive["auc_adaptive"] <= 1.0 and 0.0 <= adaptive["dice_adaptive_undefended"] <= 1.0)

    def test_cache_and_files(self):
        with tempfile.TemporaryDirectory() as tmp:
            cache = Path(tmp) / "cache"
            args = (self.network, self.images, self.labels, self.detectors, self.reformers, TINY, cache, ["b", 4])
            first, _ = fft_study(*args)
            names = sorted(p.name for p in cache.iterdir())
            self.assertEqual([re.sub(r"_[0-9a-f]{12}\.pt$", "", n) for n in names], ["ASMA", "DAG", "PGD", "adaptive"])
            stamps = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
            second, scores = fft_study(*args)
            self.assertEqual(first, second)
            self.assertEqual(stamps, {p.name: p.stat().st_mtime_ns for p in cache.iterdir()})  # read, not rewritten
            out = Path(tmp) / "out"
            write_study(out, {"bundle": "b", "slices": 4, **second, "seconds": 1.0, "machine": "m", "args": {}}, scores)
            self.assertEqual(json.loads((out / "results.json").read_text())["table1_auc"], second["table1_auc"])
            tables = (out / "tables.md").read_text()
            self.assertIn("| unet_shifted_frequency | ", tables)
            self.assertIn("| 2 | autoencoder1 | autoencoder2 | not trained: autoencoder2 |", tables)
            self.assertGreater((out / "roc.png").stat().st_size, 0)
            self.assertGreater((out / "dice_combinations.png").stat().st_size, 0)

    def test_pick_slices(self):
        images, labels = squares(6)
        labels[1] = 0
        picked, picked_labels = pick_slices(images, labels, 3)
        torch.testing.assert_close(picked, images[[0, 3, 5]])
        torch.testing.assert_close(picked_labels, labels[[0, 3, 5]])
        with self.assertRaisesRegex(ValueError, "only 5 test slices"):
            pick_slices(images, labels, 6)


class TestGuardTraining(unittest.TestCase):
    def test_suite(self):
        g = torch.Generator().manual_seed(1)
        train, val = torch.rand(6, 1, 16, 16, generator=g), torch.rand(20, 1, 16, 16, generator=g)
        recipe = GuardRecipe(epochs=2, batch_size=4)
        jobs = (
            ("detector", "autoencoder1", "spatial"),
            ("reformer", "autoencoder2", "spatial"),
            ("detector", "unet", "frequency"),
        )
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            log = train_guard_suite(
                train,
                val,
                out,
                recipe,
                header={"bundle": "b"},
                only=["autoencoder1", "reformer_autoencoder2"],
                jobs=jobs,
            )
            self.assertEqual(
                sorted(p.name for p in out.iterdir()),
                ["detector_autoencoder1.pt", "reformer_autoencoder2.pt", "training.json"],
            )
            self.assertEqual(json.loads((out / "training.json").read_text()), log)
            self.assertEqual(list(log), ["setup", "detector_autoencoder1", "reformer_autoencoder2"])
            setup = log["setup"]
            self.assertEqual(
                (setup["bundle"], setup["train_slices"], setup["val_slices"], setup["shape"]), ("b", 6, 20, [1, 16, 16])
            )
            self.assertEqual((setup["epochs"], setup["t_fp"], setup["reformer_noise"]), (2, 0.05, 0.025))
            detector = FFTDetector.load(out / "detector_autoencoder1.pt")
            entry = log["detector_autoencoder1"]
            self.assertEqual(len(entry["loss_per_epoch"]), 2)
            self.assertEqual(detector.threshold, entry["threshold"])
            self.assertLessEqual(int((detector.score_batches(val) > detector.threshold).sum()), 1)  # 5 % of 20
            self.assertNotIn("threshold", log["reformer_autoencoder2"])
            self.assertEqual(Reformer.load(out / "reformer_autoencoder2.pt").training["noise_std"], 0.025)

    def test_seeded_and_checked(self):
        train = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(2))
        recipe = GuardRecipe(epochs=1, batch_size=2, seed=3)
        kwargs = GUARD_NETWORK_KWARGS["unet"]
        losses = [
            train_guard_model(
                build_guard_model("reformer", "unet", 1, network_kwargs=kwargs, seed=3), train, train, recipe
            )["loss_per_epoch"]
            for _ in range(2)
        ]
        self.assertEqual(losses[0], losses[1])
        with self.assertRaisesRegex(ValueError, "kind must be one of"):
            build_guard_model("detectr", "unet", 1)


def test_two_skin_images_match_previous_script(data_root, tmp_path):
    """2 test images of skin_lesion_seg with the committed guard; expected values from the pre-refactor
    ``scripts/reproduce_fft_detect.py --bundle skin_lesion_seg --slices 2 --test-cases 3 --dag-iter 2 --asma-iter 2
    --pgd-steps 2 --adaptive-steps 2``."""
    require_dataset(data_root, "skin-ham10000")
    guard = REPO / "bundles/skin_lesion_seg/models/guard"
    r = run_bundle_study("skin_lesion_seg", guard, tmp_path, TINY, slices=2, test_cases=3, cache=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "dice_combinations.png",
        "results.json",
        "roc.png",
        "tables.md",
    ]
    assert (r["bundle"], r["slices"], r["num_classes"], len(r["table1_auc"])) == ("skin_lesion_seg", 2, 2, 8)
    assert not any("missing" in row for row in r["table2"])
    assert r["table1_auc"]["unet_shifted_frequency"] == {"DAG": 0.75, "ASMA": 0.75, "PGD": 1.0}
    assert r["adaptive"]["auc_adaptive"] == 0.25
    expected = {
        "dice_clean": (r["dice_clean"], 0.86212),
        "PGD": (r["dice_adversarial"]["PGD"], 0.75267),
        "combination 13 DAG": (r["table2"][12]["DAG_dice_recovered"], 0.85328),
        "adaptive": (r["adaptive"]["dice_adaptive_undefended"], 0.78955),
    }
    for name, (value, reference) in expected.items():
        assert abs(value - reference) < 1e-3, name


if __name__ == "__main__":
    unittest.main()
