"""Adversarial attacks on 2D/3D segmentation networks (logits ``[B, K, *spatial]``), batched and seeded.

Targeted: :class:`ASMA` (Ozbulak et al. 2019), :class:`DAG` (Xie et al. 2017); targeted or untargeted, Linf or L2:
:class:`PGD`, :class:`FGSM`; adaptive wrappers against a defense: :class:`BPDA`, :class:`EOT`. Target-mask generators
live in :mod:`medsecure_transforms.attacks.targets`.
"""

from .adaptive import BPDA, EOT, apply_defense
from .asma import ASMA, asma_objective
from .base import (
    AttackResult,
    SegmentationAttack,
    active_set_loop,
    attack_param,
    foreground_iou,
    perturbation_norms,
    validate_attack_inputs,
)
from .dag import DAG, dag_active_pixels
from .gradient import FGSM, PGD, project
from .presets import ASMA_PRESETS, ASMAParams, asma_preset

__all__ = [
    "ASMA",
    "ASMA_PRESETS",
    "ASMAParams",
    "BPDA",
    "DAG",
    "EOT",
    "FGSM",
    "PGD",
    "AttackResult",
    "SegmentationAttack",
    "active_set_loop",
    "apply_defense",
    "asma_preset",
    "asma_objective",
    "attack_param",
    "dag_active_pixels",
    "foreground_iou",
    "perturbation_norms",
    "project",
    "validate_attack_inputs",
]
