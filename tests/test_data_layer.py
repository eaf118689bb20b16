"""Dataset layer on small datasets built by the tests: dataset.json round trip, bad input, root order, downloads."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import re
import tarfile
import threading
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from medsecure_transforms.data import (
    ENV_VAR,
    download_dataset,
    find_data_root,
    load_datalist,
    make_dataset,
    resolve_data_root,
)
from medsecure_transforms.data import root as root_module

RNG = np.random.default_rng(0)


def write_dataset(root: Path, name: str, entries: dict[str, list[dict]]) -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dataset.json").write_text(json.dumps({"name": name, **entries}))
    return folder


def make_skin_pair(folder: Path, stem: str, size=(20, 15)) -> tuple[np.ndarray, np.ndarray]:
    """Random RGB PNG and 0/255 mask PNG of ``size`` (W, H); returns the arrays in PIL's (H, W[, 3]) layout."""
    (folder / "images").mkdir(exist_ok=True)
    (folder / "masks").mkdir(exist_ok=True)
    image = RNG.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    mask = np.where(RNG.random((size[1], size[0])) > 0.5, 255, 0).astype(np.uint8)
    Image.fromarray(image).save(folder / "images" / f"{stem}.png")
    Image.fromarray(mask).save(folder / "masks" / f"{stem}.png")
    return image, mask


@pytest.fixture
def skin_root(tmp_path):
    folder = tmp_path / "skin-ham10000"
    folder.mkdir()
    arrays = {stem: make_skin_pair(folder, stem) for stem in ("a", "b", "c")}
    entry = {stem: {"image": f"images/{stem}.png", "label": f"masks/{stem}.png"} for stem in arrays}
    splits = {"training": [entry["a"], entry["b"]], "validation": [], "test": [entry["c"]]}
    write_dataset(tmp_path, "skin-ham10000", splits)
    return tmp_path, arrays


def test_2d_round_trip_matches_written_pixels(skin_root):
    root, arrays = skin_root
    items = load_datalist("skin-ham10000", "training", root)
    assert [Path(i["image"]).name for i in items] == ["a.png", "b.png"]
    assert all(Path(i["image"]).is_absolute() for i in items)
    dataset = make_dataset("skin-ham10000", "training", data_root=root)
    assert len(dataset) == 2
    sample = dataset[0]
    image, mask = arrays["a"]
    # PILReader convention: [C, W, H], i.e. the transpose of PIL's (H, W, C) array.
    expected_image = image.transpose(2, 1, 0).astype(np.float32) / 255.0
    np.testing.assert_allclose(np.asarray(sample["image"]), expected_image, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(sample["label"])[0], (mask.T == 255).astype(np.float32))
    assert sample["image"].meta["filename_or_obj"].endswith("a.png")


def test_3d_round_trip_keeps_values_and_affine(tmp_path):
    folder = tmp_path / "hippocampus-msd"
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    volume = RNG.integers(0, 200, (6, 7, 5)).astype(np.float32)
    labels = RNG.integers(0, 3, (6, 7, 5)).astype(np.uint8)
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    nib.save(nib.Nifti1Image(volume, affine), folder / "images" / "v.nii.gz")
    nib.save(nib.Nifti1Image(labels, affine), folder / "labels" / "v.nii.gz")
    write_dataset(tmp_path, "hippocampus-msd", {"training": [{"image": "images/v.nii.gz", "label": "labels/v.nii.gz"}]})
    sample = make_dataset("hippocampus-msd", "training", data_root=tmp_path)[0]
    assert tuple(sample["image"].shape) == (1, 6, 7, 5)
    np.testing.assert_allclose(np.asarray(sample["image"])[0], volume)  # 3D: no intensity rescaling by default
    np.testing.assert_array_equal(np.asarray(sample["label"])[0], labels.astype(np.float32))


def raised_by(excinfo, error: type[Exception]) -> Exception:
    """The ``error`` in the exception chain (MONAI wraps transform errors in ``RuntimeError``)."""
    exc = excinfo.value
    while exc is not None and not isinstance(exc, error):
        exc = exc.__cause__
    assert exc is not None, f"no {error.__name__} in the chain of {excinfo.value!r}"
    return exc


def test_missing_file_is_named(skin_root):
    root, _ = skin_root
    (root / "skin-ham10000" / "masks" / "b.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"training\[1\] 'label' file .*b\.png"):
        load_datalist("skin-ham10000", "training", root)


def test_shape_mismatch_names_both_files(skin_root):
    root, _ = skin_root
    Image.fromarray(np.zeros((9, 11), np.uint8)).save(root / "skin-ham10000" / "masks" / "a.png")
    with pytest.raises(Exception) as excinfo:
        make_dataset("skin-ham10000", "training", data_root=root)[0]
    message = str(raised_by(excinfo, ValueError))
    assert "shapes differ" in message and "images/a.png" in message and "masks/a.png" in message


def test_unreadable_image_is_named(skin_root):
    root, _ = skin_root
    (root / "skin-ham10000" / "images" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    with pytest.raises(Exception) as excinfo:
        make_dataset("skin-ham10000", "training", data_root=root)[1]
    assert re.search(r"cannot read 'image' file .*images/b\.png", str(raised_by(excinfo, ValueError)))


@pytest.mark.parametrize(
    "name, split, error, message",
    [
        ("skin-ham10000", "holdout", ValueError, "split must be one of"),
        ("no-such-dataset", "training", KeyError, "known"),
    ],
)
def test_bad_requests(skin_root, name, split, error, message):
    with pytest.raises(error, match=message):
        load_datalist(name, split, skin_root[0])


@pytest.mark.parametrize(
    "entry, message",
    [
        ("../outside.png", "leads outside the dataset folder"),
        ("images/../../outside.png", "leads outside the dataset folder"),
        ("ABSOLUTE", "absolute path"),
    ],
)
def test_entries_outside_the_dataset_are_refused(skin_root, entry, message):
    root, _ = skin_root
    outside = root / "outside.png"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(outside)
    entry = str(outside) if entry == "ABSOLUTE" else entry
    meta = json.loads((root / "skin-ham10000" / "dataset.json").read_text())
    meta["test"] = [{"image": entry, "label": "masks/c.png"}]
    (root / "skin-ham10000" / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=rf"test\[0\] 'image': .*{message}"):
        load_datalist("skin-ham10000", "test", root)
    assert load_datalist("skin-ham10000", "test", root, allow_outside=True)[0]["image"] == str(outside.resolve())


def test_missing_section_is_reported(skin_root):
    root, _ = skin_root
    meta = json.loads((root / "skin-ham10000" / "dataset.json").read_text())
    del meta["test"]
    (root / "skin-ham10000" / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="section 'test' is missing"):
        load_datalist("skin-ham10000", "test", root)


def test_root_resolution_order(tmp_path, monkeypatch):
    flag, env, default = (tmp_path / n for n in ("flag", "env", "repo_parent/shared/data"))
    for folder in (flag, env, default):
        folder.mkdir(parents=True)
    monkeypatch.setattr(root_module, "default_candidates", lambda: [tmp_path / "absent", default])
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert find_data_root() == default.resolve()
    monkeypatch.setenv(ENV_VAR, str(env))
    assert find_data_root() == env.resolve()
    assert find_data_root(flag) == flag.resolve()
    with pytest.raises(FileNotFoundError, match="given by data_root argument"):
        find_data_root(tmp_path / "typo")
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "typo"))
    with pytest.raises(FileNotFoundError, match=ENV_VAR):
        find_data_root()
    monkeypatch.delenv(ENV_VAR)
    monkeypatch.setattr(root_module, "default_candidates", lambda: [tmp_path / "absent"])
    assert find_data_root() is None
    with pytest.raises(FileNotFoundError, match="no data root found"):
        resolve_data_root()


def archive_bytes(kind: str, members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    if kind == "tar":
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    else:
        with zipfile.ZipFile(buffer, "w") as archive:
            for name, data in members.items():
                archive.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture
def loopback_server(tmp_path):
    """HTTP server on 127.0.0.1 serving ``tmp_path/served``; yields (folder, base URL)."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()


class TestLoopbackDownload:
    members = {"Task/dataset.json": b'{"training": []}', "Task/images/x.txt": b"voxels"}

    @pytest.mark.parametrize("kind", ["tar", "zip"])
    def test_download_with_md5(self, loopback_server, tmp_path, kind):
        served, base = loopback_server
        payload = archive_bytes(kind, self.members)
        (served / f"task.{kind}").write_bytes(payload)
        dest = download_dataset(
            "hippocampus-msd", tmp_path / "dest", url=f"{base}/task.{kind}", hash_value=hashlib.md5(payload).hexdigest()
        )
        for name, data in self.members.items():
            assert (dest / name).read_bytes() == data

    def test_unverified_download_is_refused_unless_allowed(self, loopback_server, tmp_path):
        served, base = loopback_server
        (served / "task.tar").write_bytes(archive_bytes("tar", self.members))
        with pytest.raises(ValueError, match="publishes no checksum"):
            download_dataset("skin-ham10000", tmp_path / "dest", url=f"{base}/task.tar")
        assert not (tmp_path / "dest").exists()
        dest = download_dataset("skin-ham10000", tmp_path / "dest", url=f"{base}/task.tar", allow_unverified=True)
        assert (dest / "Task/images/x.txt").read_bytes() == b"voxels"

    def test_archive_member_outside_the_target_is_refused(self, loopback_server, tmp_path):
        served, base = loopback_server
        payload = archive_bytes("zip", {"../escaped.txt": b"x"})
        (served / "evil.zip").write_bytes(payload)
        with pytest.raises(ValueError):
            download_dataset(
                "hippocampus-msd",
                tmp_path / "dest",
                url=f"{base}/evil.zip",
                hash_value=hashlib.md5(payload).hexdigest(),
            )
        assert not (tmp_path / "escaped.txt").exists()

    def test_wrong_hash_fails(self, loopback_server, tmp_path):
        served, base = loopback_server
        (served / "task.tar").write_bytes(archive_bytes("tar", self.members))
        with pytest.raises(RuntimeError, match="md5"):
            download_dataset("hippocampus-msd", tmp_path / "dest", url=f"{base}/task.tar", hash_value="0" * 32)
        assert not (tmp_path / "dest" / "Task").exists()
        assert not (tmp_path / "dest" / "task.tar").exists()
