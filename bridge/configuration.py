"""Configuration of the stage-2 model (frozen ECG encoder -> projector -> LoRA LLM)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from bridge.asked_hint import ASKED_FORMATS
from bridge.projector import ProjectorConfig
from encoder.config_io import atomic_write_json
from encoder.errors import CheckpointError, ConfigError


@dataclass
class EcgLlmConfig:
    llm: str = "packaged:smollm2-135m-instruct"
    """Base causal LLM: ``packaged:<name>``, a local folder, or a hub id already in the local HF cache."""
    projector: ProjectorConfig = field(default_factory=ProjectorConfig)
    """ECG token projector (type, tokens per ECG, summary token)."""
    ecg_token: str = "<ecg>"
    """Placeholder special token; each ECG is this token repeated ``projector.num_tokens`` times."""
    system_prompt: str | None = "You are an ECG assistant. Answer briefly."
    """System message (short prompts keep CPU training fast); None = the template's default."""
    findings_hint: bool = False
    """Add the aux head's top findings as text to the prompt."""
    findings_top_k: int = 3
    """At most this many findings per ECG in the hint."""
    findings_superclass: bool = True
    """Also name the findings' PTB-XL diagnostic superclasses in the hint (ECG-QA asks about those too)."""
    findings_for_question: bool = False
    """Also give the aux head's yes/no on each label the question names (``asked: atrial fibrillation yes``),
    also when it is not among the top findings."""
    asked_format: str = "grouped"
    """How ``findings_for_question`` states the head's verdicts: ``per_label`` (``asked: atrial fibrillation yes,
    sinus rhythm no``) or ``grouped`` (``asked shown: atrial fibrillation; asked not shown: sinus rhythm``; a
    choose question's answer then stands verbatim in the prompt; all 727 quickstart test choose questions: 87.8
    vs 85.1 with ``per_label``)."""
    verdict_prior_shift: bool = False
    """With ``findings_for_question``: correct the yes/no for how often a label the question names is present
    in the training questions (prior shift, fitted by ``finetune``) instead of the head's F1-tuned thresholds."""
    verdict_logit_shift: list[float | None] | None = None
    """Per-label log-odds shifts fitted by ``finetune`` when ``verdict_prior_shift`` is on (None: not fitted;
    a None entry: that label keeps its threshold)."""
    findings_threshold: float = 0.5
    """Findings with calibrated probability above this (or the encoder's per-label thresholds) enter the hint."""
    attribute_hint: str = "all"
    """With ``findings_hint`` and an encoder with a multi-task aux head: its decoded attributes as hint lines
    (noise per lead, extra systoles, axis, infarction stage, pacemaker, intervals in ms with their class,
    form-statement leads). ``all`` lines, only the lines the question is about (``asked``: shorter prompts), or
    ``off``. No effect with an encoder without that head."""
    comparison_hint: bool = False
    """With ``findings_hint``, for a two-ECG question: a line of what changed from the first ECG to the second by
    the heads' verdicts (statements new / gone / still present over every statement the comparison templates ask
    about; numeric features now abnormal / now normal / still abnormal), ``bridge.comparison_hint``."""
    lora_r: int = 16
    """LoRA rank (0 = no LoRA: only the projector trains)."""
    lora_alpha: int = 32
    """LoRA scaling numerator."""
    lora_dropout: float = 0.05
    """Dropout on the LoRA branch."""
    lora_targets: list[str] | None = None
    """Linear layer names to adapt; None = every Linear found inside the decoder layers."""
    quantization: str = "none"
    """LLM weights: ``none``, ``4bit`` (QLoRA, NF4 via bitsandbytes) or ``8bit``."""
    dtype: str = "auto"
    """LLM compute dtype: auto (bf16 on a capable GPU, else fp32), float32, bfloat16, float16."""
    gradient_checkpointing: bool = False
    """Recompute LLM activations in the backward pass (saves memory, costs time)."""
    trust_remote_code: bool = False
    """Allow model code from the LLM folder (off unless you trust it)."""

    def __post_init__(self) -> None:
        if isinstance(self.projector, dict):
            self.projector = ProjectorConfig(**self.projector)
        if self.lora_r < 0 or self.findings_top_k < 0:
            raise ConfigError("lora_r and findings_top_k must be >= 0.")
        if self.asked_format not in ASKED_FORMATS:
            raise ConfigError(
                f"Unknown asked_format {self.asked_format!r}; choose one of {sorted(ASKED_FORMATS)}."
            )
        if self.attribute_hint not in ("off", "all", "asked"):
            raise ConfigError(f"Unknown attribute_hint {self.attribute_hint!r}; choose off, all or asked.")
        if self.verdict_prior_shift and not (self.findings_hint and self.findings_for_question):
            raise ConfigError(
                "verdict_prior_shift corrects the yes/no on asked labels: set findings_hint and "
                "findings_for_question to true as well."
            )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        atomic_write_json(path, {"model_type": "ecg_llm", **self.to_dict()})

    @classmethod
    def load(cls, path: str | Path) -> EcgLlmConfig:
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"{path} is missing; this is not a stage-2 model directory.")
        data = json.loads(path.read_text())
        if data.pop("model_type", None) != "ecg_llm":
            raise CheckpointError(f"{path} is not an ecg_llm config (model_type != 'ecg_llm').")
        # models saved before these options keep the prompts they were trained with
        data.setdefault("findings_superclass", False)
        data.setdefault("findings_for_question", False)
        data.setdefault("asked_format", "per_label")
        data.setdefault("attribute_hint", "off")
        data.setdefault("comparison_hint", False)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
