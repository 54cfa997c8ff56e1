"""ECG-text dual model: the ECG encoder, a text projection and the learnable logit scale / bias (SigLIP).

``EcgClipModel.save_pretrained(dir)`` writes everything zero-shot classification needs, no side files:
    ``encoder/``                      EcgEncoder.save_pretrained (config + safetensors)
    ``clip_head.safetensors``         text_projection, logit_scale, logit_bias, label_text_features (L, H)
    ``clip_config.json``              text tower config, dims, label names and label texts
    ``text_tower/`` (only when the tower was fine-tuned / LoRA-merged)
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TypedDict

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from encoder.config_io import atomic_write_json
from encoder.errors import CheckpointError, ConfigError
from encoder.loss import pair_logits
from encoder.modeling import EcgEncoder, EcgEncoderOutput
from encoder.text import TextTower, TextTowerConfig

LOGIT_SCALE_MAX = math.log(100.0)  # open_clip's clamp: exp(scale) <= 100


class ClipOutputs(TypedDict):
    """What :meth:`EcgClipModel.forward` returns (what the global-batch loss needs)."""

    logits: torch.Tensor  # (B, B) pair logits
    class_logits: torch.Tensor | None  # (B, L) classifier-head logits (None without a head)
    aux_logits: dict[str, torch.Tensor] | None  # task -> (B, K) aux-head outputs (None without aux tasks)
    ecg_emb: torch.Tensor  # (B, D) L2-normalised
    text_emb: torch.Tensor  # (B, D) L2-normalised
    logit_scale: torch.Tensor  # () clamped
    logit_bias: torch.Tensor  # ()


class EcgClipModel(nn.Module):
    """Encoder + text projection + ``logit_scale`` (init log 10) and ``logit_bias`` (init -10).

    ``text_tower`` is registered as a submodule only when it trains (fine-tune / LoRA); a frozen tower is used
    through its cached feature table and never enters the optimizer or the checkpoints.
    """

    def __init__(
        self,
        encoder: EcgEncoder,
        text_dim: int,
        text_cfg: TextTowerConfig | None = None,
        init_logit_scale: float = math.log(10.0),
        init_logit_bias: float = -10.0,
        text_tower: TextTower | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.text_dim = int(text_dim)
        self.text_cfg = text_cfg or TextTowerConfig()
        self.text_projection = nn.Linear(text_dim, encoder.config.embed_dim, bias=False)
        nn.init.normal_(self.text_projection.weight, std=text_dim**-0.5)
        self.logit_scale = nn.Parameter(torch.tensor(float(init_logit_scale)))
        self.logit_bias = nn.Parameter(torch.tensor(float(init_logit_bias)))
        self.text_tower = text_tower if text_tower is not None and not text_tower.frozen else None
        self.label_texts: list[str] = []
        self.register_buffer("label_text_features", torch.zeros(0, text_dim), persistent=False)

    def encode_ecg(self, ecg: torch.Tensor) -> tuple[EcgEncoderOutput, torch.Tensor]:
        """(B, 12, T) -> encoder output and the L2-normalised embedding (B, D)."""
        out = self.encoder(ecg)
        return out, F.normalize(out.embedding.float(), dim=-1)

    def encode_text_features(self, features: torch.Tensor) -> torch.Tensor:
        """Text-tower features (B, H) -> L2-normalised shared embedding (B, D)."""
        return F.normalize(self.text_projection(features.float()), dim=-1)

    def forward(
        self, ecg: torch.Tensor, text_features: torch.Tensor | None = None, texts: Sequence[str] | None = None
    ) -> ClipOutputs:
        """ECGs (B, 12, T) and their texts, as cached tower features (B, H) or, for a training tower, the texts ->
        ``logits`` (B, B) pair logits, ``class_logits`` (B, L) or None, ``ecg_emb`` / ``text_emb`` (B, D), the
        clamped ``logit_scale`` and the ``logit_bias`` (what the global-batch loss needs)."""
        if text_features is None:
            if texts is None or self.text_tower is None:
                raise ConfigError("Pass text_features, or texts to a model whose text tower trains.")
            text_features = self.text_tower(texts)  # (B, H) with gradients
        out, ecg_emb = self.encode_ecg(ecg)
        text_emb = self.encode_text_features(text_features)
        scale = self.logit_scale.clamp(max=LOGIT_SCALE_MAX)
        logits = pair_logits(ecg_emb, text_emb, scale, self.logit_bias)  # (B, B)
        return {
            "logits": logits,
            "class_logits": out.logits,
            "aux_logits": out.aux_logits,
            "ecg_emb": ecg_emb,
            "text_emb": text_emb,
            "logit_scale": scale,
            "logit_bias": self.logit_bias,
        }

    # --- zero-shot ------------------------------------------------------------------------------------------------

    def set_label_texts(self, texts: list[str], features: torch.Tensor) -> None:
        """Remember one text per label (in ``encoder.config.label_names`` order) and its tower features (L, H)."""
        self.label_texts = list(texts)
        self.label_text_features = features.detach().float().to(self.logit_scale.device)

    @torch.no_grad()
    def zero_shot_logits(self, ecg: torch.Tensor) -> torch.Tensor:
        """(B, 12, T) -> (B, L) pair logits of each ECG with each label's text (sigmoid -> probability)."""
        if self.label_text_features.shape[0] == 0:
            raise CheckpointError("This model has no label texts; call set_label_texts() (training does).")
        _, ecg_emb = self.encode_ecg(ecg)
        label_emb = self.encode_text_features(self.label_text_features)  # (L, D)
        return pair_logits(ecg_emb, label_emb, self.logit_scale.clamp(max=LOGIT_SCALE_MAX), self.logit_bias)

    # --- persistence ----------------------------------------------------------------------------------------------

    def save_pretrained(self, out_dir: str | Path) -> Path:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(out / "encoder")
        tensors = {
            "text_projection.weight": self.text_projection.weight.detach().cpu().contiguous(),
            "logit_scale": self.logit_scale.detach().cpu().reshape(1),
            "logit_bias": self.logit_bias.detach().cpu().reshape(1),
            "label_text_features": self.label_text_features.detach().cpu().contiguous(),
        }
        save_file(tensors, str(out / "clip_head.safetensors"))
        text_cfg = asdict(self.text_cfg)
        if self.text_tower is not None:  # trained tower: save it (LoRA merged) and point the config at it
            model = self.text_tower.model
            if hasattr(model, "merge_and_unload"):
                import copy

                model = copy.deepcopy(model).merge_and_unload()
            model.save_pretrained(out / "text_tower")
            self.text_tower.tokenizer.save_pretrained(out / "text_tower")
            text_cfg.update(model="text_tower", train_mode="frozen")
        atomic_write_json(
            out / "clip_config.json",
            {"text_dim": self.text_dim, "text_tower": text_cfg, "label_texts": self.label_texts},
        )
        return out

    @classmethod
    def from_pretrained(cls, model_dir: str | Path) -> EcgClipModel:
        d = Path(model_dir)
        if not (d / "clip_config.json").is_file() or not (d / "clip_head.safetensors").is_file():
            raise CheckpointError(
                f"{d} is not an EcgClipModel folder (clip_config.json / clip_head.safetensors missing)."
            )
        meta = json.loads((d / "clip_config.json").read_text())
        text_cfg = TextTowerConfig(**meta["text_tower"])
        if text_cfg.model == "text_tower":
            text_cfg.model = str(d / "text_tower")
        model = cls(EcgEncoder.from_pretrained(d / "encoder"), meta["text_dim"], text_cfg)
        t = load_file(str(d / "clip_head.safetensors"))
        with torch.no_grad():
            model.text_projection.weight.copy_(t["text_projection.weight"])
            model.logit_scale.copy_(t["logit_scale"][0])
            model.logit_bias.copy_(t["logit_bias"][0])
        model.set_label_texts(meta.get("label_texts", []), t["label_text_features"])
        return model.eval()
