"""1D-ResNet ECG encoder with a timm-style ``forward_features`` / ``forward_head`` split."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from encoder.configuration import EcgEncoderConfig
from encoder.multitask import AuxHead, probabilities


class BasicBlock1d(nn.Module):
    """Two k-wide convolutions with a residual connection (stride on the first)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.conv1 = nn.Conv1d(in_ch, out_ch, kernel_size, stride=stride, padding=pad, bias=False)
        self.bn1 = nn.BatchNorm1d(out_ch)
        self.conv2 = nn.Conv1d(out_ch, out_ch, kernel_size, padding=pad, bias=False)
        self.bn2 = nn.BatchNorm1d(out_ch)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv1d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm1d(out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, T) -> (B, C_out, T / stride)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


@dataclass
class EcgEncoderOutput(ModelOutput):
    tokens: torch.Tensor | None = None  # (B, N, C) token sequence for stage 2
    embedding: torch.Tensor | None = None  # (B, D) projected, not normalised
    logits: torch.Tensor | None = None  # (B, L) classifier logits (None when there are no labels)
    aux_logits: dict[str, torch.Tensor] | None = (
        None  # task -> (B, K) multi-task head outputs (None: no aux tasks)
    )


class EcgEncoder(PreTrainedModel):
    """12-lead ECG -> token sequence (B, N, C), pooled embedding (B, D) and per-label logits (B, L).

    Input: float tensor (B, 12, T) at ``config.sampling_rate``, per-lead normalised, absent leads zero.
    """

    config_class = EcgEncoderConfig
    config: EcgEncoderConfig
    base_model_prefix = "ecg_encoder"
    main_input_name = "ecg"

    def __init__(self, config: EcgEncoderConfig) -> None:
        super().__init__(config)
        w = config.widths
        self.stem = nn.Sequential(
            nn.Conv1d(
                config.in_leads,
                w[0],
                config.stem_kernel_size,
                stride=2,
                padding=config.stem_kernel_size // 2,
                bias=False,
            ),
            nn.BatchNorm1d(w[0]),
            nn.ReLU(inplace=True),
            nn.MaxPool1d(3, stride=2, padding=1),
        )
        stages, in_ch = [], w[0]
        for i, (width, depth) in enumerate(zip(w, config.depths, strict=True)):
            blocks = [BasicBlock1d(in_ch, width, config.kernel_size, stride=1 if i == 0 else 2)]
            blocks += [BasicBlock1d(width, width, config.kernel_size, stride=1) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*blocks))
            in_ch = width
        self.stages = nn.Sequential(*stages)
        self.dropout = nn.Dropout(config.dropout)
        # mean + max pooled features -> shared embedding
        self.projection = nn.Linear(2 * config.token_dim, config.embed_dim)
        self.classifier = nn.Linear(config.embed_dim, len(config.label_names)) if config.label_names else None
        self.aux_head = AuxHead(config.embed_dim, config.aux_tasks) if config.aux_tasks else None
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Conv1d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm1d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward_features(self, ecg: torch.Tensor) -> torch.Tensor:
        """(B, 12, T) -> token sequence (B, N, C) with N = ``config.num_tokens(T)``, C = ``config.token_dim``."""
        if ecg.ndim != 3 or ecg.shape[1] != self.config.in_leads:
            from encoder.errors import EcgInputError

            raise EcgInputError(
                f"Expected an ECG batch of shape (B, {self.config.in_leads}, T), got {tuple(ecg.shape)}."
            )
        x = self.stages(self.stem(ecg))  # (B, C, N)
        return x.transpose(1, 2)  # (B, N, C)

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, N, C) -> (B, D) projected embedding (mean and max pooling, then a linear layer)."""
        pooled = torch.cat([tokens.mean(dim=1), tokens.amax(dim=1)], dim=-1)  # (B, 2C)
        return self.projection(self.dropout(pooled))

    def forward_head(self, embedding: torch.Tensor) -> torch.Tensor:
        """(B, D) -> per-label logits (B, L)."""
        if self.classifier is None:
            from encoder.errors import ConfigError

            raise ConfigError("This encoder has no classifier head (config.label_names is empty).")
        return self.classifier(embedding)

    def forward(self, ecg: torch.Tensor) -> EcgEncoderOutput:
        tokens = self.forward_features(ecg)
        embedding = self.pool(tokens)
        logits = self.forward_head(embedding) if self.classifier is not None else None
        aux = self.aux_head(embedding) if self.aux_head is not None else None
        return EcgEncoderOutput(tokens=tokens, embedding=embedding, logits=logits, aux_logits=aux)

    def calibrated_probs(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, L) logits -> calibrated probabilities (temperature scaling from the config when set)."""
        if self.config.label_temperature is not None:
            logits = logits / torch.tensor(
                self.config.label_temperature, dtype=logits.dtype, device=logits.device
            )
        return torch.sigmoid(logits)

    @torch.no_grad()
    def predict_proba(self, ecg: torch.Tensor) -> torch.Tensor:
        """Calibrated per-label probabilities (B, L)."""
        embedding = self.pool(self.forward_features(ecg))  # (B, D)
        return self.calibrated_probs(self.forward_head(embedding))  # ConfigError without a classifier head

    @torch.no_grad()
    def predict_aux(self, ecg: torch.Tensor) -> dict[str, torch.Tensor]:
        """Multi-task head outputs as probabilities / normalised values: task -> (B, K)."""
        if self.aux_head is None:
            from encoder.errors import ConfigError

            raise ConfigError(
                "This encoder has no aux heads (config.aux_tasks is empty); train with aux tasks."
            )
        logits = self.aux_head(self.pool(self.forward_features(ecg)))  # task -> (B, K)
        return {n: probabilities(n, v) for n, v in logits.items()}

    @torch.no_grad()
    def predict_attributes(self, ecg: torch.Tensor) -> list:
        """(B, 12, T) -> the ECG-QA attributes the aux heads predict (``EcgAttributes`` per ECG; thresholds
        from ``config.aux_thresholds``)."""
        from encoder.multitask import decode

        device = next(self.parameters()).device
        probs = {n: v.cpu().numpy() for n, v in self.predict_aux(ecg.to(device, torch.float32)).items()}
        return [
            decode({n: p[i] for n, p in probs.items()}, self.config.aux_thresholds) for i in range(len(ecg))
        ]
