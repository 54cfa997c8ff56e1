"""Contrastive losses for ECG-text pretraining, split open_clip style into logits / targets / reduction.

The learnable logit scale ``t`` and bias ``b`` live in the model (:class:`encoder.clip_model.EcgClipModel`,
init ``t = log 10``, ``b = -10``); every function here is parameter-free.

Pair logits: ``x_ij = exp(t) * <e_i, u_j> + b`` with ``e`` (ECG) and ``u`` (text) L2-normalised, (B, B).

Targets (B, B) in [0, 1]:
    * ``identity_targets``: plain SigLIP / CLIP, only the diagonal pairs match.
    * ``jaccard_targets``: ``J_ij = |A_i ∩ A_j| / |A_i ∪ A_j|`` of the two records' label sets.

Sigmoid loss, two forms of the same idea (both reduce to SigLIP exactly when ``J`` is 0/1):
    * ``"soft"`` (default) — soft-target binary cross-entropy::

          l_ij = softplus(x_ij) - J_ij * x_ij  =  -[J log σ(x) + (1 - J) log(1 - σ(x))]

      For J ∈ {0, 1} this is SigLIP's ``-log σ(z x)`` with ``z = 2J - 1`` (``softplus(x) - x = softplus(-x)``).
      For fractional J its minimiser is ``σ(x*) = J``: the pair probability is calibrated to the label overlap,
      so "half-overlapping" pairs are pulled to a middle similarity rather than to either extreme.
    * ``"pm1"`` — ±1 rescaling, ``z_ij = 2 J_ij - 1 ∈ [-1, 1]``::

          l_ij = -log σ(z_ij x_ij) = softplus(-z_ij x_ij)

      A fractional J only scales the margin: any J > 1/2 still pushes x → +∞, J < 1/2 pushes x → −∞ and J = 1/2
      gives no gradient at all. Graded overlap is lost, so this is not the default.

Reduction: ``sum_ij l_ij / B`` (SigLIP's normalisation by the batch size, not by B²) for both forms, so the
Jaccard and plain losses are on the same scale and the gradient of the diagonal (positive) terms is independent
of B.

Many positives per row (about 20 % of off-diagonal PTB-XL superclass pairs have J = 1; the synthetic cohort has
more): the bias init ``b = -10`` encodes SigLIP's prior "almost every pair is negative". With the soft form the
bias gradient is ``sum_ij (σ(x_ij) - J_ij) / B``, i.e. ``-(number of positive pairs) / B`` at init, which is large
when many J are 1, so the bias moves up towards ``logit(mean J)`` within the first few hundred steps instead of
staying stuck; no renormalisation by the number of positives is needed (tested in tests/test_loss.py). The
per-pair form stays bounded (softplus grows linearly), so it is finite for any logit.

Overlapping-but-different label sets: plain SigLIP treats every off-diagonal pair as a negative, including two
records with exactly the same labels (same text!) and records sharing some labels. Jaccard-SigLIP gives those pairs
targets J ∈ (0, 1]; so the two losses agree only when the off-diagonal Jaccard is 0, i.e. when the label sets are
pairwise DISJOINT (merely "different" sets, e.g. {A} vs {A, B}, have J = 1/2 and the losses differ).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from encoder.errors import ConfigError


def pair_logits(
    ecg_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor, logit_bias: torch.Tensor | None
) -> torch.Tensor:
    """(B, D) ECG, (B, D) text (both L2-normalised), scalar log-scale and bias -> (B, B) pair logits."""
    logits = ecg_emb @ text_emb.t() * logit_scale.exp()  # (B, B)
    if logit_bias is not None:
        logits = logits + logit_bias
    return logits


def identity_targets(
    batch_size: int, device: torch.device | None = None, dtype=torch.float32
) -> torch.Tensor:
    """(B, B) identity: only each record's own text is a match (plain SigLIP / CLIP)."""
    return torch.eye(batch_size, device=device, dtype=dtype)


def jaccard_targets(labels: torch.Tensor) -> torch.Tensor:
    """Multi-hot labels (B, L) -> pairwise label-set Jaccard (B, B) via one matmul.

    ``|A∩B| = Y Yᵀ``, ``|A∪B| = |A| + |B| - |A∩B|``. Empty-union guard: when both sets are empty the ratio is 0/0;
    we define it as 1 on the diagonal (a record matches its own text) and 0 off it (two unlabelled records are not
    known to match). Computed in float32 or better (counts are exact integers there).
    """
    y = labels if labels.dtype in (torch.float32, torch.float64) else labels.float()
    y = (y > 0).to(y.dtype)  # (B, L) binarise
    inter = y @ y.t()  # (B, B)  |A∩B|
    size = y.sum(dim=1)  # (B,)   |A|
    union = size[:, None] + size[None, :]  # (B, B)
    union.sub_(inter).clamp_min_(1.0)  # |A∪B|; 0/0 -> 0/1 = 0
    jac = inter.div_(union)
    empty = torch.nonzero(size == 0).flatten()  # O(B) guard: union = 0 only for two empty sets
    if empty.numel():
        jac[empty, empty] = 1.0  # a record always matches itself
    return jac


def _soft(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.softplus(logits) - targets * logits  # (B, B)


def _pm1(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.softplus(-(2.0 * targets - 1.0) * logits)  # (B, B)


SIGMOID_FORMS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {"soft": _soft, "pm1": _pm1}


def sigmoid_contrastive_loss(logits: torch.Tensor, targets: torch.Tensor, form: str = "soft") -> torch.Tensor:
    """SigLIP-style sigmoid loss with (possibly soft) pair targets; ``sum_ij l_ij / B`` (see module docstring)."""
    if form not in SIGMOID_FORMS:
        raise ConfigError(f"Unknown sigmoid loss form {form!r}; choose one of {sorted(SIGMOID_FORMS)}.")
    if logits.shape != targets.shape or logits.ndim != 2:
        raise ConfigError(
            f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} must be the same (B, B)."
        )
    per_pair = SIGMOID_FORMS[form](logits, targets.to(logits.dtype))  # (B, B)
    return per_pair.sum() / logits.shape[0]


def clip_loss(logits: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
    """CLIP InfoNCE: mean of ECG->text and text->ECG cross-entropy (the bias is irrelevant to softmax).

    ``targets=None`` -> the diagonal is the class (standard CLIP). A (B, B) target matrix is row/column normalised
    into soft labels (a "soft CLIP" option; identity targets give exactly standard CLIP).
    """
    n = logits.shape[0]
    if targets is None:
        labels = torch.arange(n, device=logits.device)
        return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))
    t = targets.to(logits.dtype)
    rows = t / t.sum(dim=1, keepdim=True).clamp_min(1e-12)
    cols = t.t() / t.t().sum(dim=1, keepdim=True).clamp_min(1e-12)
    return 0.5 * (F.cross_entropy(logits, rows) + F.cross_entropy(logits.t(), cols))


# --- the named objectives used by training / ablation --------------------------------------------------------


def _siglip(logits: torch.Tensor, labels: torch.Tensor, form: str) -> torch.Tensor:
    return sigmoid_contrastive_loss(
        logits, identity_targets(logits.shape[0], logits.device, logits.dtype), form
    )


def _jaccard_siglip(logits: torch.Tensor, labels: torch.Tensor, form: str) -> torch.Tensor:
    return sigmoid_contrastive_loss(logits, jaccard_targets(labels).to(logits.dtype), form)


def _clip(logits: torch.Tensor, labels: torch.Tensor, form: str) -> torch.Tensor:
    return clip_loss(logits)


CONTRASTIVE_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor, str], torch.Tensor]] = {
    "siglip": _siglip,
    "jaccard_siglip": _jaccard_siglip,
    "clip": _clip,
}


def contrastive_loss(
    name: str, logits: torch.Tensor, labels: torch.Tensor, form: str = "soft"
) -> torch.Tensor:
    """Dispatch by objective name: ``siglip`` | ``jaccard_siglip`` | ``clip``. ``labels`` (B, L) multi-hot."""
    if name not in CONTRASTIVE_LOSSES:
        raise ConfigError(f"Unknown contrastive loss {name!r}; choose one of {sorted(CONTRASTIVE_LOSSES)}.")
    return CONTRASTIVE_LOSSES[name](logits, labels, form)
