"""``medsecure demo``: the main job. Attack the optic-disc bundle with ASMA and defend it with FrequencyRefine.

On real data (Drishti-GS1 test split in the data root) it scores a few test images against their ground truth.
Without the data root it runs on the real fundus photograph scikit-image ships (``skimage.data.retina()``) and
scores against the network's own benign prediction (there is no ground truth for that image).
Prints a Markdown table (Dice / IoU of disc and cup for benign, adversarial and defended inputs) and writes the
full report (JSON, CSV, PNG panel, MLflow store) to ``--output-dir``, and ends with a one-line conclusion.
"""

from __future__ import annotations

import argparse
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from .arguments import (
    add_command,
    add_data_root_argument,
    add_overwrite_argument,
    add_threads_argument,
    positive_float,
    positive_int,
)
from .outputs import check_outputs

if TYPE_CHECKING:
    from ..bundle import BundleAdapter

BUNDLE = "fundus_disc_seg"
DATASET = "fundus-drishti-gs1"
REGIONS = {"disc": [1, 2], "cup": [2]}
# QS1-3 chosen by `medsecure calibrate fr` on the validation split (results/fr/README.md)
FR_STEPS = (50.0, 20.0, 100.0)


def register(subparsers) -> None:
    """Add the ``demo`` subcommand."""
    parser = add_command(
        subparsers,
        "demo",
        help="main job: ASMA vs JPEG / FrequencyRefine on the fundus bundle",
        description=__doc__,
        func=run,
    )
    add_data_root_argument(parser)
    parser.add_argument("--limit", type=positive_int, default=4, help="test images to attack")
    parser.add_argument(
        "--max-iter", type=positive_int, default=60, help="ASMA iterations per image (preset authors_x1000)"
    )
    parser.add_argument(
        "--scale",
        type=positive_float,
        default=0.6,
        help="target = ground-truth disc scaled by this factor about its centroid",
    )
    parser.add_argument("--output-dir", default=None, help="report folder (default: runs/demo-<date>-<time>)")
    add_overwrite_argument(parser)
    parser.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    add_threads_argument(parser)


def conclusion(aggregate: dict) -> str:
    """One sentence in plain words from the report's aggregate (mean optic-disc IoU in %)."""

    def iou(condition: str) -> str:
        return f"{100 * aggregate[f'{condition}/disc/iou']['mean']:.0f} %"

    adversarial, fr = aggregate["adversarial/disc/iou"]["mean"], aggregate["defended_adversarial.FR/disc/iou"]["mean"]
    count = aggregate["benign/disc/iou"]["n"]
    return (
        f"Conclusion: ASMA cut the optic-disc IoU from {iou('benign')} to {iou('adversarial')}; FrequencyRefine "
        f"{'restored it to' if fr > adversarial else 'left it at'} {iou('defended_adversarial.FR')} "
        f"(JPEG(50): {iou('defended_adversarial.JPEG50')}, JPEG(85): {iou('defended_adversarial.JPEG85')}) "
        f"and kept {iou('defended_benign.FR')} on clean images "
        f"(mean over {count} image{'s' * (count != 1)})."
    )


def retina_sample(adapter: BundleAdapter) -> dict:
    """``skimage.data.retina()`` as a bundle input ``[3, W, H]`` in [0, 1] at the network input size (MONAI's 2D
    axis order), labelled with the bundle's own post-processed benign prediction."""
    import numpy as np
    import torch
    from monai.transforms import Resize
    from skimage.data import retina

    from ..evaluation.robustness import BundleScorer

    size = adapter.parser["_meta_#network_data_format#inputs#image#spatial_shape"]
    picture = torch.from_numpy(np.ascontiguousarray(retina().transpose(2, 1, 0))).float() / 255.0
    image = Resize(size, mode="area")(picture).as_tensor()
    with torch.no_grad():
        logits = adapter.logits(image[None])[0]
    sample = {adapter.image_key: image, adapter.label_key: logits.argmax(0, keepdim=True)}
    return {**sample, adapter.label_key: BundleScorer(adapter)(sample, logits)[0]}


def run(args: argparse.Namespace) -> int:
    """Build samples, the FR table and the attack; run the robustness engine; print the table and a conclusion."""
    import torch
    from monai.data import Dataset

    from ..attacks import asma_preset
    from ..attacks.targets import scale_mask
    from ..bundle import BundleAdapter
    from ..data import find_data_root, load_datalist, loading_transforms
    from ..defenses.frequency_refine import fit_defensive_table
    from ..evaluation.robustness import BundleScorer, bundle_record
    from ..transforms import FrequencyRefine, JPEGQuantize
    from .evaluate import robustness_report

    output_dir = Path(args.output_dir or f"runs/demo-{time.strftime('%Y%m%d-%H%M%S')}")
    check_outputs([output_dir], [], args.overwrite)
    torch.set_num_threads(args.threads)
    data_root = find_data_root(args.data_root)
    if data_root is not None and (data_root / DATASET / "dataset.json").is_file():
        adapter = BundleAdapter(BUNDLE, overrides={"data_root": str(data_root)})
        samples = Dataset(adapter.datalist[: args.limit], adapter.load)
        calibration = load_datalist(DATASET, "training", data_root, limit=8)
        loader = loading_transforms(DATASET, ["image"])
        calibration_images = [loader({"image": item["image"]})["image"] for item in calibration]
        source = f"{len(samples)} Drishti-GS1 test images from {data_root / DATASET} (scored vs ground truth)"
    else:
        adapter = BundleAdapter(BUNDLE)
        samples = [retina_sample(adapter)]
        calibration_images = [samples[0][adapter.image_key]]
        source = "skimage.data.retina() (no data root found; scored vs the benign prediction)"
    table = fit_defensive_table(calibration_images, FR_STEPS, dataset=DATASET)
    defenses = {"JPEG85": JPEGQuantize(85), "JPEG50": JPEGQuantize(50), "FR": FrequencyRefine(table)}
    attack = asma_preset("authors_x1000", max_iter=args.max_iter, clip=adapter.clip)
    print(f"medsecure demo: ASMA on {source}")
    report = robustness_report(
        output_dir,
        args.overwrite,
        track=not args.no_mlflow,
        run_name="demo",
        model=adapter.logits,
        samples=samples,
        attack=attack,
        defenses=defenses,
        target_fn=partial(scale_mask, factor=args.scale),
        regions=REGIONS,
        scorer=BundleScorer(adapter),
        image_key=adapter.image_key,
        label_key=adapter.label_key,
        device=adapter.device,
        bundle=bundle_record(adapter),
    )
    print(Path(report["files"]["markdown"]).read_text())
    print(f"full report: {output_dir.resolve()}")
    print(conclusion(report["aggregate"]))
    return 0
