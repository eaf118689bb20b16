"""Adversarial attacks on 2D/3D segmentation networks (logits ``[B, K, *spatial]``), batched and seeded.

Targeted: :class:`ASMA` (Ozbulak et al. 2019), :class:`DAG` (Xie et al. 2017); targeted or untargeted, Linf or L2:
:class:`PGD`, :class:`FGSM`; adaptive wrappers against a defense: :class:`BPDA`, :class:`EOT`. Target-mask generators
live in :mod:`medsecure_transforms.attacks.targets`.

Names are imported from their modules on first use (PEP 562), so the torch-free ``presets`` module loads in
milliseconds: the ``medsecure`` command line builds its ``--help`` from it without importing torch or MONAI.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BPDA": "adaptive",
    "EOT": "adaptive",
    "apply_defense": "adaptive",
    "ASMA": "asma",
    "asma_objective": "asma",
    "AttackResult": "base",
    "SegmentationAttack": "base",
    "active_set_loop": "base",
    "attack_param": "base",
    "foreground_iou": "base",
    "perturbation_norms": "base",
    "validate_attack_inputs": "base",
    "DAG": "dag",
    "dag_active_pixels": "dag",
    "FGSM": "gradient",
    "PGD": "gradient",
    "project": "gradient",
    "ASMA_PRESETS": "presets",
    "ASMAParams": "presets",
    "asma_preset": "presets",
}
"""Public name -> module of this package defining it."""

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
