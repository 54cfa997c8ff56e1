"""ECG token projectors: frozen-encoder tokens (B, N, C) -> LLM input embeddings (B, K, H).

A name -> class registry (``PROJECTORS``); ``build_projector(cfg, in_dim, out_dim, ...)`` builds one. The output
width ``out_dim`` is read from the LLM's config by the caller (``bridge.llm.hidden_size``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from encoder.errors import ConfigError


@dataclass
class ProjectorConfig:
    name: str = "mlp2x_gelu"
    """Projector type: one of ``linear``, ``mlp2x_gelu`` (LLaVA-1.5) or ``resampler`` (K learned queries)."""
    num_tokens: int = 8
    """ECG tokens per ECG. linear/mlp: encoder tokens are average-pooled to this many (0 = keep all N);
    resampler: number of learned queries K."""
    summary_token: bool = True
    """Add one extra token per ECG made from the stage-1 pooled embedding and aux-head probabilities."""
    label_embedding_init: bool = False
    """Start the summary token as ``probs @ E``: E[k] is the LLM's mean input embedding of aux label k's
    description, so the aux head's findings reach the LLM in its own vocabulary from step 0 (the ECG-token path
    learns faster). Needs ``summary_token``; the learned MLP part starts at zero and adds to it."""
    resampler_heads: int = 8
    """Attention heads of the resampler's cross-attention."""
    resampler_dim: int = 256
    """Width of the resampler's queries before the output projection."""


class LinearProjector(nn.Module):
    """One Linear layer per token."""

    def __init__(self, in_dim: int, out_dim: int, cfg: ProjectorConfig) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, out_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # (B, N, C) -> (B, N, H)
        return self.proj(tokens)


class Mlp2xGeluProjector(nn.Module):
    """LLaVA-1.5's two-layer MLP with GELU."""

    def __init__(self, in_dim: int, out_dim: int, cfg: ProjectorConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, out_dim)
        self.fc2 = nn.Linear(out_dim, out_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # (B, N, C) -> (B, N, H)
        return self.fc2(F.gelu(self.fc1(tokens)))


class ResamplerProjector(nn.Module):
    """K learned queries attend over the encoder tokens (one cross-attention + MLP block), then -> H."""

    def __init__(self, in_dim: int, out_dim: int, cfg: ProjectorConfig) -> None:
        super().__init__()
        if cfg.num_tokens < 1:
            raise ConfigError("The resampler needs num_tokens >= 1 (the number of learned queries K).")
        d = cfg.resampler_dim
        self.queries = nn.Parameter(torch.randn(cfg.num_tokens, d) * 0.02)  # (K, d)
        self.kv = nn.Linear(in_dim, d)
        self.attn = nn.MultiheadAttention(d, cfg.resampler_heads, batch_first=True)
        self.norm = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.out = nn.Linear(d, out_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # (B, N, C) -> (B, K, H)
        kv = self.kv(tokens)  # (B, N, d)
        q = self.queries.unsqueeze(0).expand(tokens.shape[0], -1, -1)  # (B, K, d)
        x = q + self.attn(q, kv, kv, need_weights=False)[0]
        x = x + self.mlp(self.norm(x))
        return self.out(x)  # (B, K, H)


PROJECTORS: dict[str, type[nn.Module]] = {
    "linear": LinearProjector,
    "mlp2x_gelu": Mlp2xGeluProjector,
    "resampler": ResamplerProjector,
}


class EcgProjector(nn.Module):
    """Normalise encoder tokens, pool them (linear/mlp), project them, and append an optional summary token.

    ``forward(tokens (B, N, C), summary (B, S) | None) -> (B, num_tokens, H)``.
    """

    def __init__(
        self,
        cfg: ProjectorConfig,
        in_dim: int,
        out_dim: int,
        encoder_tokens: int,
        summary_dim: int = 0,
        num_labels: int = 0,
    ) -> None:
        super().__init__()
        if cfg.name not in PROJECTORS:
            raise ConfigError(f"Unknown projector {cfg.name!r}; choose one of {sorted(PROJECTORS)}.")
        if cfg.num_tokens < 0:
            raise ConfigError("projector num_tokens must be >= 0.")
        self.cfg = cfg
        self.norm = nn.LayerNorm(in_dim)
        self.body = PROJECTORS[cfg.name](in_dim, out_dim, cfg)
        self.pool_to = 0 if cfg.name == "resampler" else (cfg.num_tokens if cfg.num_tokens > 0 else 0)
        self.base_tokens = cfg.num_tokens if cfg.name == "resampler" or cfg.num_tokens > 0 else encoder_tokens
        self.summary: nn.Module | None = None
        if cfg.summary_token:
            if summary_dim <= 0:
                raise ConfigError(
                    "summary_token needs the encoder's embedding/probability width (summary_dim > 0)."
                )
            self.summary = nn.Sequential(
                nn.LayerNorm(summary_dim),
                nn.Linear(summary_dim, out_dim),
                nn.GELU(),
                nn.Linear(out_dim, out_dim),
            )
        self.label_tokens: nn.Linear | None = None
        if cfg.label_embedding_init:
            if self.summary is None or num_labels <= 0 or num_labels > summary_dim:
                raise ConfigError(
                    "label_embedding_init needs summary_token: true and an encoder with an aux head (labels)."
                )
            self.label_tokens = nn.Linear(num_labels, out_dim, bias=False)  # weight (H, L): column k = E[k]
            last = cast(nn.Linear, self.summary[-1])  # the summary MLP built above ends in a Linear
            nn.init.zeros_(last.weight)  # the MLP starts as a zero residual on probs @ E
            nn.init.zeros_(last.bias)

    @torch.no_grad()
    def init_label_embeddings(self, label_embeddings: torch.Tensor) -> None:
        """Set E (L, H): row k is the LLM's embedding of label k (see ``label_embedding_init``)."""
        if self.label_tokens is None:
            raise ConfigError("This projector was built without label_embedding_init.")
        if tuple(label_embeddings.shape) != (self.label_tokens.in_features, self.label_tokens.out_features):
            raise ConfigError(
                f"label embeddings must be (num_labels, hidden) = "
                f"{(self.label_tokens.in_features, self.label_tokens.out_features)}, got {tuple(label_embeddings.shape)}."
            )
        self.label_tokens.weight.copy_(label_embeddings.T)

    @property
    def num_tokens(self) -> int:
        """Tokens per ECG in the LLM input."""
        return self.base_tokens + (1 if self.summary is not None else 0)

    def forward(self, tokens: torch.Tensor, summary: torch.Tensor | None = None) -> torch.Tensor:
        x = self.norm(tokens)  # (B, N, C)
        if self.pool_to:
            x = F.adaptive_avg_pool1d(x.transpose(1, 2), self.pool_to).transpose(1, 2)  # (B, K, C)
        out = self.body(x)  # (B, K, H)
        if self.summary is not None:
            if summary is None:
                raise ConfigError("This projector has a summary token; pass the encoder summary (B, S).")
            token = self.summary(summary)  # (B, H)
            if self.label_tokens is not None:
                # the aux probabilities are the last L columns of the summary
                probs = summary[:, -self.label_tokens.in_features :]  # (B, L)
                token = token + self.label_tokens(probs)  # + probs @ E
            out = torch.cat([out, token.unsqueeze(1)], dim=1)  # (B, K + 1, H)
        return out


build_projector = EcgProjector
"""Projector from its config: ``build_projector(cfg, in_dim, out_dim, encoder_tokens, summary_dim, num_labels)``;
``out_dim`` comes from the LLM's config, ``in_dim`` from the encoder's, ``summary_dim`` = encoder embedding +
``num_labels`` aux probabilities (last)."""
