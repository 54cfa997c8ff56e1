"""Multi-label metrics (sklearn), threshold tuning on the validation fold, and bootstrap confidence intervals."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.metrics import f1_score, jaccard_score, roc_auc_score


def _valid_columns(y: np.ndarray) -> np.ndarray:
    """Labels with both classes present (AUROC is undefined otherwise)."""
    pos = y.sum(0)
    return (pos > 0) & (pos < y.shape[0])


def macro_auroc(y: np.ndarray, scores: np.ndarray) -> float:
    cols = _valid_columns(y)
    if not cols.any():
        return float("nan")
    return float(roc_auc_score(y[:, cols], scores[:, cols], average="macro"))


def micro_auroc(y: np.ndarray, scores: np.ndarray) -> float:
    if y.sum() == 0 or y.sum() == y.size:
        return float("nan")
    return float(roc_auc_score(y, scores, average="micro"))


def per_label_auroc(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(L,) AUROC per label; NaN where a label has only one class in ``y``."""
    out = np.full(y.shape[1], np.nan)
    for j in np.flatnonzero(_valid_columns(y)):
        out[j] = roc_auc_score(y[:, j], scores[:, j])
    return out


def tune_thresholds(y: np.ndarray, probs: np.ndarray, grid: np.ndarray | None = None) -> np.ndarray:
    """Per-label threshold maximising that label's F1 on (validation) data; 0.5 for labels without positives."""
    grid = np.linspace(0.02, 0.98, 49) if grid is None else grid
    out = np.full(y.shape[1], 0.5)
    for j in range(y.shape[1]):
        if y[:, j].sum() == 0:
            continue
        f1s = [f1_score(y[:, j], probs[:, j] >= t, zero_division=0) for t in grid]
        out[j] = float(grid[int(np.argmax(f1s))])
    return out


def threshold_metrics(y: np.ndarray, probs: np.ndarray, thresholds: np.ndarray) -> dict[str, float]:
    """micro / macro F1 and sample-wise Jaccard at the given per-label thresholds."""
    pred = (probs >= thresholds[None, :]).astype(int)
    # an all-zero extra label changes no label set but keeps sklearn in multilabel mode when L == 1
    pad = np.zeros((y.shape[0], 1), dtype=int)
    return {
        "micro_f1": float(f1_score(y, pred, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(y, pred, average="macro", zero_division=0)),
        "sample_jaccard": float(
            jaccard_score(np.hstack([y, pad]), np.hstack([pred, pad]), average="samples", zero_division=0)
        ),
    }


def all_metrics(y: np.ndarray, probs: np.ndarray, thresholds: np.ndarray) -> dict[str, float]:
    return {
        "macro_auroc": macro_auroc(y, probs),
        "micro_auroc": micro_auroc(y, probs),
        **threshold_metrics(y, probs, thresholds),
    }


def bootstrap_ci(
    y: np.ndarray,
    probs: np.ndarray,
    metric: Callable[[np.ndarray, np.ndarray], dict[str, float]],
    n_boot: int = 200,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap over records: {metric name: (low, high)} of the (1 - alpha) interval."""
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    n = y.shape[0]
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        for k, v in metric(y[idx], probs[idx]).items():
            draws.setdefault(k, []).append(v)
    return {
        k: (float(np.nanpercentile(v, 100 * alpha / 2)), float(np.nanpercentile(v, 100 * (1 - alpha / 2))))
        for k, v in draws.items()
    }
