"""``medsecure demo``: the main job. Attack the optic-disc bundle with ASMA and defend it with FrequencyRefine.

On real data (Drishti-GS1 test split in the data root) it scores a few test images against their ground truth.
Without the data root it runs on the real fundus photograph scikit-image ships (``skimage.data.retina()``) and
scores against the network's own benign prediction (there is no ground truth for that image).
Prints a Markdown table (Dice / IoU of disc and cup for benign, adversarial and defended inputs) and writes the
full report (JSON, CSV, PNG panel, MLflow store) to ``--output-dir``.
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

import numpy as np
import torch

from .arguments import add_data_root_argument

BUNDLE = "fundus_disc_seg"
DATASET = "fundus-drishti-gs1"
REGIONS = {"disc": [1, 2], "cup": [2]}
# QS1-3 chosen by `medsecure calibrate fr` on the validation split (docs/frequency_refine.md)
FR_STEPS = (50.0, 20.0, 100.0)


def register(subparsers) -> None:
    """Add the ``demo`` subcommand."""
    parser = subparsers.add_parser(
        "demo",
        help="main job: ASMA vs JPEG / FrequencyRefine on the fundus bundle",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_data_root_argument(parser)
    parser.add_argument("--limit", type=int, default=4, help="test images to attack (default 4)")
    parser.add_argument(
        "--max-iter", type=int, default=60, help="ASMA iterations per image (preset authors_x1000; default 60)"
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=0.6,
        help="target = ground-truth disc scaled by this factor about its centroid (default 0.6)",
    )
    parser.add_argument("--output-dir", type=Path, default=Path("runs/demo"), help="report folder (default runs/demo)")
    parser.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    parser.set_defaults(func=run)


def retina_sample(model: torch.nn.Module, spatial_size: tuple[int, int]) -> dict:
    """``skimage.data.retina()`` as a bundle input ``[3, W, H]`` in [0, 1] (MONAI's 2D axis order), labelled with
    the network's own benign prediction."""
    from monai.transforms import Resize
    from skimage.data import retina

    picture = torch.from_numpy(np.ascontiguousarray(retina().transpose(2, 1, 0))).float() / 255.0
    image = Resize(spatial_size, mode="area")(picture).as_tensor()
    with torch.no_grad():
        label = model(image[None]).argmax(1)
    return {"image": image, "label": label}


def run(args: argparse.Namespace) -> int:
    """Build samples, the FR table and the attack; run the robustness engine; print the table."""
    from monai.data import Dataset

    from ..attacks import asma_preset
    from ..attacks.targets import scale_mask
    from ..bundle import bundle_config, bundle_preprocessing, load_bundle_network
    from ..data import find_data_root, load_datalist, loading_transforms
    from ..defenses.frequency_refine import fit_defensive_table
    from ..evaluation.robustness import evaluate_robustness
    from ..transforms import FrequencyRefine, JPEGQuantize

    model = load_bundle_network(BUNDLE)
    data_root = find_data_root(args.data_root)
    if data_root is not None and (data_root / DATASET / "dataset.json").is_file():
        datalist, transform = bundle_preprocessing(BUNDLE, "test", data_root=data_root, limit=args.limit)
        samples = Dataset(datalist, transform)
        calibration = load_datalist(DATASET, "training", data_root, limit=8)
        loader = loading_transforms(DATASET, ["image"])
        calibration_images = [loader({"image": item["image"]})["image"] for item in calibration]
        source = f"{len(samples)} Drishti-GS1 test images from {data_root / DATASET} (scored vs ground truth)"
    else:
        size = tuple(bundle_config(BUNDLE, "inference.json")["spatial_size"])
        samples = [retina_sample(model, size)]
        calibration_images = [samples[0]["image"]]
        source = "skimage.data.retina() (no data root found; scored vs the benign prediction)"
    table = fit_defensive_table(calibration_images, FR_STEPS, dataset=DATASET)
    defenses = {"JPEG85": JPEGQuantize(85), "JPEG50": JPEGQuantize(50), "FR": FrequencyRefine(table)}
    attack = asma_preset("authors_x1000", max_iter=args.max_iter)
    print(f"medsecure demo: ASMA on {source}")
    report = evaluate_robustness(
        model,
        samples,
        attack,
        args.output_dir,
        defenses=defenses,
        target_fn=partial(scale_mask, factor=args.scale),
        regions=REGIONS,
        track=not args.no_mlflow,
        run_name="demo",
    )
    print(Path(report["files"]["markdown"]).read_text())
    print(f"full report: {args.output_dir.resolve()}")
    return 0
