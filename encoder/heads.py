"""Heads on the pooled ECG embedding: the per-label (BCE) classifier, a linear probe, zero-shot scoring, calibration.

The classifier itself is ``EcgEncoder.classifier`` (so it ships with the encoder); it is trained either jointly
with the contrastive loss (``loss = contrastive + λ · BCE``) or afterwards as a linear probe on frozen embeddings.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def classifier_loss(
    logits: torch.Tensor, labels: torch.Tensor, pos_weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-label binary cross-entropy, mean over (B, L)."""
    return F.binary_cross_entropy_with_logits(logits.float(), labels.float(), pos_weight=pos_weight)


def fit_linear_probe(
    classifier: nn.Linear,
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    epochs: int = 200,
    lr: float = 1e-2,
    weight_decay: float = 1e-4,
) -> nn.Linear:
    """Train ``classifier`` (D -> L) in place on frozen embeddings (N, D) with full-batch AdamW + BCE."""
    x = embeddings.detach().float()
    y = labels.detach().float()
    opt = torch.optim.AdamW(classifier.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(epochs):
        opt.zero_grad()
        classifier_loss(classifier(x), y).backward()
        opt.step()
    return classifier


class ZeroShotScorer:
    """Cosine similarity of ECG embeddings with each label's text embedding -> (B, L) scores."""

    def __init__(self, label_embeddings: torch.Tensor, label_names: list[str]) -> None:
        self.label_embeddings = F.normalize(label_embeddings.float(), dim=-1)  # (L, D)
        self.label_names = list(label_names)

    def __call__(self, ecg_embeddings: torch.Tensor) -> torch.Tensor:
        return F.normalize(ecg_embeddings.float(), dim=-1) @ self.label_embeddings.t()  # (B, L)


def fit_temperature(logits: np.ndarray, labels: np.ndarray, grid: np.ndarray | None = None) -> list[float]:
    """Per-label temperature T minimising the validation BCE of ``sigmoid(logit / T)`` (grid search, robust)."""
    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 81)) if grid is None else grid
    lt = torch.from_numpy(np.asarray(logits, dtype=np.float64))  # (N, L)
    y = torch.from_numpy(np.asarray(labels, dtype=np.float64))
    temps = []
    for j in range(lt.shape[1]):
        losses = [F.binary_cross_entropy_with_logits(lt[:, j] / t, y[:, j]).item() for t in grid]
        temps.append(float(grid[int(np.argmin(losses))]))
    return temps


def logit(p: float, eps: float = 1e-6) -> float:
    """log(p / (1 - p)) with p clipped to [eps, 1 - eps]."""
    p = min(max(float(p), eps), 1 - eps)
    return float(np.log(p / (1 - p)))


def decision_log_odds(prob: float, threshold: float, logit_shift: float | None = None) -> float:
    """How far one label's calibrated probability is past its decision point, in log-odds (positive: yes), by the
    rule of :func:`label_verdict`."""
    if logit_shift is not None:
        return logit(prob) + logit_shift
    return logit(prob) - logit(threshold)


def label_verdict(prob: float, threshold: float, logit_shift: float | None = None) -> bool:
    """Yes/no on one label from its calibrated probability: log-odds moved by ``logit_shift`` above 0 when a
    shift is given (a prior-shift correction), else ``prob >= threshold``."""
    if logit_shift is not None:
        return logit(prob) + logit_shift > 0
    return prob >= threshold
