"""FR study helpers (CDR screening, grid search, Pareto plot) on tiny hand-made models, and the bundle overlays."""

from __future__ import annotations

import tempfile
import unittest
from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigParser
from parameterized import parameterized

from medsecure_transforms import overlays
from medsecure_transforms.defenses import BlockDCTQuantizer
from medsecure_transforms.evaluation.fr_study import (
    grid_search,
    save_pareto_plot,
    screening,
    vertical_cdr,
    youden_threshold,
)
from medsecure_transforms.evaluation.metrics import predict_classes
from medsecure_transforms.transforms import FrequencyRefined

REPO = Path(__file__).resolve().parents[1]


class Threshold(torch.nn.Module):
    """Two-class 'network': foreground where the mean over channels exceeds 0.5 (logits [B, 2, H, W])."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        m = x.mean(1, keepdim=True) - 0.5
        return torch.cat([-m, m], 1)


class TestScreening(unittest.TestCase):
    def test_vertical_cdr_by_hand(self):
        pred = torch.zeros(2, 1, 16, 16, dtype=torch.long)
        pred[0, 0, 2:12, 3:9] = 1  # disc spans rows 2..11 (10 rows)
        pred[0, 0, 5:9, 4:6] = 2  # cup spans rows 5..8 (4 rows)
        np.testing.assert_allclose(vertical_cdr(pred), [0.4, 0.0])

    def test_youden_and_screening(self):
        score = np.array([0.2, 0.3, 0.5, 0.6, 0.7, 0.8])
        positive = np.array([False, False, False, True, True, True])
        t = youden_threshold(score, positive)
        self.assertEqual(t, 0.6)
        result = screening(score, positive, t)
        self.assertEqual((result["sensitivity"], result["specificity"]), (1.0, 1.0))
        self.assertEqual(screening(score, positive, 0.75)["sensitivity"], 1 / 3)


class TestGridSearch(unittest.TestCase):
    def test_picks_best_adversarial_within_benign_budget(self):
        rng = np.random.default_rng(0)
        labels = torch.zeros(3, 1, 16, 16, dtype=torch.long)
        labels[:, :, 4:12, 4:12] = 1
        images = labels.float().repeat(1, 3, 1, 1) * 0.6 + 0.2  # fg 0.8, bg 0.2
        noise = torch.tensor(rng.choice([-1.0, 1.0], size=(3, 3, 16, 16)), dtype=torch.float32) * 0.35
        adversarial = (images + noise).clamp(0, 1)
        model = Threshold()
        std = np.arange(64, dtype=float)[::-1].reshape(8, 8)
        grid = {"qs1": [1, 400], "qs2": [1], "qs3": [1, 400]}
        search = grid_search(model, images, adversarial, labels, [1], std, grid, 0.01, jpeg_qualities=(85,))
        self.assertEqual(len(search["fr"]), 4)
        self.assertEqual(search["reference"]["benign_iou"], 1.0)
        # the best admissible table must be at least as good against the noise as the finest one
        finest = next(r for r in search["fr"] if r["qs"] == [1, 1, 1])
        self.assertGreaterEqual(search["best"]["adversarial_iou"], finest["adversarial_iou"])
        self.assertGreaterEqual(search["best"]["benign_iou"], 0.99)
        self.assertEqual(search["table"].provenance["selection"]["chosen"]["qs"], search["best"]["qs"])
        with tempfile.TemporaryDirectory() as tmp:
            save_pareto_plot(search, Path(tmp) / "p.png", "toy")
            self.assertGreater((Path(tmp) / "p.png").stat().st_size, 1000)

    def test_predict_applies_defense(self):
        x = torch.full((2, 3, 8, 8), 0.52)
        flatten = BlockDCTQuantizer(np.full((8, 8), 1e6))  # everything -> mid grey 128/255 > 0.5
        self.assertTrue(bool((predict_classes(Threshold(), x, flatten) == 1).all()))


class TestBundleOverlays(unittest.TestCase):
    @parameterized.expand([("fundus_disc_seg",), ("skin_lesion_seg",)])
    def test_overlay_appends_frequency_refine(self, bundle):
        configs = REPO / "bundles" / bundle / "configs"
        if not (configs / "inference.json").is_file():
            self.skipTest(f"bundle {bundle} has no inference.json")
        parser = ConfigParser()
        parser.read_config([str(configs / "inference.json"), str(overlays.path("defend_fr"))])
        parser.read_meta(str(configs / "metadata.json"))
        parser["bundle_root"] = str(configs.parent)
        parser["defense_table"] = str(configs.parent / "models" / "fr_table.json")
        parser["data_root"] = "/nonexistent"  # the preprocessing itself must not need data to be built
        steps = parser.get_parsed_content("preprocessing").transforms
        self.assertIsInstance(steps[-1], FrequencyRefined)
        self.assertEqual(steps[-1].transform.quantizer.intensity_range, (0.0, 1.0))
        self.assertTrue(steps[-1].transform.quantizer.name.startswith("FR("))


if __name__ == "__main__":
    unittest.main()
