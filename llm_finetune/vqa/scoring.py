"""ECG-QA's official metric and its breakdowns.

The official metric (Oh et al. 2023, ``llm_modeling.py`` of the ECG-QA repository) is exact match of the
answer **set**: order and duplicates do not matter, an empty gold answer means ``{"none"}``, comparison is
case-insensitive. On top of it this module reports, per group (overall, question type, attribute type,
template): accuracy with a percentile-bootstrap 95 % CI, and for query question types the set-based
precision / recall / F1 (sample-averaged).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from encoder.ecgqa.templates import QUESTION_TYPES  # ECG-QA's seven question types, in the paper's order

ATTRIBUTE_TYPES: tuple[str, ...] = (
    "scp_code",
    "noise",
    "stage_of_infarction",
    "extra_systole",
    "heart_axis",
    "numeric_feature",
)


def answer_set(answers: Iterable[str] | str | None, *, empty_is_none: bool = True) -> frozenset[str]:
    """Lower-cased, stripped answer set; an empty gold answer is ``{"none"}`` as in ECG-QA."""
    if answers is None:
        answers = []
    if isinstance(answers, str):
        answers = [answers]
    s = frozenset(a.strip().lower() for a in answers if a and a.strip())
    if not s and empty_is_none:
        return frozenset({"none"})
    return s


def exact_match(pred: Iterable[str] | str | None, gold: Iterable[str] | str | None) -> bool:
    """ECG-QA exact match: the predicted answer set equals the gold set (an empty prediction is wrong)."""
    return answer_set(pred, empty_is_none=False) == answer_set(gold)


def set_prf(pred: Iterable[str] | str | None, gold: Iterable[str] | str | None) -> tuple[float, float, float]:
    """Precision, recall, F1 of one predicted answer set against the gold set (0 where undefined)."""
    p, g = answer_set(pred, empty_is_none=False), answer_set(gold)
    tp = len(p & g)
    precision = tp / len(p) if p else 0.0
    recall = tp / len(g) if g else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def bootstrap_ci(
    values: Sequence[float] | np.ndarray, *, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """Percentile-bootstrap CI of the mean of ``values`` (resampling items with replacement)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, v.size, size=(n_boot, v.size))  # (n_boot, n)
    means = v[idx].mean(axis=1)  # (n_boot,)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


@dataclass
class ScoredItem:
    """One question's score."""

    sample_id: int
    question_type: str
    attribute_type: str
    template_id: int
    correct: bool
    precision: float
    recall: float
    f1: float
    answered: bool = True
    """False where the system abstained (only the aux-head answerer does); abstentions score as wrong."""


def score_item(record: dict, pred: Iterable[str] | None, *, answered: bool = True) -> ScoredItem:
    """Score one prediction against one ECG-QA record (needs ``answer`` and the type fields)."""
    p, r, f = set_prf(pred, record["answer"])
    return ScoredItem(
        sample_id=int(record.get("sample_id", -1)),
        question_type=str(record.get("question_type", "")),
        attribute_type=str(record.get("attribute_type", "")),
        template_id=int(record.get("template_id", -1)),
        correct=answered and exact_match(pred, record["answer"]),
        precision=p if answered else 0.0,
        recall=r if answered else 0.0,
        f1=f if answered else 0.0,
        answered=answered,
    )


def _group_metrics(items: list[ScoredItem], *, n_boot: int, seed: int, with_prf: bool) -> dict:
    acc = np.array([it.correct for it in items], dtype=np.float64)
    lo, hi = bootstrap_ci(acc, n_boot=n_boot, seed=seed)
    out = {"n": len(items), "accuracy": float(acc.mean()), "ci95": [lo, hi]}
    answered = np.array([it.answered for it in items])
    if not answered.all():
        out["coverage"] = float(answered.mean())
        out["accuracy_answered"] = float(acc[answered].mean()) if answered.any() else float("nan")
    if with_prf:
        for key in ("precision", "recall", "f1"):
            out[key] = float(np.mean([getattr(it, key) for it in items]))
    return out


def summarize(items: Sequence[ScoredItem], *, n_boot: int = 1000, seed: int = 0) -> dict:
    """Overall / per question type / per attribute type / per template metrics of scored items."""
    items = list(items)
    if not items:
        return {"overall": {"n": 0, "accuracy": float("nan"), "ci95": [float("nan")] * 2}}
    out: dict = {"overall": _group_metrics(items, n_boot=n_boot, seed=seed, with_prf=True)}
    for key in ("question_type", "attribute_type", "template_id"):
        groups: dict = defaultdict(list)
        for it in items:
            groups[getattr(it, key)].append(it)
        out[f"by_{key}"] = {
            str(k): _group_metrics(g, n_boot=n_boot, seed=seed, with_prf=str(k).endswith("query"))
            for k, g in sorted(groups.items(), key=lambda kv: _type_order(kv[0]))
        }
    return out


def _type_order(key) -> tuple:
    order = {t: i for i, t in enumerate(QUESTION_TYPES + ATTRIBUTE_TYPES)}
    return (order.get(key, len(order)), str(key) if not isinstance(key, int) else f"{key:06d}")
