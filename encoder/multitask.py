"""Stage 1's multi-task aux head: ECG-QA attributes beyond SCP codes, learnt from :class:`EcgAttributes`.

One registry of tasks (:data:`AUX_TASKS`); each task turns a list of attributes into a target (N, K) and a mask
(N, K) (0 where the record's ``available`` lacks the group or the value is unknown), has one linear output of
width K on the pooled embedding, and one masked loss. Entry points: :func:`build_targets`, :class:`AuxHead`,
:func:`aux_loss`, :func:`fit_thresholds`, :func:`task_metrics`, :func:`refit_numeric_head`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, roc_auc_score
from torch import nn

from encoder.ecgqa.attributes import (
    AXIS_CLASSES,
    EXTRA_SYSTOLE_TYPES,
    FORM_LEAD_CODES,
    INFARCTION_STAGES,
    LEADS,
    NOISE_TYPES,
    NORMAL_RANGES_MS,
    NUMERIC_FEATURES,
    EcgAttributes,
)

if TYPE_CHECKING:
    from encoder.datasets.cache import CachedEcgDataset
    from encoder.modeling import EcgEncoder

TaskKind = Literal["sigmoid", "softmax", "regression"]
Target = tuple[list[float], list[float]]  # (values (K,), mask (K,)) of one record


@dataclass(frozen=True)
class AuxTask:
    """One head: its output width, loss kind and how one record's attributes become (target, mask)."""

    name: str
    kind: TaskKind
    width: int
    target: Callable[[EcgAttributes], Target]


def _noise(a: EcgAttributes) -> Target:
    """(4 types + any) × 12 leads, row-major."""
    rows = [a.noise.get(t, (False,) * len(LEADS)) for t in NOISE_TYPES] + [a.noisy_leads()]
    on = float("noise" in a.available)
    return [float(x) for r in rows for x in r], [on] * (len(rows) * len(LEADS))


def _extra_systole(a: EcgAttributes) -> Target:
    on = float("extra_systole" in a.available)
    return [float(t in a.extra_systoles) for t in EXTRA_SYSTOLE_TYPES], [on] * len(EXTRA_SYSTOLE_TYPES)


def _one_hot(value: str | None, classes: Sequence[str], known: bool) -> Target:
    hot = [float(value == c) for c in classes]
    return hot, [float(known and value in classes)] * len(classes)


def _heart_axis(a: EcgAttributes) -> Target:
    return _one_hot(a.heart_axis, AXIS_CLASSES, "heart_axis" in a.available)


INFARCTION_CLASSES: tuple[str, ...] = ("none", *INFARCTION_STAGES)


def _infarction(a: EcgAttributes) -> Target:
    stage = a.infarction_stage or "none"
    return _one_hot(stage, INFARCTION_CLASSES, "stage_of_infarction" in a.available)


def _pacemaker(a: EcgAttributes) -> Target:
    return [float(a.pacemaker)], [float("pacemaker" in a.available)]


def _form_leads(a: EcgAttributes) -> Target:
    """13 codes × 12 leads; a code's row counts only for records that have that code."""
    on = "form_leads" in a.available
    values, mask = [], []
    for code in FORM_LEAD_CODES:
        leads = a.form_leads.get(code)
        values += [float(x) for x in (leads or (False,) * len(LEADS))]
        mask += [float(on and leads is not None)] * len(LEADS)
    return values, mask


def numeric_scale(feature: str) -> tuple[float, float]:
    """(centre, scale) in ms normalising a feature: the normal range's middle and width."""
    low, high = NORMAL_RANGES_MS[feature]
    low = 0.0 if low is None else low
    return (low + high) / 2, high - low


def _numeric(a: EcgAttributes) -> Target:
    """6 features × (min, max), normalised by :func:`numeric_scale`."""
    on = "numeric_feature" in a.available
    values, mask = [], []
    for feature in NUMERIC_FEATURES:
        centre, scale = numeric_scale(feature)
        for v in a.numeric_ms.get(feature, (math.nan, math.nan)):
            ok = on and not math.isnan(v)
            values.append((v - centre) / scale if ok else 0.0)
            mask.append(float(ok))
    return values, mask


AUX_TASKS: dict[str, AuxTask] = {
    t.name: t
    for t in (
        AuxTask("noise", "sigmoid", (len(NOISE_TYPES) + 1) * len(LEADS), _noise),
        AuxTask("extra_systole", "sigmoid", len(EXTRA_SYSTOLE_TYPES), _extra_systole),
        AuxTask("heart_axis", "softmax", len(AXIS_CLASSES), _heart_axis),
        AuxTask("stage_of_infarction", "softmax", len(INFARCTION_CLASSES), _infarction),
        AuxTask("pacemaker", "sigmoid", 1, _pacemaker),
        AuxTask("form_leads", "sigmoid", len(FORM_LEAD_CODES) * len(LEADS), _form_leads),
        AuxTask("numeric_feature", "regression", 2 * len(NUMERIC_FEATURES), _numeric),
    )
}
"""Task name -> task; the names are :data:`encoder.ecgqa.attributes.ATTRIBUTE_GROUPS` (one head per group)."""


def check_tasks(names: Sequence[str]) -> None:
    unknown = [n for n in names if n not in AUX_TASKS]
    if unknown:
        from encoder.errors import ConfigError

        raise ConfigError(f"Unknown aux task(s) {unknown}; choose from {sorted(AUX_TASKS)}.")


def build_targets(
    attributes: Sequence[EcgAttributes], tasks: Sequence[str]
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Task -> (target (N, K) float, mask (N, K) float) for the records in order."""
    check_tasks(tasks)
    out = {}
    for name in tasks:
        pairs = [AUX_TASKS[name].target(a) for a in attributes]
        values = torch.tensor([p[0] for p in pairs], dtype=torch.float32).reshape(len(pairs), -1)
        mask = torch.tensor([p[1] for p in pairs], dtype=torch.float32).reshape(len(pairs), -1)
        out[name] = (values, mask)
    return out


class AuxHead(nn.Module):
    """One linear output per task on the pooled embedding: (B, D) -> {task: (B, K)}."""

    def __init__(self, embed_dim: int, tasks: Sequence[str]) -> None:
        super().__init__()
        check_tasks(tasks)
        self.heads = nn.ModuleDict({n: nn.Linear(embed_dim, AUX_TASKS[n].width) for n in tasks})

    def forward(self, embedding: torch.Tensor) -> dict[str, torch.Tensor]:
        return {n: head(embedding) for n, head in self.heads.items()}


def task_loss(name: str, logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked loss of one task (0 with no gradient to masked entries; 0 when everything is masked)."""
    kind = AUX_TASKS[name].kind
    logits, target, mask = logits.float(), target.float(), mask.float()
    if kind == "softmax":
        row = mask[:, 0]  # (B,)
        ce = F.cross_entropy(logits, target.argmax(dim=1), reduction="none")  # (B,)
        return (ce * row).sum() / row.sum().clamp(min=1.0)
    if kind == "sigmoid":
        per = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    else:
        per = F.smooth_l1_loss(logits, target, reduction="none")
    return (per * mask).sum() / mask.sum().clamp(min=1.0)


def aux_loss(
    logits: dict[str, torch.Tensor],
    targets: dict[str, tuple[torch.Tensor, torch.Tensor]],
    weights: dict[str, float] | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of the task losses (weight 1 unless given) and each task's value for logging."""
    weights = weights or {}
    total = next(iter(logits.values())).new_zeros((), dtype=torch.float32)
    parts = {}
    for name, out in logits.items():
        loss = task_loss(name, out, *targets[name])
        parts[name] = float(loss.detach())
        total = total + weights.get(name, 1.0) * loss
    return total, parts


def probabilities(name: str, logits: torch.Tensor) -> torch.Tensor:
    """Task outputs as probabilities (sigmoid / softmax) or normalised values (regression)."""
    kind = AUX_TASKS[name].kind
    if kind == "sigmoid":
        return torch.sigmoid(logits.float())
    if kind == "softmax":
        return torch.softmax(logits.float(), dim=-1)
    return logits.float()


def fit_thresholds(probs: np.ndarray, target: np.ndarray, mask: np.ndarray) -> list[float]:
    """Per-output threshold maximising F1 on the validation fold (0.5 where an output has no positives)."""
    grid = np.linspace(0.05, 0.95, 19)
    out = []
    for j in range(probs.shape[1]):
        keep = mask[:, j] > 0
        y, p = target[keep, j] > 0.5, probs[keep, j]
        if y.sum() == 0 or y.all():
            out.append(0.5)
            continue
        scores = [f1_score(y, p >= t, zero_division=0) for t in grid]
        out.append(float(grid[int(np.argmax(scores))]))
    return out


def task_metrics(name: str, probs: np.ndarray, target: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Fold metrics of one task: macro AUROC (sigmoid), accuracy (softmax), MAE in ms (regression)."""
    kind = AUX_TASKS[name].kind
    if kind == "softmax":
        keep = mask[:, 0] > 0
        if not keep.any():
            return {"n": 0}
        acc = accuracy_score(target[keep].argmax(1), probs[keep].argmax(1))
        return {"accuracy": float(acc), "n": int(keep.sum())}
    if kind == "sigmoid":
        aucs = []
        for j in range(probs.shape[1]):
            keep = mask[:, j] > 0
            y = target[keep, j] > 0.5
            if 0 < y.sum() < len(y):
                aucs.append(roc_auc_score(y, probs[keep, j]))
        return {"macro_auroc": float(np.mean(aucs)) if aucs else float("nan"), "outputs_scored": len(aucs)}
    scales = np.repeat([numeric_scale(f)[1] for f in NUMERIC_FEATURES], 2)
    keep = mask > 0
    if not keep.any():
        return {"n": 0}
    mae = mean_absolute_error((target * scales)[keep], (probs * scales)[keep])
    return {"mae_ms": float(mae), "n": int(keep.sum())}


def decode(probs: dict[str, np.ndarray], thresholds: dict[str, list[float]] | None = None) -> EcgAttributes:
    """One record's task outputs ({task: (K,)}) -> the predicted :class:`EcgAttributes`; only the groups that
    have a head are in ``available``."""
    thresholds = thresholds or {}

    def on(name: str) -> np.ndarray:
        p = np.asarray(probs[name], dtype=float)
        return p >= np.asarray(thresholds.get(name, [0.5] * p.size), dtype=float)

    fields: dict = {"available": frozenset(probs)}
    n = len(LEADS)
    if "noise" in probs:
        rows = on("noise").reshape(-1, n)
        fields["noise"] = {t: tuple(bool(x) for x in rows[i]) for i, t in enumerate(NOISE_TYPES)}
    if "extra_systole" in probs:
        fields["extra_systoles"] = frozenset(
            t for t, x in zip(EXTRA_SYSTOLE_TYPES, on("extra_systole"), strict=True) if x
        )
    if "heart_axis" in probs:
        fields["heart_axis"] = AXIS_CLASSES[int(np.argmax(probs["heart_axis"]))]
    if "stage_of_infarction" in probs:
        stage = INFARCTION_CLASSES[int(np.argmax(probs["stage_of_infarction"]))]
        fields["infarction_stage"] = None if stage == "none" else stage
    if "pacemaker" in probs:
        fields["pacemaker"] = bool(on("pacemaker")[0])
    if "form_leads" in probs:
        rows = on("form_leads").reshape(-1, n)
        fields["form_leads"] = {c: tuple(bool(x) for x in rows[i]) for i, c in enumerate(FORM_LEAD_CODES)}
    if "numeric_feature" in probs:
        v = np.asarray(probs["numeric_feature"], dtype=float).reshape(-1, 2)
        fields["numeric_ms"] = {
            f: tuple(float(x * numeric_scale(f)[1] + numeric_scale(f)[0]) for x in v[i])
            for i, f in enumerate(NUMERIC_FEATURES)
        }
    return EcgAttributes(**fields)


def range_class_accuracy(probs: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    """Accuracy of ECG-QA's below / within / above class of each measured min and max (from the regression)."""
    from encoder.ecgqa.attributes import range_class

    hits = []
    for j in range(probs.shape[1]):
        feature = NUMERIC_FEATURES[j // 2]
        centre, scale = numeric_scale(feature)
        for p, t in zip(probs[mask[:, j] > 0, j], target[mask[:, j] > 0, j], strict=True):
            hits.append(range_class(feature, p * scale + centre) == range_class(feature, t * scale + centre))
    return float(np.mean(hits)) if hits else float("nan")


def noise_record_auroc(probs: np.ndarray, target: np.ndarray, mask: np.ndarray) -> dict[str, object]:
    """Record-level AUROC per noise type (and ``any``): a record's score is its highest lead probability, its
    truth whether any lead carries that noise; with the number of positive records behind each AUROC."""
    n = len(LEADS)
    out: dict[str, float] = {}
    positives: dict[str, int] = {}
    for i, name in enumerate((*NOISE_TYPES, "any")):
        cols = slice(i * n, (i + 1) * n)
        keep = mask[:, cols].max(axis=1) > 0
        y = target[keep, cols].max(axis=1) > 0.5
        positives[name] = int(y.sum())
        if 0 < y.sum() < len(y):
            out[name] = float(roc_auc_score(y, probs[keep, cols].max(axis=1)))
    return {"record_auroc": out, "record_positives": positives}


def stage_accuracy_on_infarctions(
    probs: np.ndarray, target: np.ndarray, mask: np.ndarray
) -> dict[str, object]:
    """Stage accuracy on the records whose true class is an infarction stage (not ``none``), overall and per true
    stage (its accuracy and count)."""
    keep = (mask[:, 0] > 0) & (target.argmax(1) != INFARCTION_CLASSES.index("none"))
    if not keep.any():
        return {"n_infarctions": 0}
    truth, guess = target[keep].argmax(1), probs[keep].argmax(1)
    per_stage = {
        INFARCTION_CLASSES[c]: f"{float(np.mean(guess[truth == c] == c)):.3f} (n {int(np.sum(truth == c))})"
        for c in np.unique(truth)
    }
    return {
        "accuracy_on_infarctions": float(accuracy_score(truth, guess)),
        "n_infarctions": int(keep.sum()),
        "accuracy_per_stage": per_stage,
    }


def numeric_breakdown(probs: np.ndarray, target: np.ndarray, mask: np.ndarray) -> dict[str, object]:
    """MAE in ms per feature (its min and max together) and the accuracy of the below / within / above class."""
    per_feature: dict[str, float] = {}
    for i, feature in enumerate(NUMERIC_FEATURES):
        cols = slice(2 * i, 2 * i + 2)
        keep = mask[:, cols] > 0
        if keep.any():
            scale = numeric_scale(feature)[1]
            per_feature[feature] = float(np.abs((probs[:, cols] - target[:, cols]) * scale)[keep].mean())
    return {
        "mae_ms_per_feature": per_feature,
        "range_class_accuracy": range_class_accuracy(probs, target, mask),
    }


TASK_BREAKDOWNS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], dict[str, object]]] = {
    "noise": noise_record_auroc,
    "stage_of_infarction": stage_accuracy_on_infarctions,
    "numeric_feature": numeric_breakdown,
}
"""Task -> the extra fold metrics reported beside :func:`task_metrics` (the units the issue's targets use)."""


def head_outputs(encoder: EcgEncoder, dataset: CachedEcgDataset | np.ndarray) -> dict[str, np.ndarray]:
    """Task -> (N, K) probabilities / normalised values of the encoder's aux head over a dataset or model-ready
    signals (N, 12, T), in order."""
    from encoder.engine.inference import encode_dataset

    emb = encode_dataset(encoder, dataset, outputs=("embedding",)).output("embedding")  # (N, D)
    head = encoder.aux_head
    if head is None:
        from encoder.errors import ConfigError

        raise ConfigError("This encoder has no aux heads (config.aux_tasks is empty); train with aux tasks.")
    device = next(head.parameters()).device
    with torch.no_grad():
        out = head(emb.to(device))
    return {n: probabilities(n, v).cpu().numpy() for n, v in out.items()}


RIDGE_ALPHAS: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0)


def ridge_refit(
    head: nn.Linear,
    train: tuple[np.ndarray, np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray, np.ndarray],
    val_error: Callable[[np.ndarray, np.ndarray, np.ndarray], float],
    alphas: Sequence[float] = RIDGE_ALPHAS,
) -> dict[str, Any]:
    """Refit a linear regression head in place by ridge regression on frozen embeddings: ``train`` and ``val`` are
    (embeddings (N, D), target (N, K), mask (N, K)); each output is fit on the rows that measured it, the penalty
    is the one with the lowest ``val_error(pred, target, mask)``, and the refit replaces the head only when it is
    lower than the head's own. Returns what was tried and chosen."""
    from sklearn.linear_model import Ridge

    x_train, y_train, m_train = train
    x_val, y_val, m_val = val
    trained_w = head.weight.detach().cpu().double().numpy()  # (K, D)
    trained_b = head.bias.detach().cpu().double().numpy()  # (K,)
    fits: dict[float, tuple[np.ndarray, np.ndarray]] = {}
    errors: dict[str, float] = {}
    for alpha in alphas:
        weight, bias = trained_w.copy(), trained_b.copy()
        for j in range(y_train.shape[1]):
            rows = m_train[:, j] > 0
            if rows.sum() >= 2:  # else keep the trained output
                ridge = Ridge(alpha=alpha).fit(x_train[rows], y_train[rows, j])
                weight[j], bias[j] = ridge.coef_, ridge.intercept_
        fits[alpha] = (weight, bias)
        errors[str(alpha)] = val_error(x_val @ weight.T + bias, y_val, m_val)
    best = min(alphas, key=lambda a: errors[str(a)])
    before = val_error(x_val @ trained_w.T + trained_b, y_val, m_val)
    replaced = errors[str(best)] < before
    if replaced:
        with torch.no_grad():
            head.weight.copy_(torch.from_numpy(fits[best][0]).to(head.weight))
            head.bias.copy_(torch.from_numpy(fits[best][1]).to(head.bias))
    return {
        "val_error_trained_head": before,
        "val_error_per_alpha": errors,
        "chosen_alpha": float(best),
        "replaced": bool(replaced),
        "train_rows": int(len(x_train)),
    }


def refit_numeric_head(
    encoder: EcgEncoder,
    targets: dict[str, tuple[torch.Tensor, torch.Tensor]],
    train: CachedEcgDataset,
    val: CachedEcgDataset,
) -> dict[str, Any]:
    """:func:`ridge_refit` of the encoder's ``numeric_feature`` head on its embeddings of ``train`` and ``val``
    (datasets with ``.indices`` into the rows of ``targets``), scored by the validation MAE in ms."""
    from encoder.engine.inference import encode_dataset

    if encoder.aux_head is None or "numeric_feature" not in encoder.aux_head.heads:
        from encoder.errors import ConfigError

        raise ConfigError("refit_numeric_head needs an aux head with the numeric_feature task.")

    def arrays(dataset: CachedEcgDataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        emb = encode_dataset(encoder, dataset, outputs=("embedding",)).output("embedding")  # (N, D)
        rows = np.asarray(dataset.indices)
        target, mask = (t[rows].numpy() for t in targets["numeric_feature"])
        return emb.double().numpy(), target, mask

    def mae_ms(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
        return float(task_metrics("numeric_feature", pred, target, mask)["mae_ms"])

    head = encoder.aux_head.heads["numeric_feature"]
    assert isinstance(head, nn.Linear)
    out = ridge_refit(head, arrays(train), arrays(val), mae_ms)
    return {k.replace("val_error", "val_mae_ms"): v for k, v in out.items()}


def calibrate_and_report(
    encoder: EcgEncoder,
    targets: dict[str, tuple[torch.Tensor, torch.Tensor]],
    val: CachedEcgDataset,
    test: CachedEcgDataset,
) -> dict[str, dict[str, Any]]:
    """Tune the sigmoid tasks' thresholds on ``val`` into ``encoder.config.aux_thresholds``; metrics per task on
    ``test`` (datasets with ``.indices`` into the rows of ``targets``)."""
    report: dict[str, dict[str, Any]] = {}
    for split, dataset in (("val", val), ("test", test)):
        rows = np.asarray(dataset.indices)
        probs = head_outputs(encoder, dataset)
        for name, p in probs.items():
            t, m = (x[rows].numpy() for x in targets[name])
            if split == "val":
                if AUX_TASKS[name].kind == "sigmoid":
                    encoder.config.aux_thresholds[name] = fit_thresholds(p, t, m)
                continue
            report[name] = task_metrics(name, p, t, m)
            if name in TASK_BREAKDOWNS:
                report[name].update(TASK_BREAKDOWNS[name](p, t, m))
    return report
