"""Named ASMA schedules: the one place for the settings the CLI, the studies and the benchmarks use.

``docs/attacks.md`` explains where each number comes from. Build an attack with
``asma_preset("small_steps", max_iter=500)``: the preset's values, then any explicit overrides (``seed``, ``clip``
and every :class:`ASMA` argument).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .asma import ASMA

__all__ = ["ASMA_PRESETS", "ASMAParams", "asma_preset"]


@dataclass(frozen=True)
class ASMAParams:
    """One ASMA schedule: at most ``max_iter`` steps of multiplier ``beta * IoU + tau``, stopping at ``target_iou``.

    ``max_linf`` is the Linf budget in image units (``None``: only the [0, 1] box). ``description`` says what the
    schedule is and where its numbers come from.
    """

    max_iter: int
    beta: float
    tau: float
    target_iou: float
    max_linf: float | None
    description: str

    def attack_kwargs(self) -> dict:
        """The :class:`ASMA` keyword arguments (everything but ``description``)."""
        return {k: v for k, v in asdict(self).items() if k != "description"}


ASMA_PRESETS: dict[str, ASMAParams] = {
    "authors": ASMAParams(
        max_iter=2500,
        beta=1e-6,
        tau=1e-7,
        target_iou=0.8,
        max_linf=None,
        description="Ozbulak et al.'s released code: 2500 steps of beta 1e-6, tau 1e-7, box only. On our bundles' "
        "logit scale no target pixel flips in 100 steps (docs/attacks.md): hours per image on a CPU. "
        "`medsecure evaluate --attack-preset authors`.",
    ),
    "authors_x1000": ASMAParams(
        max_iter=150,
        beta=1e-3,
        tau=1e-4,
        target_iou=0.8,
        max_linf=8 / 255,
        description="The authors' multipliers x1000 (same schedule shape) in an 8/255 Linf ball, 150 steps: the "
        "setting of results/attacks/fundus_asma, `medsecure demo` (60 steps) and `medsecure evaluate` (seconds per "
        "256x256 image on a CPU; docs/attacks.md, docs/evaluation.md).",
    ),
    "small_steps": ASMAParams(
        max_iter=200,
        beta=5e-4,
        tau=5e-5,
        target_iou=0.9,
        max_linf=8 / 255,
        description="Many small steps like the authors', shortened for a CPU: 200 x beta 5e-4, tau 5e-5 in 8/255, "
        "mean target IoU 0.93 on Drishti-GS1 (results/fr/README.md). Default of FR calibration and reproduction.",
    ),
    "coarse": ASMAParams(
        max_iter=10,
        beta=1e-2,
        tau=1e-3,
        target_iou=0.9,
        max_linf=8 / 255,
        description="10 large steps (beta 1e-2, tau 1e-3) in 8/255: the earlier FR setting, hits the budget at once "
        "and reaches the target poorly (mean target IoU 0.22; results/fr/README.md).",
    ),
}


def asma_preset(name: str, **overrides) -> ASMA:
    """:class:`ASMA` with the schedule of ``ASMA_PRESETS[name]``, each keyword in ``overrides`` replacing a value."""
    if name not in ASMA_PRESETS:
        raise ValueError(f"unknown ASMA preset {name!r}; choose one of {sorted(ASMA_PRESETS)}")
    from .asma import ASMA  # here: this module stays torch-free for the command line's --help

    return ASMA(**(ASMA_PRESETS[name].attack_kwargs() | overrides))
