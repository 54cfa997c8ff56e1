"""EcgLlm: frozen stage-1 encoder -> projector -> ``masked_scatter`` into the LLM's input embeddings (+ aux head).

One ``save_pretrained`` directory holds everything needed to reload:
``config.json`` (EcgLlmConfig), ``encoder/`` (stage-1 copy), ``tokenizer/``, ``projector.safetensors`` and the peft
adapter (``adapter_config.json`` + ``adapter_model.safetensors``), or ``llm/`` with merged weights after ``merge_lora``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from bridge.configuration import EcgLlmConfig
from bridge.llm import check_device, embedding_weight, find_lora_targets, hidden_size, load_llm
from bridge.processor import EcgChatProcessor
from bridge.projector import build_projector
from bridge.prompting import (  # noqa: F401  (label helpers re-exported: ``from bridge.modeling import ...``)
    PromptBuilder,
    PromptPolicy,
    is_superclass,
    label_description,
    labels_in_question,
    superclass_of,
    superclasses,
)
from encoder.errors import CheckpointError, ConfigError, EcgInputError
from encoder.modeling import EcgEncoder

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from bridge.llm import CausalLm


class EcgTokenCountError(EcgInputError):
    """The number of ``<ecg>`` placeholders differs from the number of projected ECG tokens."""


@dataclass
class EcgFeatures:
    """Frozen-encoder outputs for M ECGs (cacheable: the encoder never changes in stage 2)."""

    tokens: torch.Tensor  # (M, N, C)
    summary: torch.Tensor  # (M, D + L): pooled embedding and aux probabilities
    probs: torch.Tensor  # (M, L) calibrated aux-head probabilities (L may be 0)
    aux: dict[str, torch.Tensor] = field(default_factory=dict)
    """Multi-task head outputs, task -> (M, K) probabilities / normalised values (empty without that head)."""

    def index(self, rows: torch.Tensor | list[int]) -> EcgFeatures:
        rows = torch.as_tensor(rows, dtype=torch.long)
        aux = {n: v[rows] for n, v in self.aux.items()}
        return EcgFeatures(self.tokens[rows], self.summary[rows], self.probs[rows], aux)

    def to(self, device) -> EcgFeatures:
        aux = {n: v.to(device) for n, v in self.aux.items()}
        return EcgFeatures(self.tokens.to(device), self.summary.to(device), self.probs.to(device), aux)

    def __len__(self) -> int:
        return int(self.tokens.shape[0])


def resize_for_tokenizer(llm: PreTrainedModel, tokenizer) -> None:
    """Grow the embedding matrix for added tokens; new rows = mean of the old ones (deterministic on reload)."""
    old = embedding_weight(llm.get_input_embeddings()).shape[0]
    if len(tokenizer) <= old:  # e.g. Qwen reserves spare rows
        return
    llm.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    with torch.no_grad():
        for emb in {
            id(m): m for m in (llm.get_input_embeddings(), llm.get_output_embeddings()) if m is not None
        }.values():
            weight = embedding_weight(emb)  # (V, H)
            weight[old:] = weight[:old].float().mean(0).to(weight.dtype)


@torch.no_grad()
def label_embeddings(llm: PreTrainedModel, tokenizer, codes: list[str]) -> torch.Tensor:
    """(L, H) float32: row k = mean input embedding of the tokens of label k's description."""
    table = embedding_weight(llm.get_input_embeddings())  # (V, H)
    rows = []
    for code in codes:
        ids = tokenizer(" " + label_description(code), add_special_tokens=False)["input_ids"]
        rows.append(table[torch.tensor(ids, device=table.device)].float().mean(dim=0))
    return torch.stack(rows).cpu()


class EcgLlm(nn.Module):
    """Frozen encoder + trainable projector + (LoRA-adapted) causal LLM."""

    def __init__(self, config: EcgLlmConfig, encoder: EcgEncoder, llm: PreTrainedModel, tokenizer) -> None:
        super().__init__()
        self.config = config
        self.encoder = encoder.requires_grad_(False).eval()
        self.llm: CausalLm = llm
        self.tokenizer = tokenizer
        ecfg = encoder.config
        shifts = config.verdict_logit_shift
        if shifts is not None and len(shifts) != len(ecfg.label_names):
            raise CheckpointError(
                f"verdict_logit_shift has {len(shifts)} entries for {len(ecfg.label_names)} encoder labels; "
                "the stage-2 config and its encoder do not belong together."
            )
        self.encoder_tokens = ecfg.num_tokens(ecfg.input_samples)
        self.summary_dim = ecfg.embed_dim + len(ecfg.label_names)
        self.projector = build_projector(
            config.projector,
            ecfg.token_dim,
            hidden_size(llm),
            self.encoder_tokens,
            self.summary_dim,
            num_labels=len(ecfg.label_names),
        )
        self.processor = EcgChatProcessor(
            tokenizer, self.projector.num_tokens, config.ecg_token, config.system_prompt
        )
        resize_for_tokenizer(llm, tokenizer)
        if config.projector.label_embedding_init:
            self.projector.init_label_embeddings(label_embeddings(llm, tokenizer, self.label_names))
        self.ecg_token_id = self.processor.ecg_token_id
        self.merged = False

    # ----- construction -----------------------------------------------------------------------------------
    @classmethod
    def build(cls, config: EcgLlmConfig, encoder: EcgEncoder | str | os.PathLike) -> EcgLlm:
        """Fresh stage-2 model: load encoder + LLM, add the placeholder token, wrap the LLM with LoRA."""
        if not isinstance(encoder, EcgEncoder):
            encoder = load_encoder(encoder)
        llm, tokenizer = load_llm(
            config.llm,
            quantization=config.quantization,
            dtype=config.dtype,
            trust_remote_code=config.trust_remote_code,
        )
        model = cls(config, encoder, llm, tokenizer)
        model.projector.to(next(llm.parameters()).device)
        quantized = getattr(llm, "is_loaded_in_4bit", False) or getattr(llm, "is_loaded_in_8bit", False)
        if quantized:
            from peft import prepare_model_for_kbit_training

            llm = prepare_model_for_kbit_training(
                llm,
                use_gradient_checkpointing=config.gradient_checkpointing,
                gradient_checkpointing_kwargs={"use_reentrant": False},
            )
        elif config.gradient_checkpointing:
            llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if config.lora_r > 0:
            from peft import LoraConfig, get_peft_model

            found = find_lora_targets(llm)
            targets = config.lora_targets or found
            unknown = sorted(set(targets) - set(found))
            if unknown:
                raise ConfigError(
                    f"lora_targets {unknown} are not Linear layers of the decoder; found {found}."
                )
            lora = LoraConfig(
                r=config.lora_r,
                lora_alpha=config.lora_alpha,
                lora_dropout=config.lora_dropout,
                target_modules=list(targets),
                task_type="CAUSAL_LM",
            )
            llm = get_peft_model(llm, lora)
        else:
            llm.requires_grad_(False)
        model.llm = llm
        return model

    def train(self, mode: bool = True) -> EcgLlm:
        super().train(mode)
        self.encoder.eval()  # frozen: BatchNorm statistics and dropout never change
        return self

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Only the trained tensors (projector + LoRA), keyed by parameter name."""
        return {n: p.detach() for n, p in self.named_parameters() if p.requires_grad}

    # ----- encoder side -----------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_ecgs(self, ecg: torch.Tensor) -> EcgFeatures:
        """(M, 12, T) model-ready ECGs -> frozen features (tokens, summary, calibrated aux probabilities)."""
        self.encoder.eval()
        device = next(self.encoder.parameters()).device
        out = self.encoder(ecg.to(device=device, dtype=torch.float32))
        if out.logits is not None:
            probs = self.encoder.calibrated_probs(out.logits)  # (M, L)
        else:
            probs = out.embedding.new_zeros((out.embedding.shape[0], 0))
        summary = torch.cat([out.embedding, probs], dim=-1)  # (M, D + L)
        aux = {}
        if out.aux_logits is not None:
            from encoder.multitask import probabilities

            aux = {n: probabilities(n, v).float() for n, v in out.aux_logits.items()}
        return EcgFeatures(out.tokens.float(), summary.float(), probs.float(), aux)

    @property
    def label_names(self) -> list[str]:
        return list(self.encoder.config.label_names)

    @property
    def prompts(self) -> PromptBuilder:
        """The prompt builder of this model's head and prompt policy (read from the config on each call)."""
        ecfg = self.encoder.config
        shifts = self.config.verdict_logit_shift
        return PromptBuilder(
            PromptPolicy.from_config(self.config),
            tuple(ecfg.label_names),
            tuple(ecfg.label_thresholds) if ecfg.label_thresholds else None,
            tuple(shifts) if shifts is not None else None,
            dict(getattr(ecfg, "aux_thresholds", None) or {}),
        )

    def findings(self, probs: torch.Tensor) -> list[list[str]]:
        """Findings per ECG ((n, L) probs); see ``PromptBuilder.findings``."""
        return self.prompts.findings(probs)

    @property
    def thresholds(self) -> list[float]:
        """Per-label decision thresholds; see ``PromptBuilder.thresholds``."""
        return self.prompts.thresholds

    def verdict(self, j: int, prob: float) -> bool:
        """The head's yes/no on label ``j``; see ``PromptBuilder.verdict``."""
        return self.prompts.verdict(j, prob)

    def hint_lines(
        self, findings: list[list[str]], question: str | None = None, probs: torch.Tensor | None = None
    ) -> list[str] | None:
        """Prompt hint lines from per-ECG findings; see ``PromptBuilder.hint_lines``."""
        return self.prompts.hint_lines(findings, question, probs)

    # ----- LLM side ---------------------------------------------------------------------------------------
    def project(self, features: EcgFeatures) -> torch.Tensor:
        """(M, N, C) features -> (M, K, H) LLM-space tokens."""
        p = next(self.projector.parameters())
        return self.projector(features.tokens.to(p.device, p.dtype), features.summary.to(p.device, p.dtype))

    def embed(self, input_ids: torch.Tensor, features: EcgFeatures | None) -> torch.Tensor:
        """Token embeddings with the projected ECG tokens scattered into the ``<ecg>`` positions."""
        embeds = self.llm.get_input_embeddings()(input_ids)  # (B, T, H)
        mask = input_ids == self.ecg_token_id  # (B, T)
        expected = 0 if features is None else len(features) * self.projector.num_tokens
        if int(mask.sum()) != expected:
            raise EcgTokenCountError(
                f"The batch has {int(mask.sum())} {self.config.ecg_token} placeholders but "
                f"{expected} projected ECG tokens ({0 if features is None else len(features)} ECGs x "
                f"{self.projector.num_tokens}); build prompts with the model's processor."
            )
        if features is None:
            return embeds
        projected = self.project(features).to(embeds.dtype)  # (M, K, H), M ECGs in prompt order
        return embeds.masked_scatter(mask.unsqueeze(-1), projected.reshape(-1, projected.shape[-1]))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        features: EcgFeatures | None = None,
        labels: torch.Tensor | None = None,
        ecg: torch.Tensor | None = None,
        logits_to_keep: int | torch.Tensor = 0,
    ):
        """Causal-LM output; pass cached ``features`` or raw ``ecg`` (M, 12, T) in prompt order.

        ``logits_to_keep``: transformers' option: 0 = logits at every position, else only at the given (K,)
        positions (or the last N), so training computes the LM head where the loss needs it.
        """
        if features is None and ecg is not None:
            features = self.encode_ecgs(ecg)
        embeds = self.embed(input_ids, features)
        keep = (
            {}
            if isinstance(logits_to_keep, int) and logits_to_keep == 0
            else {"logits_to_keep": logits_to_keep}
        )
        return self.llm(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels, **keep)

    @torch.no_grad()
    def generate(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, features: EcgFeatures | None, **kwargs
    ) -> torch.Tensor:
        """Greedy by default; returns only the new token ids (B, T_new). Prompts must be left-padded."""
        embeds = self.embed(input_ids, features)
        kwargs.setdefault("do_sample", False)
        kwargs.setdefault("pad_token_id", self.tokenizer.pad_token_id)
        kwargs.setdefault("suppress_tokens", [self.ecg_token_id])
        # transformers types ``generate`` on GenerationMixin, which the PreTrainedModel annotation does not include
        return self.llm.generate(inputs_embeds=embeds, attention_mask=attention_mask, **kwargs)  # type: ignore[operator]

    # ----- save / load ------------------------------------------------------------------------------------
    def merge_lora(self) -> EcgLlm:
        """Fold the LoRA weights into the LLM for deployment (not possible on a 4/8-bit model)."""
        merge_and_unload = getattr(self.llm, "merge_and_unload", None)  # peft models only
        if merge_and_unload is not None:
            if getattr(self.llm, "is_loaded_in_4bit", False) or getattr(self.llm, "is_loaded_in_8bit", False):
                raise ConfigError(
                    "Cannot merge LoRA into a quantized LLM; reload with quantization='none' first."
                )
            self.llm = merge_and_unload()
            self.merged = True
        return self

    def save_pretrained(self, out_dir: str | os.PathLike) -> Path:
        """Write the whole model (config, encoder copy, tokenizer, projector, adapter or merged LLM) atomically."""
        out_dir = Path(out_dir)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
        try:
            self.config.save(tmp / "config.json")
            self.encoder.save_pretrained(tmp / "encoder")
            self.tokenizer.save_pretrained(tmp / "tokenizer")
            save_file(
                {k: v.contiguous().cpu() for k, v in self.projector.state_dict().items()},
                tmp / "projector.safetensors",
            )
            if self.merged or not hasattr(self.llm, "peft_config"):
                if self.merged:
                    self.llm.save_pretrained(str(tmp / "llm"))
                    self.tokenizer.save_pretrained(tmp / "llm")
            else:
                self.llm.save_pretrained(str(tmp), save_embedding_layers=False)
            if out_dir.exists():
                old = out_dir.with_name(f".{out_dir.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(out_dir, old)
                os.replace(tmp, out_dir)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, out_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return out_dir

    @classmethod
    def from_pretrained(
        cls,
        model_dir: str | os.PathLike,
        *,
        llm: str | None = None,
        quantization: str | None = None,
        dtype: str | None = None,
        device: str | torch.device | None = None,
        is_trainable: bool = False,
    ) -> EcgLlm:
        """Reload a ``save_pretrained`` directory; ``llm`` overrides where the base LLM is found."""
        from transformers import AutoTokenizer

        model_dir = Path(model_dir)
        if device is not None:
            device = check_device(device)  # before minutes of loading
        config = EcgLlmConfig.load(model_dir / "config.json")
        for name in ("projector.safetensors", "encoder", "tokenizer"):
            if not (model_dir / name).exists():
                raise CheckpointError(f"{model_dir / name} is missing; the model directory is incomplete.")
        if llm is not None:
            config.llm = llm
        if quantization is not None:
            config.quantization = quantization
        if dtype is not None:
            config.dtype = dtype
        merged = (model_dir / "llm").is_dir()
        base, _ = load_llm(
            model_dir / "llm" if merged else config.llm,
            quantization=config.quantization,
            dtype=config.dtype,
            trust_remote_code=config.trust_remote_code,
        )
        tokenizer = AutoTokenizer.from_pretrained(model_dir / "tokenizer", local_files_only=True)
        model = cls(config, load_encoder(model_dir / "encoder"), base, tokenizer)
        if not merged and (model_dir / "adapter_config.json").is_file():
            from peft import PeftModel

            model.llm = PeftModel.from_pretrained(base, model_dir, is_trainable=is_trainable)
        model.merged = merged
        state = load_file(model_dir / "projector.safetensors")
        missing, unexpected = model.projector.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise CheckpointError(
                f"Projector weights do not match the config: missing={missing} unexpected={unexpected}"
            )
        if device is not None:
            model.to(device)
        else:
            model.projector.to(next(model.llm.parameters()).device)
        return model.eval()


def load_encoder(path: str | os.PathLike) -> EcgEncoder:
    """A stage-1 encoder folder (``<run>/encoder``) -> frozen EcgEncoder."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise CheckpointError(
            f"{path} is not a stage-1 encoder folder (no config.json); point to `<stage-1 run>/encoder`."
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        encoder = EcgEncoder.from_pretrained(path, use_safetensors=True)
    return encoder.requires_grad_(False).eval()
