"""EcgEncoder / EcgClipModel: shapes, save/load round trips, logit scale/bias init, zero-shot, heads."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from encoder.clip_model import EcgClipModel
from encoder.configuration import EcgEncoderConfig
from encoder.errors import CheckpointError, ConfigError, EcgInputError
from encoder.heads import ZeroShotScorer, classifier_loss, fit_linear_probe, fit_temperature
from encoder.modeling import EcgEncoder
from encoder.text import TextTowerConfig

LABELS = ["CD", "HYP", "MI", "NORM", "STTC"]


def _encoder(**kw) -> EcgEncoder:
    torch.manual_seed(0)
    cfg = dict(arch="resnet10", widths=[8, 16, 16, 16], embed_dim=16, label_names=LABELS)
    cfg.update(kw)
    return EcgEncoder(EcgEncoderConfig(**cfg)).eval()


@pytest.mark.parametrize("t", [250, 1000, 999])
def test_encoder_shapes(t: int) -> None:
    enc = _encoder()
    out = enc(torch.randn(2, 12, t))
    assert out.tokens.shape == (2, math.ceil(t / 32), 16)
    assert out.embedding.shape == (2, 16) and out.logits.shape == (2, 5)
    assert enc.predict_proba(torch.randn(2, 12, t)).shape == (2, 5)


def test_predict_proba_without_a_head_is_a_config_error() -> None:
    """Regression (found by mypy): ``predict_proba`` on a head-less encoder passed ``logits=None`` on and failed
    with a TypeError deep inside; it now says what is missing."""
    enc = _encoder(label_names=[])
    assert enc(torch.randn(1, 12, 250)).logits is None
    with pytest.raises(ConfigError, match="no classifier head"):
        enc.predict_proba(torch.randn(1, 12, 250))


def test_encoder_rejects_bad_input_and_arch() -> None:
    with pytest.raises(EcgInputError):
        _encoder()(torch.randn(2, 8, 100))
    with pytest.raises(ConfigError):
        EcgEncoderConfig(arch="resnet999")


def test_clip_model_init_and_forward() -> None:
    model = EcgClipModel(_encoder(), text_dim=24)
    assert model.logit_scale.item() == pytest.approx(math.log(10.0))
    assert model.logit_bias.item() == pytest.approx(-10.0)
    out = model(torch.randn(4, 12, 250), torch.randn(4, 24))
    assert out["logits"].shape == (4, 4) and out["class_logits"].shape == (4, 5)
    torch.testing.assert_close(out["ecg_emb"].norm(dim=-1), torch.ones(4))
    torch.testing.assert_close(out["text_emb"].norm(dim=-1), torch.ones(4))
    # logits = 10 * cos - 10 at init, so all pair logits lie in [-20, 0]
    assert out["logits"].max() <= 0 + 1e-5 and out["logits"].min() >= -20 - 1e-5


def test_clip_model_round_trip_and_zero_shot(tmp_path: Path) -> None:
    model = EcgClipModel(_encoder(), text_dim=24, text_cfg=TextTowerConfig(pooling="mean")).eval()
    with torch.no_grad():
        model.logit_scale.fill_(2.5)
        model.logit_bias.fill_(-3.0)
    with pytest.raises(CheckpointError):
        model.zero_shot_logits(torch.randn(1, 12, 250))
    model.set_label_texts([f"text {n}" for n in LABELS], torch.randn(5, 24))
    ecg = torch.randn(3, 12, 250)
    before = model.zero_shot_logits(ecg)
    model.save_pretrained(tmp_path / "clip")
    assert not list((tmp_path / "clip").glob("*.bin")) and not list((tmp_path / "clip").glob("*.pt"))
    loaded = EcgClipModel.from_pretrained(tmp_path / "clip")
    torch.testing.assert_close(loaded.zero_shot_logits(ecg), before)
    assert loaded.label_texts == [f"text {n}" for n in LABELS]
    assert loaded.encoder.config.label_names == LABELS
    with pytest.raises(CheckpointError):
        EcgClipModel.from_pretrained(tmp_path / "nothing-here")


def test_encoder_save_pretrained_keeps_calibration(tmp_path: Path) -> None:
    enc = _encoder(label_temperature=[2.0] * 5, label_thresholds=[0.3] * 5, input_seconds=5.0)
    enc.save_pretrained(tmp_path / "enc")
    back = EcgEncoder.from_pretrained(tmp_path / "enc").eval()
    assert back.config.label_thresholds == [0.3] * 5 and back.config.input_seconds == 5.0
    x = torch.randn(2, 12, 500)
    torch.testing.assert_close(back.predict_proba(x), enc.predict_proba(x))
    torch.testing.assert_close(back.predict_proba(x), torch.sigmoid(enc(x).logits / 2.0))


def test_zero_shot_scorer_is_cosine() -> None:
    label_emb = torch.eye(3, 4)
    scorer = ZeroShotScorer(label_emb * 5, ["a", "b", "c"])
    scores = scorer(torch.tensor([[2.0, 0, 0, 0], [0, 1, 1, 0]]))
    torch.testing.assert_close(scores, torch.tensor([[1.0, 0, 0], [0, 2**-0.5, 2**-0.5]]))


def test_linear_probe_learns_separable_labels() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 6, generator=g)
    y = torch.stack([(x[:, 0] > 0), (x[:, 1] < 0)], dim=1).float()
    head = torch.nn.Linear(6, 2)
    before = classifier_loss(head(x), y).item()
    fit_linear_probe(head, x, y, epochs=300, lr=0.05)
    after = classifier_loss(head(x), y).item()
    assert after < 0.3 < before
    acc = ((head(x) > 0).float() == y).float().mean().item()
    assert acc > 0.95


def test_temperature_fit_recovers_scale() -> None:
    rng = np.random.default_rng(0)
    true_logit = rng.normal(0, 2, size=(4000, 1))
    y = (rng.random((4000, 1)) < 1 / (1 + np.exp(-true_logit))).astype(float)
    temps = fit_temperature(true_logit * 3.0, y)  # over-confident logits -> T about 3
    assert 2.3 < temps[0] < 3.8


def test_encoders_saved_before_input_normalization_load_as_zscore(tmp_path):
    import json

    EcgEncoderConfig(widths=[8, 8, 8, 8], label_names=["SR"], input_normalization="center").save_pretrained(
        tmp_path
    )
    assert EcgEncoderConfig.from_pretrained(tmp_path).input_normalization == "center"
    data = json.loads((tmp_path / "config.json").read_text())
    del data["input_normalization"]
    (tmp_path / "config.json").write_text(json.dumps(data))
    assert EcgEncoderConfig.from_pretrained(tmp_path).input_normalization == "zscore"


@pytest.mark.parametrize("num_samples", [1, 31, 32, 33, 250, 1000, 5000])
def test_num_tokens_matches_the_encoder_output(num_samples):
    from encoder.configuration import EcgEncoderConfig
    from encoder.modeling import EcgEncoder

    cfg = EcgEncoderConfig(widths=[4, 4, 4, 4], embed_dim=8)
    tokens = EcgEncoder(cfg).eval().forward_features(torch.zeros(1, 12, num_samples))
    assert tokens.shape[1] == cfg.num_tokens(num_samples)
