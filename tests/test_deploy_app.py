"""End-to-end MONAI Deploy app: DICOM series -> defended bundle inference -> DICOM SEG + detector report.

The bundle is built here: a 1x1x1 convolution whose logits make the class a step function of the scaled intensity
(background < 0.3 <= label 1 < 0.6 <= label 2), with the hippocampus bundle's layout (Orientation, ScaleIntensity,
Resize to the network size, Invertd). The SEG read back with highdicom must equal the prediction of the same
bundle run by MONAI on the NIfTI file the DICOM series was made from, defense included.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch

pytest.importorskip("monai.deploy.operators", reason="the 'deploy' extra (monai-deploy-app-sdk) is not installed")
hd = pytest.importorskip("highdicom", reason="the 'deploy' extra (highdicom) is not installed")

from helpers import require_dataset  # noqa: E402
from monai.bundle import ConfigParser  # noqa: E402
from monai.deploy.operators.monai_bundle_inference_operator import filter_compose  # noqa: E402

from medsecure_transforms.bundle import bundle_config, bundle_dir, load_bundle_network  # noqa: E402
from medsecure_transforms.data.dicom_series import DicomSeriesError, nifti_to_dicom_series  # noqa: E402
from medsecure_transforms.defenses import FFTDetector, fixed_layout_table  # noqa: E402
from medsecure_transforms.deploy.app import DEFAULT_BUNDLE, run_app  # noqa: E402
from medsecure_transforms.deploy.components import default_defense  # noqa: E402
from medsecure_transforms.deploy.operators import DETECTOR_REPORT  # noqa: E402
from medsecure_transforms.transforms import FFTDetect, FrequencyRefined  # noqa: E402

NETWORK_SIZE = [16, 16, 16]
TABLE = fixed_layout_table((20, 10, 60))
AFFINE = np.array([[-0.9, 0, 0, 30.0], [0, 1.1, 0, -20.0], [0, 0, 2.5, 5.0], [0, 0, 0, 1]])


def _write_bundle(folder: Path) -> Path:
    (folder / "configs").mkdir(parents=True)
    (folder / "models").mkdir()
    image_format = {"type": "image", "num_channels": 1, "spatial_shape": NETWORK_SIZE, "value_range": [0, 1]}
    pred_format = {"type": "image", "num_channels": 3, "spatial_shape": NETWORK_SIZE, "value_range": [0, 2]}
    formats = {"inputs": {"image": image_format}, "outputs": {"pred": pred_format}}
    meta = {"version": "0.0.1", "network_data_format": formats}
    (folder / "configs" / "metadata.json").write_text(json.dumps(meta))
    preprocessing = [
        {"_target_": "LoadImaged", "keys": "image", "image_only": True},
        {"_target_": "EnsureChannelFirstd", "keys": "image"},
        {"_target_": "EnsureTyped", "keys": "image", "dtype": "$torch.float32"},
        {"_target_": "Orientationd", "keys": "image", "axcodes": "RAS", "labels": None},
        {"_target_": "ScaleIntensityd", "keys": "image", "minv": 0.0, "maxv": 1.0},
        {"_target_": "Resized", "keys": "image", "spatial_size": NETWORK_SIZE, "mode": "trilinear"},
    ]
    postprocessing = [
        {"_target_": "Activationsd", "keys": "pred", "softmax": True},
        {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
        {
            "_target_": "Invertd",
            "keys": "pred",
            "transform": "@preprocessing",
            "orig_keys": "image",
            "nearest_interp": True,
            "to_tensor": True,
        },
    ]
    inference = {
        "imports": ["$import torch"],
        "network_def": {"_target_": "torch.nn.Conv3d", "in_channels": 1, "out_channels": 3, "kernel_size": 1},
        "network": "@network_def",
        "preprocessing": {"_target_": "Compose", "transforms": preprocessing},
        "inferer": {"_target_": "SimpleInferer"},
        "postprocessing": {"_target_": "Compose", "transforms": postprocessing},
    }
    (folder / "configs" / "inference.json").write_text(json.dumps(inference))
    conv = torch.nn.Conv3d(1, 3, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([0.0, 10.0, 20.0]).view(3, 1, 1, 1, 1))
        conv.bias.copy_(torch.tensor([0.0, -3.0, -9.0]))
    torch.save(conv.state_dict(), folder / "models" / "model.pt")
    return folder


def _phantom(path: Path) -> Path:
    """Noisy background with an ellipsoid split into a 500 half (label 1) and a 1000 half (label 2)."""
    rng = np.random.default_rng(0)
    volume = rng.integers(0, 150, size=(20, 24, 16)).astype(np.int16)
    x, y, z = np.meshgrid(*[np.arange(n) for n in volume.shape], indexing="ij")
    inside = ((x - 10) / 7) ** 2 + ((y - 12) / 9) ** 2 + ((z - 8) / 6) ** 2 < 1
    volume[inside & (y < 12)], volume[inside & (y >= 12)], volume[0, 0, 0] = 500, 1000, 0
    nib.save(nib.Nifti1Image(volume, AFFINE), path)
    return path


def _defense():
    return FrequencyRefined(keys="image", table=TABLE)


def _detector() -> FFTDetect:
    torch.manual_seed(0)
    detector = FFTDetector("unet", in_channels=1, network_kwargs={"channels": [4, 8]})
    detector.threshold = 0.5
    return FFTDetect(detector, policy="flag")


def _nifti_prediction(parser: ConfigParser, network, defense, nifti: Path, out: Path) -> np.ndarray:
    """The bundle's own prediction for the NIfTI file (same defense), saved as NIfTI and read back."""
    data = defense(parser.get_parsed_content("preprocessing")({"image": str(nifti)}))
    with torch.no_grad():
        data["pred"] = network.eval()(data["image"][None])[0]
    postprocessing = filter_compose(parser.get_parsed_content("postprocessing"), ["SaveImage"])
    pred = postprocessing(data)["pred"]
    nib.save(nib.Nifti1Image(np.asarray(pred[0]).astype(np.uint8), nib.load(nifti).affine), out)
    return np.asanyarray(nib.load(out).dataobj)


def _seg_mask(seg_file: Path, source_folder: Path) -> np.ndarray:
    """Label map ``[X, Y, Z]`` of a DICOM SEG, frames matched to the source slices by SOP Instance UID."""
    sources = [pydicom.dcmread(f).SOPInstanceUID for f in sorted(source_folder.glob("*.dcm"))]
    frames = hd.seg.segread(seg_file).get_pixels_by_source_instance(sources, combine_segments=True)
    return np.transpose(frames, (2, 1, 0))  # [slice, row, column] -> [X, Y, Z]


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    root = tmp_path_factory.mktemp("deploy")
    bundle = _write_bundle(root / "bundle")
    nifti = _phantom(root / "phantom.nii.gz")
    nifti_to_dicom_series(nifti, root / "dicom", uid_seed="phantom")
    detector = _detector()
    summary = run_app(root / "dicom", root / "out", bundle=bundle, defense=_defense(), detector=detector)
    return {"root": root, "bundle": bundle, "nifti": nifti, "summary": summary, "detector": detector}


def test_seg_equals_bundle_nifti_prediction(deployed):
    root = deployed["root"]
    segs = sorted((root / "out").glob("*.dcm"))
    assert len(segs) == 1
    mask = _seg_mask(segs[0], root / "dicom")
    parser = ConfigParser()
    parser.read_config(str(deployed["bundle"] / "configs" / "inference.json"))
    parser.parse()
    network = parser.get_parsed_content("network")
    network.load_state_dict(torch.load(deployed["bundle"] / "models" / "model.pt", weights_only=True))
    expected = _nifti_prediction(parser, network, _defense(), deployed["nifti"], root / "pred.nii.gz")
    assert set(np.unique(expected)) == {0, 1, 2}  # the comparison covers both segments
    np.testing.assert_array_equal(mask, expected)


def test_seg_segment_descriptions_are_snomed_coded(deployed):
    seg = hd.seg.segread(next((deployed["root"] / "out").glob("*.dcm")))
    described = []
    for item in seg.SegmentSequence:
        prop = item.SegmentedPropertyTypeCodeSequence[0]
        modifier = prop.SegmentedPropertyTypeModifierCodeSequence[0]
        category = item.SegmentedPropertyCategoryCodeSequence[0]
        described.append(
            (item.SegmentNumber, prop.CodeValue, prop.CodingSchemeDesignator, modifier.CodeValue, category.CodeValue)
        )
    assert described == [(1, "5366008", "SCT", "255549009", "91723000"), (2, "5366008", "SCT", "255551008", "91723000")]


def test_detector_report_and_timings(deployed):
    out, summary = deployed["root"] / "out", deployed["summary"]
    report = json.loads((out / DETECTOR_REPORT).read_text())
    # the detector scored the undefended network input: recompute it from the NIfTI with the bundle's preprocessing
    parser = ConfigParser()
    parser.read_config(str(deployed["bundle"] / "configs" / "inference.json"))
    parser.parse()
    network_input = parser.get_parsed_content("preprocessing")({"image": str(deployed["nifti"])})["image"]
    slice_scores = deployed["detector"].detector.score_batches(network_input.as_tensor().permute(3, 0, 1, 2))
    assert report["input_shape"] == [1, *NETWORK_SIZE]
    assert report["fft_detect_score"] == pytest.approx(float(slice_scores.max()), rel=1e-4)
    np.testing.assert_allclose(report["fft_detect_slice_scores"], slice_scores.numpy(), rtol=1e-4)
    assert report["fft_detect_flagged"] == (report["fft_detect_score"] > 0.5)
    assert sorted(summary["outputs"]) == sorted(p.name for p in out.iterdir())
    for key in ("validation_s", "preprocessing_s", "defense_s", "network_s", "postprocessing_s", "detector_s"):
        assert 0 < summary["timings"][key] <= summary["timings"]["total_s"]


def test_runs_without_detector_and_defense(deployed, tmp_path):
    summary = run_app(deployed["root"] / "dicom", tmp_path, bundle=deployed["bundle"], defense=None, detector=None)
    assert [name.endswith(".dcm") for name in summary["outputs"]] == [True]
    assert "defense_s" not in summary["timings"] and "detector_s" not in summary["timings"]


def test_corrupt_input_leaves_no_output(deployed, tmp_path):
    source = sorted((deployed["root"] / "dicom").glob("*.dcm"))
    broken = tmp_path / "broken"
    broken.mkdir()
    for path in source:
        ds = pydicom.dcmread(path)
        if path == source[3]:
            del ds.PixelData
        ds.save_as(broken / path.name)
    with pytest.raises(DicomSeriesError, match="slice_0003.dcm: missing pixel data"):
        run_app(broken, tmp_path / "out1", bundle=deployed["bundle"], defense=_defense(), detector=_detector())
    assert not (tmp_path / "out1").exists()

    mixed = tmp_path / "mixed"
    nifti_to_dicom_series(deployed["nifti"], mixed, uid_seed="phantom")
    odd = np.zeros((8, 8, 2), dtype=np.int16)
    nifti = tmp_path / "odd.nii.gz"
    nib.save(nib.Nifti1Image(odd, np.eye(4)), nifti)
    nifti_to_dicom_series(nifti, tmp_path / "odd", uid_seed="phantom")  # same series UID, other slice size
    (tmp_path / "odd" / "slice_0000.dcm").replace(mixed / "extra.dcm")
    with pytest.raises(DicomSeriesError, match="mixed series"):
        run_app(mixed, tmp_path / "out2", bundle=deployed["bundle"], defense=_defense(), detector=_detector())
    assert not (tmp_path / "out2").exists()


def test_several_series_without_rules_are_refused(deployed, tmp_path):
    both = tmp_path / "both"
    nifti_to_dicom_series(deployed["nifti"], both / "a", uid_seed="phantom")
    nifti_to_dicom_series(deployed["nifti"], both / "b", uid_seed="another")  # a second series of the same study
    uids = sorted({pydicom.dcmread(f).SeriesInstanceUID for f in both.rglob("*.dcm")})
    with pytest.raises(DicomSeriesError, match=f"holds 2 series .*{uids[0]}.*pass --rules"):
        run_app(both, tmp_path / "out", bundle=deployed["bundle"], defense=None, detector=None)
    assert not (tmp_path / "out").exists()


def test_no_matching_series_leaves_no_output(deployed, tmp_path):
    rules = {"selections": [{"name": "CT only", "conditions": {"Modality": "(?i)CT"}}]}
    with pytest.raises(ValueError, match="no DICOM series matched the selection rules"):
        run_app(
            deployed["root"] / "dicom",
            tmp_path / "out",
            bundle=deployed["bundle"],
            defense=None,
            detector=None,
            rules=rules,
        )
    assert not (tmp_path / "out").exists()  # the folder it created is removed too


@pytest.mark.slow
def test_hippocampus_bundle_end_to_end(data_root, tmp_path):
    """The real bundle on a real MSD test case: SEG == the bundle's own NIfTI prediction, both defended."""
    if not (bundle_dir(DEFAULT_BUNDLE) / "models" / "model.pt").is_file():
        pytest.skip("bundles/hippocampus_seg has no trained weights yet (models/model.pt)")
    folder = require_dataset(data_root, "hippocampus-msd")
    case = folder / "images" / "hippocampus_001.nii.gz"
    nifti_to_dicom_series(case, tmp_path / "dicom", uid_seed="hippocampus_001")
    run_app(tmp_path / "dicom", tmp_path / "out", defense=default_defense(), detector=None)
    mask = _seg_mask(next((tmp_path / "out").glob("*.dcm")), tmp_path / "dicom")
    parser = bundle_config(DEFAULT_BUNDLE, "inference.json")
    network = load_bundle_network(DEFAULT_BUNDLE)
    expected = _nifti_prediction(parser, network, default_defense(), case, tmp_path / "pred.nii.gz")
    assert expected.any()
    np.testing.assert_array_equal(mask, expected)
