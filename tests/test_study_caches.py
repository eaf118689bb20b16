"""Issue 17 item 8: the studies' attack caches are keyed by the content they were computed from (inputs, attack
parameters, weights), so a run on other data with the same bundle and limit never reads stale adversarial examples."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from medsecure_transforms.attacks import PGD
from medsecure_transforms.defenses import FFTDetector, jpeg_quantizer
from medsecure_transforms.evaluation import fr_reproduction
from medsecure_transforms.evaluation.fft_study import FFTStudySettings, fft_study
from medsecure_transforms.evaluation.fr_reproduction import AdversarialCache
from medsecure_transforms.evaluation.study_cache import cached, content_key, module_digest, tensor_digest

TINY = FFTStudySettings(dag_iter=1, asma_iter=1, pgd_steps=1, adaptive_steps=1)


def data(seed: int, n: int = 2, channels: int = 1, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``[n, C, size, size]`` near 0.5 and binary label maps ``[n, 1, size, size]``, drawn from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    labels = (torch.rand(n, 1, size, size, generator=g) > 0.5).long()
    images = 0.49 + 0.02 * labels.float().expand(n, channels, size, size) + 0.01 * torch.rand(n, 1, size, size)
    return images.clamp(0, 1), labels


def network(channels: int = 1, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Conv2d(channels, 2, 3, padding=1)


def detector(seed: int = 0) -> FFTDetector:
    torch.manual_seed(seed)
    return FFTDetector("unet", 1, "shifted_frequency", network_kwargs={"channels": [4, 8]}, threshold=1e6)


def files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def test_digests_follow_content():
    a, _ = data(0)
    assert tensor_digest(a) == tensor_digest(a.clone()) != tensor_digest(a + 1e-6)
    assert tensor_digest(a) != tensor_digest(a.double()) and tensor_digest(a) != tensor_digest(a.reshape(1, 2, 16, 16))
    assert module_digest(network()) == module_digest(network()) != module_digest(network(seed=1))
    assert content_key({"b": 1, "a": 2}) == content_key({"a": 2, "b": 1}) != content_key({"a": 2, "b": 2})


def test_cached_reads_back_and_can_be_off(tmp_path):
    calls = []

    def make():
        calls.append(1)
        return {"x": torch.ones(2)}

    assert cached(None, "n", "k", make)["x"].sum() == 2 and len(calls) == 1
    cached(tmp_path, "n", "k", make)
    assert torch.equal(cached(tmp_path, "n", "k", make)["x"], torch.ones(2)) and len(calls) == 2
    assert files(tmp_path) == {"n_k.pt"}


@pytest.fixture
def fake_bundle(tmp_path) -> str:
    """A bundle folder with a weights file (what AdversarialCache digests for its report)."""
    (tmp_path / "bundle" / "models").mkdir(parents=True)
    (tmp_path / "bundle" / "configs").mkdir()
    (tmp_path / "bundle" / "models" / "model.pt").write_bytes(b"weights")
    return str(tmp_path / "bundle")


def test_fr_adversarial_cache_is_keyed_by_content(tmp_path, fake_bundle, monkeypatch):
    crafted = []
    craft = fr_reproduction.craft_adversarial
    monkeypatch.setattr(fr_reproduction, "craft_adversarial", lambda *a, **k: crafted.append(1) or craft(*a, **k))
    folder = tmp_path / "cache"
    cache = AdversarialCache(folder, fake_bundle, seed=0, batch_size=2)
    model = network(3)
    attack = PGD(epsilon=4 / 255, step_size=1 / 255, steps=1, targeted=True, seed=0)
    images_a, labels_a = data(0, channels=3)
    images_b, labels_b = data(1, channels=3)  # other data, same bundle, same number of images

    first, _ = cache(model, images_a, 1 - labels_a, attack)
    again, _ = cache(model, images_a, 1 - labels_a, attack)
    assert torch.equal(first, again) and len(crafted) == 1 and len(files(folder)) == 1  # same inputs: a hit
    other, _ = cache(model, images_b, 1 - labels_b, attack)
    assert len(crafted) == 2 and len(files(folder)) == 2  # other images: no stale hit
    assert (other - images_b).abs().max() <= 4 / 255 + 1e-6
    cache(model, images_a, labels_a, attack)  # other targets
    cache(network(3, seed=1), images_a, 1 - labels_a, attack)  # other weights
    for quality in (85, 50):  # BPDA through other defenses
        cache(model, images_a, 1 - labels_a, attack, model, "bpda-JPEG", jpeg_quantizer(quality, color="rgb"))
    assert len(crafted) == 6 and len(files(folder)) == 6
    assert all(name.startswith("bundle_") for name in files(folder))


def test_fft_study_attack_cache_is_keyed_by_content(tmp_path):
    folder = tmp_path / "cache"
    net = network()
    detectors = {"unet_shifted_frequency": detector()}
    images_a, labels_a = data(0)
    images_b, labels_b = data(1)
    first, _ = fft_study(net, images_a, labels_a, detectors, {}, TINY, folder, ["bundle", 2])
    names_a = files(folder)
    assert len(names_a) == 4  # DAG, ASMA, PGD, adaptive
    again, _ = fft_study(net, images_a, labels_a, detectors, {}, TINY, folder, ["bundle", 2])
    assert again == first and files(folder) == names_a  # same inputs: read back
    other, _ = fft_study(net, images_b, labels_b, detectors, {}, TINY, folder, ["bundle", 2])
    assert len(files(folder)) == 8  # same bundle and slice count, other slices: attacked again
    fft_study(net, images_a, labels_a, {"unet_shifted_frequency": detector(seed=1)}, {}, TINY, folder, ["bundle", 2])
    assert len(files(folder)) == 9  # another detector's weights: only the adaptive attack again
