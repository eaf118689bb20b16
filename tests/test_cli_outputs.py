"""How ``medsecure`` writes: no silent overwrite, never over the input, nothing left behind by a failing command."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medsecure_transforms.cli.evaluate import robustness_report
from medsecure_transforms.cli.main import main
from medsecure_transforms.cli.outputs import check_outputs, staged_file, staged_folder


def listing(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture()
def volume(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    x, y, z = np.meshgrid(np.arange(24), np.arange(20), np.arange(8), indexing="ij")
    np.save("v.npy", (500 * np.exp(-((x - 12) ** 2 + (y - 10) ** 2 + (z - 4) ** 2) / 40.0)).astype(np.int16))
    return tmp_path / "v.npy"


def test_compress_onto_its_input_is_refused(volume, capsys):
    original = volume.read_bytes()
    for extra in ([], ["--overwrite"]):
        assert main(["compress", "v.npy", "v.npy", *extra]) == 2
        assert "is the input" in capsys.readouterr().err
    assert volume.read_bytes() == original
    (volume.parent / "link.npy").symlink_to(volume)
    assert main(["compress", "v.npy", "link.npy", "--overwrite"]) == 2  # the same file under another name
    assert volume.read_bytes() == original


def test_existing_output_needs_overwrite(volume, capsys):
    assert main(["compress", "v.npy", "x.mvc"]) == 0
    first = (volume.parent / "x.mvc").read_bytes()
    assert main(["compress", "v.npy", "x.mvc", "--q-max", "64"]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert (volume.parent / "x.mvc").read_bytes() == first
    assert main(["compress", "v.npy", "x.mvc", "--q-max", "64", "--overwrite"]) == 0
    assert (volume.parent / "x.mvc").read_bytes() != first
    assert main(["decompress", "x.mvc", "out.nii.gz"]) == 0
    assert main(["decompress", "x.mvc", "out.nii.gz"]) == 2
    assert main(["decompress", "x.mvc", "out.nii.gz", "--overwrite"]) == 0
    assert not [name for name in listing(volume.parent) if name.startswith(".")]  # no temporary file left


def test_failing_compress_keeps_the_previous_output_and_its_sidecar(volume):
    """Before: ``compress missing.nii.gz old.mvc`` deleted ``old.mvc.identifiers.json``, then failed."""
    (volume.parent / "old.mvc").write_bytes(b"earlier")
    (volume.parent / "old.mvc.identifiers.json").write_text('{"PatientID": "P1"}')
    before = listing(volume.parent)
    assert main(["compress", "missing.nii.gz", "old.mvc", "--overwrite"]) == 2
    assert main(["compress", "v.npy", "old.mvc", "--overwrite", "--lossless", "--q-max", "4"]) == 2  # refused late
    assert listing(volume.parent) == before
    assert (volume.parent / "old.mvc.identifiers.json").read_text() == '{"PatientID": "P1"}'


def test_decompress_will_not_replace_a_folder_holding_its_input(volume, capsys):
    folder = volume.parent / "series"
    folder.mkdir()
    assert main(["compress", "v.npy", "series/x.mvc"]) == 0
    assert main(["decompress", "series/x.mvc", "series", "--overwrite"]) == 2
    assert "holds it" in capsys.readouterr().err
    assert listing(folder) == ["x.mvc"]


def test_check_outputs(tmp_path):
    (tmp_path / "empty").mkdir()
    check_outputs([tmp_path / "empty", tmp_path / "new"], [], overwrite=False)  # an empty folder is free
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError):
        check_outputs([tmp_path / "file"], [], overwrite=False)
    check_outputs([tmp_path / "file"], [], overwrite=True)
    with pytest.raises(ValueError, match="is the input"):
        check_outputs([tmp_path], [tmp_path / "file"], overwrite=True)


def test_staged_file_and_folder_leave_nothing_on_failure(tmp_path):
    target = tmp_path / "out.nii.gz"
    target.write_text("old")
    with pytest.raises(RuntimeError), staged_file(target) as staged:
        assert staged.parent == tmp_path and staged.name.endswith(".nii.gz")
        staged.write_text("half")
        raise RuntimeError("writer failed")
    assert listing(tmp_path) == ["out.nii.gz"] and target.read_text() == "old"
    with staged_file(target) as staged:
        staged.write_text("new")
    assert listing(tmp_path) == ["out.nii.gz"] and target.read_text() == "new"

    folder = tmp_path / "report"
    with pytest.raises(RuntimeError), staged_folder(folder) as staging:
        (staging / "a.json").write_text("{}")
        raise RuntimeError("study failed")
    assert listing(tmp_path) == ["out.nii.gz"]
    with staged_folder(folder) as staging:
        (staging / "a.json").write_text("{}")
    with staged_folder(folder) as staging:  # replaces the earlier folder as a whole
        (staging / "b.json").write_text("{}")
    assert listing(folder) == ["b.json"] and listing(tmp_path) == ["out.nii.gz", "report"]
    with pytest.raises(KeyboardInterrupt), staged_folder(tmp_path / "long", keep_on_interrupt=True) as staging:
        (staging / "rows.jsonl").write_text("{}\n")
        raise KeyboardInterrupt
    assert staging.is_dir() and not (tmp_path / "long").exists()  # an interrupted run keeps what it measured


def test_failing_evaluation_leaves_no_folder(tmp_path):
    """Before: ``medsecure demo --limit 0`` left a folder and a file behind."""
    from medsecure_transforms.attacks import FGSM

    model = torch.nn.Conv2d(1, 2, 3, padding=1)
    with pytest.raises(ValueError, match="empty"):
        robustness_report(tmp_path / "report", False, track=False, run_name="t", model=model, samples=[], attack=FGSM())
    assert listing(tmp_path) == []


def test_bundle_writer_is_atomic(tmp_path):
    """The bundles' ``SaveImaged`` is :class:`AtomicSaveImaged`: a failing write leaves the earlier file, no part."""
    import json
    from pathlib import Path

    from monai.data import ImageWriter, MetaTensor

    from medsecure_transforms.data.saving import AtomicSaveImaged, atomic_image_writer

    class DiskFull(ImageWriter):
        def write(self, filename, verbose=True, **kwargs):
            Path(filename).write_bytes(b"half an image")
            raise OSError("No space left on device")

    (tmp_path / "case_seg.png").write_bytes(b"earlier")
    with pytest.raises(OSError, match="No space"):
        atomic_image_writer(DiskFull)().write(tmp_path / "case_seg.png")
    assert listing(tmp_path) == ["case_seg.png"] and (tmp_path / "case_seg.png").read_bytes() == b"earlier"

    save = AtomicSaveImaged("pred", output_dir=tmp_path, output_postfix="seg", output_ext=".nii.gz", resample=False)
    save({"pred": MetaTensor(torch.ones(1, 4, 4, 2), meta={"filename_or_obj": "case.nii.gz"})})
    assert listing(tmp_path / "case") == ["case_seg.nii.gz"]

    configs = sorted((Path(__file__).parents[1] / "bundles").glob("*/configs/inference.json"))
    targets = [json.dumps(json.loads(path.read_text())) for path in configs]
    assert configs and all('"SaveImaged"' not in text for text in targets)
    assert sum(text.count("medsecure_transforms.data.saving.AtomicSaveImaged") for text in targets) == len(configs)
