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

Reduction (``reduction``): ``sum_ij l_ij / N`` with
    * ``"positives"`` (default): ``N = sum_ij J_ij``, the total target mass. For identity targets ``N = B``, exactly
      SigLIP's normalisation, so Jaccard-SigLIP still equals plain SigLIP when the label sets are disjoint. With
      Jaccard targets each row has many (soft) positives; dividing by their mass keeps the loss and gradient scale
      of Jaccard-SigLIP comparable to plain SigLIP's instead of growing with the number of positives per row.
    * ``"batch"``: ``N = B`` (SigLIP's reduction applied unchanged). With many positives per row the Jaccard
      contrastive loss and its gradients are then several times plain SigLIP's, so under gradient clipping it
      swamps the jointly trained BCE head (measured in ``docs/stage1.md``). That is why ``positives`` is the default.

Global batch over several processes (:func:`global_contrastive_loss`, open_clip's ``SigLipLoss`` / big_vision
structure): each process scores its own ECG rows against every process's texts, which arrive through an
autograd-aware exchange (``encoder.engine.distributed.gather_rows``), with the targets of those blocks built from
every process's label multi-hots (off-rank Jaccard pairs are soft targets, not negatives). ``N`` is the GLOBAL
target mass (or global B). CLIP also gathers the ECG rows for the text -> ECG direction. Each process returns
``world x`` its share, so the mean over processes is the single-process loss of the global batch and, since DDP
averages gradients, so is the gradient.

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

from encoder.engine.distributed import gather_rows, rank_and_world, sum_over_processes
from encoder.errors import ConfigError


def pair_logits(
    ecg_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor, logit_bias: torch.Tensor | None
) -> torch.Tensor:
    """(B, D) ECG, (C, D) text (both L2-normalised), scalar log-scale and bias -> (B, C) pair logits."""
    logits = ecg_emb @ text_emb.t() * logit_scale.exp()  # (B, C)
    if logit_bias is not None:
        logits = logits + logit_bias
    return logits


def identity_targets(
    batch_size: int,
    device: torch.device | None = None,
    dtype=torch.float32,
    columns: int | None = None,
    offset: int = 0,
) -> torch.Tensor:
    """(B, C) with ones at ``(i, offset + i)``: only each record's own text is a match (plain SigLIP / CLIP).

    Square (B, B) by default; a process's block of the global batch passes ``columns`` = the global batch size and
    ``offset`` = the global position of its first row."""
    targets = torch.zeros(batch_size, batch_size if columns is None else columns, device=device, dtype=dtype)
    rows = torch.arange(batch_size, device=device)
    targets[rows, rows + offset] = 1.0
    return targets


def jaccard_targets(
    labels: torch.Tensor, others: torch.Tensor | None = None, offset: int = 0
) -> torch.Tensor:
    """Multi-hot labels (B, L) [vs ``others`` (C, L), default ``labels``] -> pairwise label-set Jaccard (B, C).

    ``|A∩B| = Y Zᵀ``, ``|A∪B| = |A| + |B| - |A∩B|``. Empty-union guard: when both sets are empty the ratio is 0/0;
    we define it as 1 for a record with itself (column ``offset + i`` for row ``i``) and 0 otherwise (two
    unlabelled records are not known to match). Computed in float32 or better (counts are exact integers there).
    """
    y = _binary(labels)  # (B, L)
    z = y if others is None else _binary(others).to(y.dtype)  # (C, L)
    inter = y @ z.t()  # (B, C)  |A∩B|
    size_y, size_z = y.sum(dim=1), z.sum(dim=1)  # (B,), (C,)
    union = size_y[:, None] + size_z[None, :]  # (B, C)
    union.sub_(inter).clamp_min_(1.0)  # |A∪B|; 0/0 -> 0/1 = 0
    jac = inter.div_(union)
    empty = torch.nonzero(size_y == 0).flatten()  # O(B) guard: union = 0 only for two empty sets
    if empty.numel():
        jac[empty, empty + offset] = 1.0  # a record always matches itself
    return jac


def _binary(labels: torch.Tensor) -> torch.Tensor:
    y = labels if labels.dtype in (torch.float32, torch.float64) else labels.float()
    return (y > 0).to(y.dtype)


def _soft(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.softplus(logits) - targets * logits  # (B, C)


def _pm1(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.softplus(-(2.0 * targets - 1.0) * logits)  # (B, C)


SIGMOID_FORMS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {"soft": _soft, "pm1": _pm1}


REDUCTIONS: dict[str, Callable[[torch.Tensor, int], torch.Tensor]] = {
    "batch": lambda mass, n: torch.tensor(float(n), dtype=mass.dtype, device=mass.device),  # SigLIP: / B
    "positives": lambda mass, n: mass.clamp_min(1.0),  # / sum_ij J_ij  (= B for identity targets)
}
"""Reduction name -> divisor of the summed pair losses, from (target mass sum_ij J_ij, batch size B)."""


def _check_names(form: str, reduction: str) -> None:
    if form not in SIGMOID_FORMS:
        raise ConfigError(f"Unknown sigmoid loss form {form!r}; choose one of {sorted(SIGMOID_FORMS)}.")
    if reduction not in REDUCTIONS:
        raise ConfigError(f"Unknown loss reduction {reduction!r}; choose one of {sorted(REDUCTIONS)}.")


def sigmoid_contrastive_loss(
    logits: torch.Tensor, targets: torch.Tensor, form: str = "soft", reduction: str = "positives"
) -> torch.Tensor:
    """SigLIP-style sigmoid loss with (possibly soft) pair targets: ``sum_ij l_ij / N`` (see module docstring),
    ``N = sum_ij J_ij`` (``reduction="positives"``, default) or ``N = B`` (``"batch"``); equal for identity J."""
    _check_names(form, reduction)
    if logits.shape != targets.shape or logits.ndim != 2:
        raise ConfigError(
            f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} must be the same (B, B)."
        )
    t = targets.to(logits.dtype)
    per_pair = SIGMOID_FORMS[form](logits, t)  # (B, B)
    return per_pair.sum() / REDUCTIONS[reduction](t.detach().sum(), t.shape[0])


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


def _siglip(logits: torch.Tensor, labels: torch.Tensor, form: str, reduction: str) -> torch.Tensor:
    eye = identity_targets(logits.shape[0], logits.device, logits.dtype)
    return sigmoid_contrastive_loss(logits, eye, form, reduction)


def _jaccard_siglip(logits: torch.Tensor, labels: torch.Tensor, form: str, reduction: str) -> torch.Tensor:
    return sigmoid_contrastive_loss(logits, jaccard_targets(labels).to(logits.dtype), form, reduction)


def _clip(logits: torch.Tensor, labels: torch.Tensor, form: str, reduction: str) -> torch.Tensor:
    return clip_loss(logits)


CONTRASTIVE_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor, str, str], torch.Tensor]] = {
    "siglip": _siglip,
    "jaccard_siglip": _jaccard_siglip,
    "clip": _clip,
}


def contrastive_loss(
    name: str, logits: torch.Tensor, labels: torch.Tensor, form: str = "soft", reduction: str = "positives"
) -> torch.Tensor:
    """Dispatch by objective name: ``siglip`` | ``jaccard_siglip`` | ``clip``. ``labels`` (B, L) multi-hot."""
    if name not in CONTRASTIVE_LOSSES:
        raise ConfigError(f"Unknown contrastive loss {name!r}; choose one of {sorted(CONTRASTIVE_LOSSES)}.")
    return CONTRASTIVE_LOSSES[name](logits, labels, form, reduction)


# --- the same objectives over the global batch of several processes -----------------------------------------


class PairBlock:
    """This process's rows of the global batch: its ECG and text embeddings (b, D), labels (b, L), the clamped
    logit scale and the bias, and where its rows sit in the global batch (``offset``, global ``size``)."""

    def __init__(
        self,
        ecg: torch.Tensor,
        text: torch.Tensor,
        labels: torch.Tensor,
        scale: torch.Tensor,
        bias: torch.Tensor,
    ) -> None:
        rank, world = rank_and_world()
        self.ecg, self.text, self.labels, self.scale, self.bias = ecg, text, labels, scale, bias
        self.offset, self.size = rank * ecg.shape[0], world * ecg.shape[0]

    def logits_against_all_texts(self) -> torch.Tensor:
        return pair_logits(self.ecg, gather_rows(self.text), self.scale, self.bias)  # (b, B)


def _sigmoid_share(logits: torch.Tensor, targets: torch.Tensor, form: str, reduction: str) -> torch.Tensor:
    """This block's summed pair losses over the GLOBAL divisor (target mass summed over processes)."""
    mass = sum_over_processes(targets.detach().sum())
    return SIGMOID_FORMS[form](logits, targets).sum() / REDUCTIONS[reduction](mass, logits.shape[1])


def _siglip_share(block: PairBlock, form: str, reduction: str) -> torch.Tensor:
    logits = block.logits_against_all_texts()  # (b, B)
    eye = identity_targets(
        logits.shape[0], logits.device, logits.dtype, columns=block.size, offset=block.offset
    )
    return _sigmoid_share(logits, eye, form, reduction)


def _jaccard_siglip_share(block: PairBlock, form: str, reduction: str) -> torch.Tensor:
    logits = block.logits_against_all_texts()  # (b, B)
    every_label = gather_rows(block.labels.detach().float())  # (B, L): off-rank blocks have soft targets too
    targets = jaccard_targets(block.labels, every_label, block.offset).to(logits.dtype)  # (b, B)
    return _sigmoid_share(logits, targets, form, reduction)


def _clip_share(block: PairBlock, form: str, reduction: str) -> torch.Tensor:
    classes = block.offset + torch.arange(block.ecg.shape[0], device=block.ecg.device)  # (b,)
    ecg_to_text = F.cross_entropy(block.logits_against_all_texts(), classes, reduction="sum")
    text_to_ecg = pair_logits(block.text, gather_rows(block.ecg), block.scale, block.bias)  # (b, B)
    return 0.5 * (ecg_to_text + F.cross_entropy(text_to_ecg, classes, reduction="sum")) / block.size


GLOBAL_BATCH_LOSSES: dict[str, Callable[[PairBlock, str, str], torch.Tensor]] = {
    "siglip": _siglip_share,
    "jaccard_siglip": _jaccard_siglip_share,
    "clip": _clip_share,
}
"""The objectives of :data:`CONTRASTIVE_LOSSES`, as one process's share of the global-batch loss."""


def global_contrastive_loss(
    name: str,
    ecg_emb: torch.Tensor,
    text_emb: torch.Tensor,
    logit_scale: torch.Tensor,
    logit_bias: torch.Tensor,
    labels: torch.Tensor,
    form: str = "soft",
    reduction: str = "positives",
) -> torch.Tensor:
    """This process's share of objective ``name`` over the global batch (every process's (b, D) embeddings and
    (b, L) labels, all processes with the same b), scaled so that its mean over processes is the single-process
    loss of the global batch and, with DDP's gradient averaging, its gradient the single-process gradient.

    One process: ``contrastive_loss(name, pair_logits(ecg_emb, text_emb, logit_scale, logit_bias), labels, ...)``.
    Every process must call it (it exchanges tensors).
    """
    if name not in GLOBAL_BATCH_LOSSES:
        raise ConfigError(f"Unknown contrastive loss {name!r}; choose one of {sorted(GLOBAL_BATCH_LOSSES)}.")
    _check_names(form, reduction)
    block = PairBlock(ecg_emb, text_emb, labels, logit_scale, logit_bias)
    return rank_and_world()[1] * GLOBAL_BATCH_LOSSES[name](block, form, reduction)
