"""Projector registry: shapes, token counts, unknown names, width read from the LLM config."""

from types import SimpleNamespace

import pytest
import torch

from bridge.llm import hidden_size
from bridge.projector import PROJECTORS, ProjectorConfig, build_projector
from encoder.errors import ConfigError


@pytest.mark.parametrize("name", sorted(PROJECTORS))
@pytest.mark.parametrize("summary", [False, True])
def test_projector_shapes_and_token_count(name, summary):
    cfg = ProjectorConfig(name=name, num_tokens=4, summary_token=summary, resampler_heads=2, resampler_dim=16)
    proj = build_projector(cfg, in_dim=32, out_dim=24, encoder_tokens=32, summary_dim=10)
    tokens = torch.randn(3, 32, 32)  # (B, N, C)
    out = proj(tokens, torch.randn(3, 10))
    assert out.shape == (3, proj.num_tokens, 24)
    assert proj.num_tokens == 4 + int(summary)
    out.sum().backward()
    assert all(p.grad is not None for p in proj.parameters() if p.requires_grad)


def test_linear_keeps_all_encoder_tokens_when_num_tokens_is_zero():
    proj = build_projector(
        ProjectorConfig("mlp2x_gelu", num_tokens=0, summary_token=False), 8, 6, encoder_tokens=13
    )
    assert proj.num_tokens == 13
    assert proj(torch.randn(2, 13, 8)).shape == (2, 13, 6)


def test_pooling_averages_neighbouring_tokens():
    proj = build_projector(
        ProjectorConfig("linear", num_tokens=2, summary_token=False), 4, 4, encoder_tokens=4
    )
    with torch.no_grad():
        proj.body.proj.weight.copy_(torch.eye(4))
        proj.body.proj.bias.zero_()
    proj.norm = torch.nn.Identity()
    x = torch.arange(16.0).reshape(1, 4, 4)
    assert torch.allclose(proj(x), torch.stack([x[0, :2].mean(0), x[0, 2:].mean(0)])[None])


def test_unknown_projector_raises_config_error():
    with pytest.raises(ConfigError, match="Unknown projector"):
        build_projector(ProjectorConfig(name="qformer"), 8, 8, encoder_tokens=4)
    with pytest.raises(ConfigError):
        build_projector(ProjectorConfig(name="resampler", num_tokens=0), 8, 8, encoder_tokens=4)
    with pytest.raises(ConfigError, match="summary"):
        build_projector(ProjectorConfig(summary_token=True), 8, 8, encoder_tokens=4, summary_dim=0)


def test_hidden_size_read_from_nested_text_config():
    from transformers import Gemma3Config, LlamaConfig

    gemma = Gemma3Config(text_config={"hidden_size": 96, "num_hidden_layers": 1, "vocab_size": 100})
    assert hidden_size(SimpleNamespace(config=gemma)) == 96
    assert (
        hidden_size(
            SimpleNamespace(config=LlamaConfig(hidden_size=48, num_attention_heads=4, num_key_value_heads=4))
        )
        == 48
    )
