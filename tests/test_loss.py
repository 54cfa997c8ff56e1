"""Loss tests: Jaccard targets, Jaccard-SigLIP vs plain SigLIP, float64 references (values + gradients)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from encoder.errors import ConfigError
from encoder.loss import (
    clip_loss,
    contrastive_loss,
    identity_targets,
    jaccard_targets,
    pair_logits,
    sigmoid_contrastive_loss,
)


def _ref_jaccard(labels: torch.Tensor) -> torch.Tensor:
    """Loop-based set Jaccard in float64 (the definition, no matmul)."""
    sets = [set(torch.nonzero(r).flatten().tolist()) for r in labels]
    n = len(sets)
    out = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        for j in range(n):
            union = sets[i] | sets[j]
            out[i, j] = (1.0 if i == j else 0.0) if not union else len(sets[i] & sets[j]) / len(union)
    return out


def _ref_loss(
    logits: torch.Tensor, targets: torch.Tensor, form: str, reduction: str = "positives"
) -> torch.Tensor:
    """Float64 reference written from the probabilistic definitions (log-sigmoid, not softplus)."""
    x, j = logits.double(), targets.double()
    if form == "soft":
        per = -(j * F.logsigmoid(x) + (1 - j) * F.logsigmoid(-x))
    else:
        per = -F.logsigmoid((2 * j - 1) * x)
    return per.sum() / (j.sum() if reduction == "positives" else x.shape[0])


def _random_labels(b: int, n_labels: int, seed: int, p: float = 0.3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(b, n_labels, generator=g) < p).float()


def test_jaccard_targets_match_set_definition() -> None:
    labels = _random_labels(24, 6, seed=0)
    labels[3] = 0  # an empty label set
    labels[7] = 0  # a second one -> their pair has an empty union
    jac = jaccard_targets(labels)
    assert jac.shape == (24, 24)
    torch.testing.assert_close(jac.double(), _ref_jaccard(labels), rtol=0, atol=1e-7)
    assert jac[3, 3] == 1.0 and jac[7, 7] == 1.0 and jac[3, 7] == 0.0
    assert torch.equal(jac, jac.t())
    assert torch.all(jac.diagonal() == 1.0)


def test_jaccard_targets_simple_values() -> None:
    labels = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 0, 1], [1, 1, 0]], dtype=torch.uint8)
    jac = jaccard_targets(labels)
    assert jac[0, 1] == pytest.approx(0.5)  # {A} vs {A,B}: overlapping but different
    assert jac[0, 2] == 0.0
    assert jac[1, 3] == 1.0  # identical label sets


@pytest.mark.parametrize("reduction", ["positives", "batch"])
@pytest.mark.parametrize("form", ["soft", "pm1"])
@pytest.mark.parametrize("b", [4, 16, 64])
def test_jaccard_equals_plain_siglip_for_disjoint_label_sets(form: str, b: int, reduction: str) -> None:
    # Disjoint label sets -> off-diagonal Jaccard 0 -> the Jaccard target IS the identity.
    labels = torch.zeros(b, b + 3)
    labels[torch.arange(b), torch.arange(b)] = 1
    labels[0, b + 1] = 1  # sizes differ too, still disjoint
    g = torch.Generator().manual_seed(b)
    logits = torch.randn(b, b, generator=g) * 5 - 3
    plain = contrastive_loss("siglip", logits, labels, form, reduction)
    jac = contrastive_loss("jaccard_siglip", logits, labels, form, reduction)
    assert torch.equal(jaccard_targets(labels), identity_targets(b))
    assert abs(jac.item() - plain.item()) <= 1e-6 * abs(plain.item())
    # and both equal the textbook SigLIP loss: -sum log sigmoid(z x) / B with z = +1 on the diagonal, -1 off it
    z = 2 * torch.eye(b) - 1
    textbook = -F.logsigmoid(z * logits.double()).sum() / b
    assert abs(plain.item() - textbook.item()) <= 1e-6 * abs(textbook.item())


def test_overlapping_label_sets_change_the_loss() -> None:
    labels = torch.tensor([[1, 0], [1, 1], [0, 1]], dtype=torch.float32)
    logits = torch.randn(3, 3, generator=torch.Generator().manual_seed(1))
    assert not torch.isclose(
        contrastive_loss("siglip", logits, labels), contrastive_loss("jaccard_siglip", logits, labels)
    )


@pytest.mark.parametrize("reduction", ["positives", "batch"])
@pytest.mark.parametrize("form", ["soft", "pm1"])
def test_values_and_gradients_match_float64_reference(form: str, reduction: str) -> None:
    labels = _random_labels(32, 5, seed=2, p=0.4)
    targets = jaccard_targets(labels)
    g = torch.Generator().manual_seed(3)
    ecg = F.normalize(torch.randn(32, 16, generator=g), dim=-1)
    txt = F.normalize(torch.randn(32, 16, generator=g), dim=-1)

    def run(dtype):
        e = ecg.detach().clone().to(dtype).requires_grad_(True)
        t = txt.detach().clone().to(dtype).requires_grad_(True)
        scale = torch.tensor(math.log(10.0), dtype=dtype, requires_grad=True)
        bias = torch.tensor(-10.0, dtype=dtype, requires_grad=True)
        logits = pair_logits(e, t, scale, bias)
        loss = (
            sigmoid_contrastive_loss(logits, targets.to(dtype), form, reduction)
            if dtype == torch.float32
            else _ref_loss(logits, targets, form, reduction)
        )
        loss.backward()
        return loss.detach(), [p.grad.double() for p in (e, t, scale, bias)]

    val32, grads32 = run(torch.float32)
    val64, grads64 = run(torch.float64)
    assert val32.double().item() == pytest.approx(val64.item(), rel=1e-5)
    for g32, g64 in zip(grads32, grads64, strict=True):
        torch.testing.assert_close(g32, g64, rtol=1e-4, atol=1e-5)


def test_soft_and_pm1_agree_on_binary_targets_and_differ_on_fractional() -> None:
    logits = torch.randn(8, 8, generator=torch.Generator().manual_seed(4)) * 4
    eye = identity_targets(8)
    torch.testing.assert_close(
        sigmoid_contrastive_loss(logits, eye, "soft"), sigmoid_contrastive_loss(logits, eye, "pm1")
    )
    half = torch.full((8, 8), 0.5)
    # pm1 with J = 1/2 is the constant log 2 per pair (no gradient); soft is not constant.
    assert sigmoid_contrastive_loss(logits, half, "pm1", "batch").item() == pytest.approx(
        8 * math.log(2.0), rel=1e-6
    )
    x = torch.zeros(8, 8, requires_grad=True)
    sigmoid_contrastive_loss(x + 3.0, half, "soft").backward()
    assert x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["siglip", "jaccard_siglip", "clip"])
def test_losses_are_symmetric_in_ecg_and_text(name: str) -> None:
    labels = _random_labels(12, 4, seed=5)
    g = torch.Generator().manual_seed(6)
    e, t = (
        F.normalize(torch.randn(12, 8, generator=g), dim=-1),
        F.normalize(torch.randn(12, 8, generator=g), dim=-1),
    )
    scale, bias = torch.tensor(math.log(10.0)), torch.tensor(-10.0)
    a = contrastive_loss(name, pair_logits(e, t, scale, bias), labels)
    b = contrastive_loss(name, pair_logits(t, e, scale, bias), labels)
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("form", ["soft", "pm1"])
def test_finite_for_empty_label_sets_and_extreme_logits(form: str) -> None:
    labels = torch.zeros(6, 3)  # every label set empty
    logits = torch.tensor([[1e4, -1e4] * 3] * 6, requires_grad=True)
    loss = contrastive_loss("jaccard_siglip", logits, labels, form)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    assert torch.equal(jaccard_targets(labels), identity_targets(6))


def test_clip_loss_matches_definition_and_soft_identity() -> None:
    logits = torch.randn(5, 5, generator=torch.Generator().manual_seed(7))
    ref = 0.5 * (-logits.log_softmax(1).diagonal().mean() - logits.log_softmax(0).diagonal().mean())
    torch.testing.assert_close(clip_loss(logits), ref)
    torch.testing.assert_close(clip_loss(logits, identity_targets(5)), ref)


def test_bias_escapes_minus_ten_with_many_positives() -> None:
    """With ~50 % J = 1 pairs the bias gradient at init is large and negative (it moves up quickly)."""
    b = 64
    labels = torch.zeros(b, 2)
    labels[: b // 2, 0] = 1
    labels[b // 2 :, 1] = 1  # two identical-label groups -> half of all pairs have J = 1
    bias = torch.tensor(-10.0, requires_grad=True)
    logits = torch.zeros(b, b) + bias
    contrastive_loss("jaccard_siglip", logits, labels, reduction="batch").backward()
    n_pos = jaccard_targets(labels).sum().item()
    assert bias.grad.item() == pytest.approx(-n_pos / b, rel=1e-3)  # = -(B/2) here
    bias_plain = torch.tensor(-10.0, requires_grad=True)
    contrastive_loss("siglip", torch.zeros(b, b) + bias_plain, labels, reduction="batch").backward()
    assert bias.grad.item() < 10 * bias_plain.grad.item()  # much stronger push than plain SigLIP's -1
    # a few SGD steps on the bias alone approach logit(mean J) = logit(0.5) = 0
    bias2 = torch.tensor(-10.0, requires_grad=True)
    opt = torch.optim.SGD([bias2], lr=0.02)
    for _ in range(200):
        opt.zero_grad()
        contrastive_loss("jaccard_siglip", torch.zeros(b, b) + bias2, labels, reduction="batch").backward()
        opt.step()
    assert abs(bias2.item()) < 0.5


def test_positives_reduction_keeps_jaccard_on_the_plain_scale() -> None:
    """Many identical label sets: 'batch' grows with the positives per row, 'positives' does not."""
    b = 32
    labels = torch.zeros(b, 3)
    labels[:, 0] = 1  # every record has the same label set -> J = 1 everywhere
    logits = torch.full((b, b), -10.0)
    plain = contrastive_loss("siglip", logits, labels).item()
    by_batch = contrastive_loss("jaccard_siglip", logits, labels, reduction="batch").item()
    by_pos = contrastive_loss("jaccard_siglip", logits, labels, reduction="positives").item()
    assert by_batch == pytest.approx(b * by_pos, rel=1e-6)  # B^2 positives / B vs / B^2
    assert by_pos < plain  # same order of magnitude as plain SigLIP, not B times larger
    assert by_pos == pytest.approx(F.softplus(torch.tensor(10.0)).item(), rel=1e-6)


def test_unknown_names_raise_config_error() -> None:
    with pytest.raises(ConfigError):
        contrastive_loss("nope", torch.zeros(2, 2), torch.zeros(2, 1))
    with pytest.raises(ConfigError):
        sigmoid_contrastive_loss(torch.zeros(2, 2), torch.zeros(2, 2), form="nope")
    with pytest.raises(ConfigError):
        sigmoid_contrastive_loss(torch.zeros(2, 2), torch.zeros(2, 2), reduction="nope")
