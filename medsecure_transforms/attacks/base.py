"""Shared pieces of the segmentation attacks: the result record, input validation, IoU with a target, the base class.

Shapes: images ``[B, C, *spatial]`` (2D or 3D), label maps ``[B, 1, *spatial]`` of class indices, logits
``[B, K, *spatial]``. Perturbation norms are in the image's own intensity units (images in [0, 1] -> Linf 8/255 etc.).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from monai.metrics import compute_iou
from monai.networks.utils import one_hot

__all__ = [
    "AttackResult",
    "SegmentationAttack",
    "active_set_loop",
    "attack_param",
    "foreground_iou",
    "perturbation_norms",
    "validate_attack_inputs",
]


@dataclass
class AttackResult:
    """What an attack returns.

    Attributes:
        adversarial: ``[B, C, *spatial]`` adversarial images (same dtype and device as the input, detached).
        iterations: ``[B]`` int64, gradient steps taken per sample (0 when the stopping criterion held at the start).
        target_iou: ``[B]`` float, mean foreground IoU of the final prediction with ``target`` (for untargeted attacks
            ``target`` is the true label, so lower means more successful).
        l2: ``[B]`` float, L2 norm of the perturbation over all channels and voxels.
        linf: ``[B]`` float, Linf norm of the perturbation.
        seconds: wall time of the attack for the whole batch.
        params: the attack's parameters (JSON-serialisable), for reports.
    """

    adversarial: torch.Tensor
    iterations: torch.Tensor
    target_iou: torch.Tensor
    l2: torch.Tensor
    linf: torch.Tensor
    seconds: float
    params: dict = field(default_factory=dict)

    def per_sample(self) -> list[dict[str, float]]:
        """One JSON-ready dict per sample: iterations, target_iou, l2, linf."""
        return [
            {
                "iterations": int(self.iterations[i]),
                "target_iou": float(self.target_iou[i]),
                "l2": float(self.l2[i]),
                "linf": float(self.linf[i]),
            }
            for i in range(self.adversarial.shape[0])
        ]


def foreground_iou(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per-sample mean IoU over the foreground classes ``1..num_classes-1`` (MONAI ``compute_iou``).

    A class absent from both maps counts as IoU 1 and a class present in only one as 0, so a target that erases every
    structure is reached exactly when nothing is predicted. With two classes this is the foreground IoU that
    Ozbulak et al. (2019) report.

    Args:
        pred: ``[B, 1, *spatial]`` predicted class indices.
        target: ``[B, 1, *spatial]`` class indices.
        num_classes: K >= 2.

    Returns:
        ``[B]`` float32 IoU in [0, 1].
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2 for a foreground IoU, got {num_classes}")
    iou = compute_iou(
        one_hot(pred.long(), num_classes),
        one_hot(target.long(), num_classes),
        include_background=False,
        ignore_empty=False,
    )
    return iou.float().mean(dim=1)


def perturbation_norms(adversarial: torch.Tensor, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample ``(L2, Linf)`` norms ``[B]`` of ``adversarial - images`` (float32)."""
    delta = (adversarial - images).detach().flatten(1).float()
    return delta.norm(p=2, dim=1), delta.abs().amax(dim=1)


def validate_attack_inputs(model: torch.nn.Module, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Check shapes and values before any iteration; return the clean logits ``[B, K, *spatial]`` (no grad).

    Raises:
        TypeError: ``images``/``target`` not tensors, non-float images, non-integral target values.
        ValueError: wrong ranks or shapes, NaN/Inf in the images, a model output that is not ``[B, K>=2, *spatial]``,
            target classes outside ``0..K-1``.
    """
    if not isinstance(images, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise TypeError(
            f"images and target must be torch tensors, got {type(images).__name__}, {type(target).__name__}"
        )
    if not images.is_floating_point():
        raise TypeError(f"images must be a floating point tensor, got dtype {images.dtype}")
    if images.ndim not in (4, 5):
        raise ValueError(f"images must be [B, C, H, W] or [B, C, H, W, D], got shape {tuple(images.shape)}")
    expected = (images.shape[0], 1, *images.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(
            f"target must have shape [B, 1, *spatial] = {expected} to match images, got {tuple(target.shape)}"
        )
    if not torch.isfinite(images).all():
        raise ValueError("images contain NaN or Inf values")
    if target.is_floating_point() and not torch.equal(target, target.round()):
        raise TypeError("target must hold integral class indices")
    with torch.no_grad():
        logits = model(images)
    if not isinstance(logits, torch.Tensor):
        raise ValueError(f"model must return a logits tensor, got {type(logits).__name__}")
    if (
        logits.ndim != images.ndim
        or logits.shape[0] != images.shape[0]
        or logits.shape[2:] != images.shape[2:]
        or logits.shape[1] < 2
    ):
        raise ValueError(
            f"model must return logits [B, K>=2, *spatial] = [{images.shape[0]}, K, "
            f"{', '.join(map(str, images.shape[2:]))}], got {tuple(logits.shape)}"
        )
    if int(target.min()) < 0 or int(target.max()) >= logits.shape[1]:
        raise ValueError(
            f"target classes must lie in 0..{logits.shape[1] - 1} (model has {logits.shape[1]} classes), "
            f"got range {int(target.min())}..{int(target.max())}"
        )
    return logits


def active_set_loop(
    model: torch.nn.Module,
    images: torch.Tensor,
    max_iter: int,
    progress: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, Any]],
    step: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, Any], torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient iterations in which every sample stops on its own (the loop of ASMA and DAG).

    Each round runs ``model`` on the still-active samples ``x = adversarial[active]`` (``active``: their indices in
    the batch, ``x`` requires grad), asks ``progress(out, active) -> (going [b] bool, aux)`` which of them go on,
    and stops when none does or after ``max_iter`` steps; otherwise ``step(x, out, active, aux)`` returns the next
    iterate of those samples (``[b, C, *spatial]``), kept for the ones that go on. A batch gives each sample
    exactly what it gets alone.

    Returns:
        ``(adversarial [B, C, *spatial], iterations [B] int64)``: the last iterates and the steps taken per sample.
    """
    adversarial = images.clone()
    iterations = torch.zeros(images.shape[0], dtype=torch.long, device=images.device)
    active = torch.arange(images.shape[0], device=images.device)
    with torch.enable_grad():
        for round_ in range(max_iter + 1):
            x = adversarial[active].requires_grad_(True)
            out = model(x)
            going, aux = progress(out, active)
            if round_ == max_iter or not bool(going.any()):
                break
            new = step(x, out, active, aux)
            active = active[going]
            adversarial[active] = new[going]
            iterations[active] += 1
    return adversarial, iterations


def attack_param(
    default: Any,
    convert: Callable[[Any], Any] = float,
    check: Callable[[Any], bool] | None = None,
    expect: str = "",
    optional: bool = False,
    kw_only: bool = False,
) -> Any:
    """Declare an attack parameter (as IBM ART's ``attack_params``): a dataclass field checked at construction.

    The value given to the constructor is passed through ``convert``; unless it is ``None`` with ``optional=True``,
    ``check(converted)`` must hold, else ``ValueError("<name> must be <expect>, got <value>")``. Every declared
    parameter appears in :meth:`SegmentationAttack.params`.
    """
    metadata = {"convert": convert, "check": check, "expect": expect, "optional": optional}
    return field(default=default, kw_only=kw_only, metadata=metadata)


def _clip(clip: Sequence[float] | None) -> tuple[float, float] | None:
    return None if clip is None else (float(clip[0]), float(clip[1]))


@dataclass(eq=False)
class SegmentationAttack(ABC):
    """Base class: declared parameters, validation, seeding, timing and norms around :meth:`_attack`.

    Subclasses are dataclasses declaring their parameters with :func:`attack_param` and implement
    ``_attack(model, images, target, logits) -> (adversarial, iterations)``; :meth:`params` lists every declared
    parameter. ``clip`` and ``seed`` (keyword-only) are common to all: ``clip`` is the box of valid intensities
    (``None`` for none), ``seed`` fixes torch's global generator for the duration of the attack (inside
    ``torch.random.fork_rng``, so the caller's state is untouched): random starts and randomised models or
    defenses (EOT) then give the same bytes on every run.
    """

    targeted = True  # a class attribute (not a field) here; PGD declares it as a parameter

    clip: tuple[float, float] | None = attack_param(
        (0.0, 1.0), _clip, lambda c: c[0] < c[1], "(low, high) with low < high", optional=True, kw_only=True
    )
    seed: int = attack_param(0, int, kw_only=True)

    def __post_init__(self) -> None:
        for spec in fields(self):
            given = getattr(self, spec.name)
            if given is None and spec.metadata["optional"]:
                continue
            value = spec.metadata["convert"](given)
            check = spec.metadata["check"]
            if check is not None and not check(value):
                raise ValueError(f"{spec.name} must be {spec.metadata['expect']}, got {given!r}")
            setattr(self, spec.name, value)

    def params(self) -> dict:
        """JSON-serialisable parameters of the attack: its name, then every declared parameter in order."""
        return {"name": type(self).__name__, **{spec.name: getattr(self, spec.name) for spec in fields(self)}}

    def _box(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.clip is None else x.clamp(*self.clip)

    @abstractmethod
    def _attack(
        self, model: torch.nn.Module, images: torch.Tensor, target: torch.Tensor, logits: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(adversarial [B, C, *spatial], iterations [B])`` for validated inputs and clean ``logits``."""

    def __call__(self, model: torch.nn.Module, images: torch.Tensor, target: torch.Tensor) -> AttackResult:
        """Attack ``model`` on ``images`` ``[B, C, *spatial]`` towards (targeted) or away from (untargeted) ``target``.

        ``target`` is ``[B, 1, *spatial]`` class indices: the adversarial mask for targeted attacks, the true label
        for untargeted ones. Inputs are validated before the first iteration.
        """
        images = torch.as_tensor(images).as_subclass(torch.Tensor).detach()
        target = torch.as_tensor(target, device=images.device).as_subclass(torch.Tensor).detach()
        start = time.perf_counter()
        devices = [images.device.index or 0] if images.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed)
            logits = validate_attack_inputs(model, images, target)
            num_classes = logits.shape[1]
            adversarial, iterations = self._attack(model, images, target.long(), logits)
            adversarial = adversarial.detach()
            with torch.no_grad():
                pred = model(adversarial).argmax(dim=1, keepdim=True)
        l2, linf = perturbation_norms(adversarial, images)
        return AttackResult(
            adversarial=adversarial,
            iterations=iterations.cpu().long(),
            target_iou=foreground_iou(pred, target, num_classes).cpu(),
            l2=l2.cpu(),
            linf=linf.cpu(),
            seconds=time.perf_counter() - start,
            params=self.params(),
        )
