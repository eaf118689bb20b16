"""One input check for every array transform: the same wording (transform, shape, expectation), keys named safely."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from medsecure_transforms.defenses import FFTDetector, Reformer, jpeg_table
from medsecure_transforms.transforms import (
    FFTDetect,
    FrequencyRefine,
    FrequencyRefined,
    JPEGQuantize,
    MVCompress3D,
    OCTDenoise,
    OCTGrayscale,
    OCTRetinaCrop,
    OCTRetinaPlace,
    Reform,
)
from medsecure_transforms.transforms.keywise import KeywiseMapTransform
from medsecure_transforms.transforms.validation import check_image, layout, naming_key


def calibrated_detector() -> FFTDetector:
    return FFTDetector("autoencoder2", 1, "spatial", threshold=1.0)


TRANSFORMS = [
    ("FrequencyRefine", lambda: FrequencyRefine(jpeg_table(50)), "[C, H, W] or [C, H, W, D]"),
    ("JPEGQuantize", lambda: JPEGQuantize(85), "[C, H, W] or [C, H, W, D]"),
    ("FFTDetect", lambda: FFTDetect(calibrated_detector()), "[C, H, W] or [C, H, W, D]"),
    ("Reform", lambda: Reform(Reformer("autoencoder2", 1)), "[C, H, W] or [C, H, W, D]"),
    ("MVCompress3D", lambda: MVCompress3D(), "[C, H, W, D] (codec levels"),
    ("OCTGrayscale", lambda: OCTGrayscale(), "[C, H, W] with C in (1, 3)"),
    ("OCTDenoise", lambda: OCTDenoise(), "[C, H, W] with C in (1,)"),
    ("OCTRetinaCrop", lambda: OCTRetinaCrop(), "[C, H, W] with C in (1,)"),
    ("OCTRetinaPlace", lambda: OCTRetinaPlace(), "[C, H, W] with C in (1,)"),
]


@pytest.mark.parametrize(("name", "make", "expected"), TRANSFORMS)
def test_every_transform_words_its_refusals_alike(name, make, expected):
    transform = make()
    with pytest.raises(TypeError, match=f"^{name}: expected a numpy array or torch tensor, got list$"):
        transform([1.0, 2.0])
    wrong = np.zeros((2, 2, 2, 2, 2), np.float32)
    with pytest.raises(ValueError, match=rf"^{name}: expected a channel-first image .*got shape \(2, 2, 2, 2, 2\)$"):
        transform(wrong)
    with pytest.raises(ValueError, match=rf"{name}: expected a channel-first image {_escape(expected)}"):
        transform(wrong)


def _escape(text: str) -> str:
    return text.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(").replace(")", r"\)")


def test_check_image():
    image = torch.rand(1, 4, 4)
    assert check_image(image, "T") is image
    assert layout(2) == "[C, H, W]" and layout(3) == "[C, H, W, D]"
    with pytest.raises(TypeError, match="^T: expected a floating-point image, got dtype torch.uint8$"):
        check_image(torch.zeros(1, 4, 4, dtype=torch.uint8), "T", floating=True)
    with pytest.raises(ValueError, match=r"^T: image of shape \(1, 4, 4\) contains NaN or infinite values$"):
        check_image(torch.full((1, 4, 4), float("inf")), "T")
    assert check_image(np.full((1, 4, 4), np.nan), "T", finite=False).shape == (1, 4, 4)
    with pytest.raises(ValueError, match=r"with C in \(1,\)"):
        check_image(np.zeros((3, 4, 4)), "T", (2,), channels=(1,))


class Raising:
    """An array transform raising ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __call__(self, img):
        raise self.error


class Keywise(KeywiseMapTransform):
    def __init__(self, error: Exception) -> None:
        super().__init__("image")
        self.transform = Raising(error)


def test_dictionary_errors_name_the_key_and_chain():
    odd = json.JSONDecodeError("bad", "{", 0)  # a ValueError whose constructor takes three arguments
    with pytest.raises(ValueError, match="^key 'image': bad: line 1 column 1") as info:
        Keywise(odd)({"image": 0})
    assert info.value.__cause__ is odd
    with pytest.raises(TypeError, match="^key 'image': no") as info:
        Keywise(TypeError("no"))({"image": 0})
    with pytest.raises(RuntimeError, match="^untouched$"):
        Keywise(RuntimeError("untouched"))({"image": 0})
    with pytest.raises(ValueError, match=r"^key 'image': FrequencyRefine: expected a channel-first image"):
        FrequencyRefined("image", jpeg_table(50))({"image": torch.zeros(4, 4)})
    with pytest.raises(ValueError, match="^key 3: x$"), naming_key(3):
        raise ValueError("x")
