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

Reduction (``norm``): ``sum_ij l_ij / N`` with
    * ``"positives"`` (default): ``N = sum_ij J_ij``, the total target mass. For identity targets ``N = B``, exactly
      SigLIP's normalisation, so Jaccard-SigLIP still equals plain SigLIP when the label sets are disjoint. With
      Jaccard targets each row has many (soft) positives; dividing by their mass keeps the loss and gradient scale
      of Jaccard-SigLIP comparable to plain SigLIP's instead of growing with the number of positives per row.
    * ``"batch"``: ``N = B`` (SigLIP's reduction applied unchanged). Measured on the synthetic cohort (seed 0,
      narrow ResNet, 200 steps): the Jaccard contrastive loss is then ~4x plain SigLIP's, with gradient norms
      20-90 instead of ~2, so under gradient clipping it swamps the jointly trained BCE head (test aux-head macro
      AUROC 0.895 vs 0.941 for plain SigLIP). That is why ``positives`` is the default.

Many positives per row (about 20 % of off-diagonal PTB-XL superclass pairs have J = 1; the synthetic cohort has
more, NORM alone is ~42 % of records): the bias init ``b = -10`` encodes SigLIP's prior "almost every pair is
negative". With the soft form the bias gradient is ``sum_ij (σ(x_ij) - J_ij) / N``, strongly negative at init when
many J are 1, so the bias is pushed towards ``logit(mean J)`` (tested in tests/test_loss.py). Adam moves each
parameter by about ``lr`` per step whatever its gradient, so training gives the logit scale and bias their own,
larger learning rate (``PretrainConfig.logit_lr``, default 10 x lr). The per-pair loss stays bounded (softplus
grows linearly), so it is finite for any logit.

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


NORMALISATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "batch": lambda t: torch.tensor(float(t.shape[0]), dtype=t.dtype, device=t.device),  # SigLIP: / B
    "positives": lambda t: t.sum().clamp_min(1.0),  # / sum_ij J_ij  (= B for identity targets)
}


def sigmoid_contrastive_loss(
    logits: torch.Tensor, targets: torch.Tensor, form: str = "soft", norm: str = "positives"
) -> torch.Tensor:
    """SigLIP-style sigmoid loss with (possibly soft) pair targets: ``sum_ij l_ij / N`` (see module docstring),
    ``N = sum_ij J_ij`` (``norm="positives"``, default) or ``N = B`` (``norm="batch"``); equal for identity J."""
    if form not in SIGMOID_FORMS:
        raise ConfigError(f"Unknown sigmoid loss form {form!r}; choose one of {sorted(SIGMOID_FORMS)}.")
    if norm not in NORMALISATIONS:
        raise ConfigError(f"Unknown loss normalisation {norm!r}; choose one of {sorted(NORMALISATIONS)}.")
    if logits.shape != targets.shape or logits.ndim != 2:
        raise ConfigError(
            f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} must be the same (B, B)."
        )
    t = targets.to(logits.dtype)
    per_pair = SIGMOID_FORMS[form](logits, t)  # (B, B)
    return per_pair.sum() / NORMALISATIONS[norm](t.detach())


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


def _siglip(logits: torch.Tensor, labels: torch.Tensor, form: str, norm: str) -> torch.Tensor:
    eye = identity_targets(logits.shape[0], logits.device, logits.dtype)
    return sigmoid_contrastive_loss(logits, eye, form, norm)


def _jaccard_siglip(logits: torch.Tensor, labels: torch.Tensor, form: str, norm: str) -> torch.Tensor:
    return sigmoid_contrastive_loss(logits, jaccard_targets(labels).to(logits.dtype), form, norm)


def _clip(logits: torch.Tensor, labels: torch.Tensor, form: str, norm: str) -> torch.Tensor:
    return clip_loss(logits)


CONTRASTIVE_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor, str, str], torch.Tensor]] = {
    "siglip": _siglip,
    "jaccard_siglip": _jaccard_siglip,
    "clip": _clip,
}


def contrastive_loss(
    name: str, logits: torch.Tensor, labels: torch.Tensor, form: str = "soft", norm: str = "positives"
) -> torch.Tensor:
    """Dispatch by objective name: ``siglip`` | ``jaccard_siglip`` | ``clip``. ``labels`` (B, L) multi-hot."""
    if name not in CONTRASTIVE_LOSSES:
        raise ConfigError(f"Unknown contrastive loss {name!r}; choose one of {sorted(CONTRASTIVE_LOSSES)}.")
    return CONTRASTIVE_LOSSES[name](logits, labels, form, norm)
