"""Robustness engine on a tiny pixel-wise network and synthetic samples: scores, reports, MLflow, errors."""

from __future__ import annotations

import csv
import json
import tempfile
import unittest
from functools import partial
from pathlib import Path

import numpy as np
import torch
from monai.data import MetaTensor

from medsecure_transforms.attacks import ASMA, BPDA, PGD
from medsecure_transforms.attacks.targets import shift_mask
from medsecure_transforms.evaluation.reporting import aggregate
from medsecure_transforms.evaluation.robustness import evaluate_robustness


def threshold_model() -> torch.nn.Module:
    """Class 1 where the single channel exceeds 0.5 (logits 1 - 2x and 2x - 1)."""
    conv = torch.nn.Conv2d(1, 2, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([-2.0, 2.0]).view(2, 1, 1, 1))
        conv.bias.copy_(torch.tensor([1.0, -1.0]))
    return conv.eval()


def make_samples(count: int = 3, size: int = 16) -> list[dict]:
    """Squares of 0.8 on 0.2 background; the label is the square shifted by one voxel (imperfect benign Dice)."""
    samples = []
    for i in range(count):
        image = np.full((1, size, size), 0.2, dtype=np.float32)
        image[0, 3 + i : 9 + i, 4:10] = 0.8
        label = np.zeros((1, size, size), dtype=np.int64)
        label[0, 4 + i : 10 + i, 4:10] = 1
        samples.append(
            {
                "image": MetaTensor(image, meta={"filename_or_obj": f"/data/case_{i}.png"}),
                "label": torch.as_tensor(label),
            }
        )
    return samples


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


class TestEvaluateRobustness(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.samples = make_samples()
        cls.report = evaluate_robustness(
            threshold_model(),
            cls.samples,
            ASMA(max_iter=40, beta=0.05, tau=0.01, target_iou=0.9),
            Path(cls.tmp.name) / "run",
            defenses={"identity": lambda image: image.clone()},
            target_fn=partial(shift_mask, offset=(0, 4)),
            regions={"square": [1]},
            batch_size=2,
            progress=False,
            track=True,
            run_name="unit",
        )

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_benign_scores_match_numpy(self):
        for row, sample in zip(self.report["per_sample"], self.samples, strict=True):
            pred = sample["image"].numpy()[0] > 0.5
            label = sample["label"].numpy()[0] == 1
            self.assertAlmostEqual(row["benign/square/dice"], dice(pred, label), places=5)
            union = np.logical_or(pred, label).sum()
            self.assertAlmostEqual(row["benign/square/iou"], np.logical_and(pred, label).sum() / union, places=5)
        self.assertEqual([r["sample"] for r in self.report["per_sample"]], ["case_0.png", "case_1.png", "case_2.png"])

    def test_identity_defense_reproduces_undefended_scores(self):
        for row in self.report["per_sample"]:
            self.assertEqual(row["defended_benign.identity/square/dice"], row["benign/square/dice"])
            self.assertEqual(row["defended_adversarial.identity/square/iou"], row["adversarial/square/iou"])
            self.assertEqual(row["defended_adversarial.identity/target_iou"], row["attack/target_iou"])

    def test_attack_moves_prediction_to_target(self):
        agg = self.report["aggregate"]
        self.assertGreaterEqual(agg["attack/target_iou"]["mean"], 0.9)
        self.assertEqual(agg["attack/success_rate"]["mean"], 1.0)
        self.assertLess(agg["adversarial/square/dice"]["mean"], agg["benign/square/dice"]["mean"])

    def test_aggregate_is_mean_and_population_std(self):
        values = [r["adversarial/square/iou"] for r in self.report["per_sample"]]
        stats = self.report["aggregate"]["adversarial/square/iou"]
        self.assertAlmostEqual(stats["mean"], float(np.mean(values)), places=6)
        self.assertAlmostEqual(stats["std"], float(np.std(values)), places=6)
        self.assertEqual(stats["n"], 3)
        with_nan = aggregate([{"a": 1.0}, {"a": float("nan")}, {"a": 3.0}])
        self.assertEqual(with_nan["a"], {"mean": 2.0, "std": 1.0, "n": 2})

    def test_report_files(self):
        files = {k: Path(v) for k, v in self.report["files"].items()}
        payload = json.loads(files["json"].read_text())
        self.assertEqual(len(payload["per_sample"]), 3)
        self.assertEqual(payload["params"]["attack"]["name"], "ASMA")
        with files["csv"].open() as handle:
            self.assertEqual(len(list(csv.DictReader(handle))), 3)
        markdown = files["markdown"].read_text()
        for condition in ("| benign |", "| adversarial |", "| defended_adversarial.identity |"):
            self.assertIn(condition, markdown)
        self.assertEqual(files["panel"].read_bytes()[:8], b"\x89PNG\r\n\x1a\n")

    def test_mlflow_run_logged_in_local_store(self):
        import mlflow

        store = Path(self.tmp.name) / "run" / "mlruns.db"
        self.assertTrue(store.is_file())
        client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{store}")
        runs = client.search_runs([client.get_experiment_by_name("robustness").experiment_id])
        self.assertEqual(len(runs), 1)
        metric = runs[0].data.metrics["attack/target_iou/mean"]
        self.assertAlmostEqual(metric, self.report["aggregate"]["attack/target_iou"]["mean"], places=6)
        self.assertEqual(runs[0].data.params["attack.name"], "ASMA")
        artifacts = {a.path for a in client.list_artifacts(runs[0].info.run_id)}
        self.assertIn("robustness.md", artifacts)


class TestEngineInputs(unittest.TestCase):
    def test_untargeted_attack_scores_against_label(self):
        with tempfile.TemporaryDirectory() as tmp:
            report = evaluate_robustness(
                threshold_model(),
                make_samples(2),
                PGD(epsilon=0.35, step_size=0.1, steps=5),
                tmp,
                progress=False,
                track=False,
            )
        for row in report["per_sample"]:
            self.assertEqual(row["attack/target_iou"], row["adversarial/target_iou"])
            self.assertEqual(row["adversarial/class_1/iou"], row["attack/target_iou"])
            self.assertLess(row["adversarial/class_1/iou"], row["benign/class_1/iou"])
        self.assertNotIn("attack/success_rate", report["aggregate"])

    def test_adaptive_attack_model_is_attacked_and_model_scored(self):
        model = threshold_model()
        invert = lambda image: 1.0 - image  # noqa: E731  a defense the plain attack does not know about
        kwargs = {"defenses": {"invert": invert}, "progress": False, "track": False}
        attack = PGD(epsilon=0.35, step_size=0.1, steps=5, random_start=False)
        with tempfile.TemporaryDirectory() as tmp:
            plain = evaluate_robustness(model, make_samples(2), attack, tmp, **kwargs)["per_sample"]
            adaptive = evaluate_robustness(
                model,
                make_samples(2),
                attack,
                tmp,
                attack_model=BPDA(model, invert, approx=lambda x: 1.0 - x),
                **kwargs,
            )["per_sample"]
        for p, a in zip(plain, adaptive, strict=True):
            self.assertEqual(p["benign/class_1/iou"], a["benign/class_1/iou"])
            self.assertEqual(p["attack/target_iou"], p["adversarial/target_iou"])
            # the adaptive attacker differentiates the defended model: its target IoU is the defended prediction's
            self.assertEqual(a["attack/target_iou"], a["defended_adversarial.invert/target_iou"])
            self.assertLess(a["defended_adversarial.invert/class_1/iou"], p["defended_adversarial.invert/class_1/iou"])

    def test_targeted_attack_needs_target_fn(self):
        with tempfile.TemporaryDirectory() as tmp, self.assertRaisesRegex(ValueError, "target_fn"):
            evaluate_robustness(threshold_model(), make_samples(1), ASMA(), tmp, track=False)

    def test_bad_defense_name_and_empty_samples(self):
        with tempfile.TemporaryDirectory() as tmp:
            with self.assertRaisesRegex(ValueError, "defense name"):
                evaluate_robustness(threshold_model(), make_samples(1), PGD(), tmp, defenses={"a b": abs}, track=False)
            with self.assertRaisesRegex(ValueError, "empty"):
                evaluate_robustness(threshold_model(), [], PGD(), tmp, track=False, progress=False)

    def test_missing_label_key(self):
        with tempfile.TemporaryDirectory() as tmp, self.assertRaisesRegex(KeyError, "'label'"):
            evaluate_robustness(
                threshold_model(), [{"image": torch.zeros(1, 4, 4)}], PGD(), tmp, track=False, progress=False
            )


if __name__ == "__main__":
    unittest.main()
