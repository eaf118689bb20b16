"""ROC analysis of a detector's scores: clean inputs are the negatives, adversarial inputs the positives, and an input
is flagged when its score is above a threshold (higher score = more suspicious)."""

from __future__ import annotations

import numpy as np
import torch
from monai.metrics import compute_roc_auc

__all__ = ["roc_auc", "roc_points"]


def roc_points(clean: np.ndarray, adversarial: np.ndarray) -> tuple[list[float], list[float]]:
    """ROC curve ``(fpr, tpr)`` from scores ``[n_clean]`` and ``[n_adversarial]``, starting at ``(0, 0)``.

    One point per distinct threshold (tied scores enter together), so the trapezoidal area under the points is the
    tie-corrected AUC.
    """
    clean, adversarial = np.asarray(clean), np.asarray(adversarial)
    scores = np.concatenate([clean, adversarial])
    positive = np.concatenate([np.zeros(len(clean)), np.ones(len(adversarial))])
    order = np.argsort(-scores, kind="stable")
    tp, fp = np.cumsum(positive[order]), np.cumsum(1 - positive[order])
    keep = np.r_[np.diff(scores[order]) != 0, True]
    return [0.0, *(fp[keep] / len(clean)).tolist()], [0.0, *(tp[keep] / len(adversarial)).tolist()]


def roc_auc(clean: torch.Tensor | np.ndarray, adversarial: torch.Tensor | np.ndarray) -> float:
    """Area under the ROC curve (MONAI ``compute_roc_auc``): the probability that an adversarial score is above a
    clean one, ties counting one half."""
    scores = torch.cat([torch.as_tensor(clean), torch.as_tensor(adversarial)]).double()
    labels = torch.cat([torch.zeros(len(clean)), torch.ones(len(adversarial))]).double()
    return float(compute_roc_auc(scores, labels))
