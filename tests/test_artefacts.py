"""The artefact protocol: format + version in every file, atomic writes, and loading through the constructor."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from medsecure_transforms.artefacts import atomic_write, load_json, load_torch, save_json, save_torch
from medsecure_transforms.defenses import FFTDetector, QuantTable, Reformer, jpeg_table

FORMAT = "medsecure.test"


def config_and_state(path: Path) -> tuple[dict, dict]:
    return load_torch(path, FORMAT, 1, lambda config, state: (config, state))


def test_json_round_trip(tmp_path):
    path = save_json(tmp_path / "sub" / "a.json", FORMAT, 3, {"x": [1, 2], "y": None})
    assert json.loads(path.read_text()) == {"format": FORMAT, "version": 3, "x": [1, 2], "y": None}
    assert load_json(path, FORMAT, 3, dict) == {"x": [1, 2], "y": None}
    with pytest.raises(ValueError, match="header keys"):
        save_json(path, FORMAT, 3, {"version": 2})


def test_torch_round_trip(tmp_path):
    state = {"w": torch.arange(6.0).view(2, 3), "b": torch.zeros(2, dtype=torch.int64)}
    config = {"p": math.inf, "clip": (0.0, 1.0), "nested": {"a": None}}
    save_torch(tmp_path / "a.pt", FORMAT, 1, config, state)
    loaded_config, loaded_state = config_and_state(tmp_path / "a.pt")
    assert loaded_config == {"p": math.inf, "clip": [0.0, 1.0], "nested": {"a": None}}  # the JSON round trip
    assert loaded_state.keys() == state.keys() and all(torch.equal(loaded_state[k], state[k]) for k in state)
    with pytest.raises(TypeError):
        save_torch(tmp_path / "b.pt", FORMAT, 1, {"object": object()}, state)
    with pytest.raises(TypeError, match="must be tensors"):
        save_torch(tmp_path / "b.pt", FORMAT, 1, {}, {"w": 1.0})
    assert not (tmp_path / "b.pt").exists()


@pytest.mark.parametrize(
    ("kind", "version", "message"),
    [
        ("medsecure.other", 1, r"expected format 'medsecure.test' version 1, found format 'medsecure.other' version 1"),
        (FORMAT, 2, r"expected format 'medsecure.test' version 1, found format 'medsecure.test' version 2"),
    ],
)
def test_wrong_format_or_version(tmp_path, kind, version, message):
    save_json(tmp_path / "a.json", kind, version, {})
    save_torch(tmp_path / "a.pt", kind, version, {}, {})
    with pytest.raises(ValueError, match=f"a.json: {message}"):
        load_json(tmp_path / "a.json", FORMAT, 1, dict)
    with pytest.raises(ValueError, match=f"a.pt: {message}"):
        config_and_state(tmp_path / "a.pt")


def test_file_without_header(tmp_path):
    (tmp_path / "plain.json").write_text('{"steps": []}')
    with pytest.raises(ValueError, match="found format None version None"):
        load_json(tmp_path / "plain.json", FORMAT, 1, dict)
    torch.save({"state_dict": {}, "metadata": "{}"}, tmp_path / "old.pt")
    with pytest.raises(ValueError, match=r"expected a dict with keys .*found \['metadata', 'state_dict'\]"):
        config_and_state(tmp_path / "old.pt")


def test_truncated_files(tmp_path):
    json_path = jpeg_table(75).save(tmp_path / "t.json")
    json_path.write_bytes(json_path.read_bytes()[:50])
    with pytest.raises(ValueError, match="not valid JSON"):
        QuantTable.load(json_path)
    torch_path = save_torch(tmp_path / "a.pt", FORMAT, 1, {}, {"w": torch.rand(64, 64)})
    torch_path.write_bytes(torch_path.read_bytes()[:-200])
    with pytest.raises(ValueError, match="not a readable torch artefact"):
        config_and_state(torch_path)
    with pytest.raises(FileNotFoundError):
        config_and_state(tmp_path / "missing.pt")


class Payload:
    """Any pickled class: ``weights_only`` loading refuses it."""


def test_non_tensor_objects_are_refused(tmp_path):
    torch.save({"format": FORMAT, "version": 1, "config": {}, "state": {"w": Payload()}}, tmp_path / "code.pt")
    with pytest.raises(ValueError, match="not a readable torch artefact"):
        config_and_state(tmp_path / "code.pt")
    torch.save({"format": FORMAT, "version": 1, "config": {}, "state": {"w": 1.0}}, tmp_path / "number.pt")
    with pytest.raises(ValueError, match="'state' must map names to tensors"):
        config_and_state(tmp_path / "number.pt")


def edit_config(path: Path, **changes) -> None:
    blob = torch.load(path, weights_only=True)
    blob["config"].update(changes)
    torch.save(blob, path)


def test_loading_runs_the_constructor_checks(tmp_path):
    detector = FFTDetector("autoencoder2", 1, "spatial", threshold=0.5)
    detector.save(tmp_path / "d.pt")
    assert FFTDetector.load(tmp_path / "d.pt").threshold == 0.5
    edit_config(tmp_path / "d.pt", threshold=-1.0)
    with pytest.raises(ValueError, match=r"d.pt: invalid 'medsecure.fft_detector' artefact: threshold must be"):
        FFTDetector.load(tmp_path / "d.pt")
    edit_config(tmp_path / "d.pt", threshold=0.5, p=0.5)
    with pytest.raises(ValueError, match="p must be >= 1"):
        FFTDetector.load(tmp_path / "d.pt")
    edit_config(tmp_path / "d.pt", p=2.0, arch="autoencoder1")
    with pytest.raises(ValueError, match="weights do not match architecture 'autoencoder1'"):
        FFTDetector.load(tmp_path / "d.pt")
    blob = torch.load(tmp_path / "d.pt", weights_only=True)
    del blob["config"]["domain"]
    torch.save(blob, tmp_path / "d.pt")
    with pytest.raises(ValueError, match="missing entry 'domain'"):
        FFTDetector.load(tmp_path / "d.pt")

    Reformer("autoencoder2", 1).save(tmp_path / "r.pt")
    edit_config(tmp_path / "r.pt", clip=[1.0, 0.0])
    with pytest.raises(ValueError, match="clip must be"):
        Reformer.load(tmp_path / "r.pt")

    path = jpeg_table(50).save(tmp_path / "t.json")
    data = json.loads(path.read_text())
    data["steps"][0][0] = 0
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"t.json: invalid 'medsecure.quant_table' artefact: .*> 0"):
        QuantTable.load(path)


def test_threshold_is_checked_on_assignment():
    detector = FFTDetector("autoencoder2", 1)
    with pytest.raises(ValueError, match="threshold must be"):
        detector.threshold = math.nan
    with pytest.raises(ValueError, match="threshold must be"):
        FFTDetector("autoencoder2", 1, threshold=-0.1)


def test_failed_write_keeps_the_old_file(tmp_path):
    path = save_json(tmp_path / "a.json", FORMAT, 1, {"x": 1})

    def crash(handle):
        handle.write(b'{"half": ')
        raise RuntimeError("crash while writing")

    with pytest.raises(RuntimeError, match="crash"):
        atomic_write(path, crash)
    assert load_json(path, FORMAT, 1, dict) == {"x": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]  # no temporary file left
