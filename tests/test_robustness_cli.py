"""``medsecure evaluate``: argument parsing, builders, and one tiny end-to-end run on the fundus bundle when present."""

from __future__ import annotations

import argparse
import json
import tempfile
import unittest
from pathlib import Path

import torch
from parameterized import parameterized

from medsecure_transforms.attacks import ASMA, DAG, FGSM, PGD
from medsecure_transforms.cli import evaluate


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    evaluate.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["evaluate", "--bundle", "b", "--output-dir", "out", *argv])


class TestBuilders(unittest.TestCase):
    @parameterized.expand(
        [
            (
                "asma",
                ["--attack", "asma", "--max-iter", "7", "--max-linf", "0.03"],
                ASMA,
                {"max_iter": 7, "max_linf": 0.03},
            ),
            ("dag", ["--attack", "dag"], DAG, {"max_iter": 200}),
            (
                "pgd",
                ["--attack", "pgd", "--norm", "l2", "--epsilon", "0.5", "--targeted"],
                PGD,
                {"norm": "l2", "epsilon": 0.5, "targeted": True},
            ),
            ("fgsm", ["--attack", "fgsm"], FGSM, {"steps": 1, "targeted": False}),
        ]
    )
    def test_build_attack(self, _, argv, cls, expected):
        attack = evaluate.build_attack(parse(argv), (0.0, 1.0))
        self.assertIsInstance(attack, cls)
        for key, value in expected.items():
            self.assertEqual(attack.params()[key], value)

    def test_targets(self):
        labels = torch.zeros(1, 1, 8, 8, dtype=torch.long)
        labels[0, 0, 2:5, 2:5] = 1
        shifted = evaluate.build_target_fn(parse(["--target", "shift", "--shift", "0", "2"]), None)(labels)
        self.assertTrue(torch.equal(shifted[0, 0, 2:5, 4:7], torch.ones(3, 3, dtype=torch.long)))
        erased = evaluate.build_target_fn(parse(["--target", "erase"]), None)(labels)
        self.assertEqual(int(erased.sum()), 0)
        with self.assertRaisesRegex(ValueError, "--target shift needs --shift"):
            evaluate.build_target_fn(parse(["--target", "shift"]), None)

    def test_regions_and_defenses(self):
        self.assertEqual(dict(parse(["--regions", "disc=1,2", "cup=2"]).regions), {"disc": [1, 2], "cup": [2]})
        self.assertIsNone(parse([]).regions)
        with self.assertRaises(SystemExit):
            parse(["--regions", "disc=a"])
        config = (
            '{"_target_": "monai.transforms.ScaleIntensityRange", "a_min": 0, "a_max": 1, "b_min": 0, "b_max": 0.5}'
        )
        defenses = evaluate.build_defenses(parse(["--defense", f"half={config}"]).defense)
        torch.testing.assert_close(torch.as_tensor(defenses["half"](torch.ones(1, 2, 2))), torch.full((1, 2, 2), 0.5))
        for bad in ("nojson", "x={not json}", "x=[1]"):
            with self.assertRaises(SystemExit):
                parse(["--defense", bad])


class TestEndToEnd(unittest.TestCase):
    def test_fundus_bundle_one_image(self):
        from medsecure_transforms.bundle import bundle_dir
        from medsecure_transforms.data import find_data_root

        try:
            weights = bundle_dir("fundus_disc_seg") / "models" / "model.pt"
        except FileNotFoundError:
            self.skipTest("bundle fundus_disc_seg not present")
        if not weights.is_file():
            self.skipTest("fundus_disc_seg has no trained weights yet (models/model.pt)")
        if find_data_root() is None or not (find_data_root() / "fundus-drishti-gs1").is_dir():
            self.skipTest("Drishti-GS1 data not found under the data root")
        with tempfile.TemporaryDirectory() as tmp:
            args = parse(
                [
                    "--limit",
                    "1",
                    "--attack",
                    "asma",
                    "--max-iter",
                    "1",
                    "--beta",
                    "1e-3",
                    "--tau",
                    "1e-4",
                    "--target",
                    "scale",
                    "--scale",
                    "0.6",
                    "--regions",
                    "disc=1,2",
                    "--no-mlflow",
                    "--threads",
                    "1",
                    "--panel-samples",
                    "1",
                ]
            )
            args.bundle, args.output_dir = "fundus_disc_seg", Path(tmp)
            self.assertEqual(evaluate.run(args), 0)
            payload = json.loads((Path(tmp) / "robustness.json").read_text())
        row = payload["per_sample"][0]
        self.assertLessEqual(row["attack/iterations"], 1)
        self.assertGreater(row["benign/disc/dice"], 0.5)


if __name__ == "__main__":
    unittest.main()
