"""Stage-2 fine-tuning: projector + LoRA on ECG-QA, frozen encoder features cached once, crash-safe resume.

``run_finetune(FinetuneConfig) -> Path`` (the ``save_pretrained`` model directory). The training core is stage 1's
(``encoder.engine``): checkpoints through accelerate (only the trained tensors), ``metrics.csv`` + TensorBoard,
the non-finite guard, the deterministic batch order, ``summary.json``. Launch it as one process or with
``accelerate launch --config_file configs/accelerate/<setup>.yaml -m llm_finetune.train --config ...``: every
process takes its block of each global batch, the loss is the mean over the answer tokens of the whole global
batch (as one process computes it), LoRA and projector gradients are synced by DDP, each process encodes a
shard of the ECGs for the feature cache, and the main process alone writes files and scores the held-out
questions.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from bridge.configuration import EcgLlmConfig
from bridge.modeling import EcgFeatures, EcgLlm
from encoder.config_io import atomic_write_json, check_config, save_resolved_config
from encoder.engine.batches import BatchOrder, shard
from encoder.engine.core import TrainingCore, optimizer_step
from encoder.engine.distributed import rank_and_world, sum_over_processes
from encoder.engine.settings import run_settings as engine_run_settings
from encoder.errors import ConfigError
from encoder.exclusion import source_record
from llm_finetune.data import QaDataset, QaSample, load_qa_samples, training_extras
from llm_finetune.features import FeatureStore, compute_features, ptbxl_reader
from llm_finetune.heldout import evaluate_heldout
from llm_finetune.question_prior import fit_verdict_shifts

log = logging.getLogger(__name__)

METRICS_FIELDS = ("split", "loss", "lr", "grad_norm", "skipped", "seconds")

FREE = {"resume_free": True}


@dataclass
class FinetuneConfig:
    """Stage-2 fine-tuning: data, model, optimisation, checkpointing, the held-out check."""

    data_root: str | None = None
    """PTB-XL-format folder with the signals (the synthetic cohort's output dir or a real PTB-XL copy)."""
    ecgqa_root: str | None = None
    """ECG-QA folder (``<root>/ptbxl/template/...``); default ``<data_root>/ecgqa``."""
    encoder: str = ""
    """Stage-1 encoder folder (``<stage-1 run>/encoder``)."""
    output_dir: str = field(default="runs/finetune", metadata=FREE)
    """Run folder: config.yaml, metrics.csv, checkpoints/, features.safetensors, summary.json, model/ (the result)."""
    model: EcgLlmConfig = field(default_factory=EcgLlmConfig)
    """Stage-2 model: LLM, projector, LoRA/QLoRA, findings hint."""
    ecg_input: Literal["tokens", "none"] = "tokens"
    """``tokens``: the ECG tokens (and findings hint) in every prompt. ``none``: the question-only baseline,
    trained the same steps on the same questions with no ECG tokens and no hint."""
    train_split: str = "train"
    """ECG-QA split to train on."""
    eval_split: str = field(default="valid", metadata=FREE)
    """ECG-QA split to score after training (held-out questions)."""
    question_types: list[str] | None = None
    """Keep only these ECG-QA question types (e.g. [single-verify, single-choose]); None = all."""
    question_type_weights: dict[str, float] | None = None
    """Training-set weight per question type (e.g. {single-choose: 2.0} sees each choose question twice per
    epoch; 0.5 keeps a seeded half); types not named keep weight 1."""
    describe_samples: int = field(default=0, metadata={"ge": 0})
    """Also train on this many "describe this ECG" questions (records of the training split answered with their
    ``report``; ``llm_finetune.vqa.describe``); 0 = none."""
    paraphrase_fraction: float = field(default=0.0, metadata={"ge": 0.0, "le": 1.0})
    """Also train on this fraction of the training questions reworded with the training paraphrase set
    (``llm_finetune.vqa.paraphrase``; its held-out set stays for evaluation)."""
    max_train_samples: int | None = field(default=None, metadata={"ge": 1})
    """Random subset of training questions (seeded); None = all."""
    max_eval_samples: int | None = field(default=200, metadata={"ge": 0, "resume_free": True})
    """Random subset of held-out questions scored at the end; 0 = skip evaluation."""
    max_steps: int = field(default=300, metadata={"ge": 1, "resume_free": True})
    """Optimizer steps (a resumed run may change it: the cosine schedule of the steps to come stretches)."""
    batch_size: int = field(default=8, metadata={"ge": 1})
    """Questions per global micro-batch, split evenly over the processes."""
    grad_accum: int = field(default=1, metadata={"ge": 1})
    """Micro-batches per optimizer step."""
    group_by_length: bool = False
    """Batch training questions of similar prompt length together (less padding, so cheaper steps; batches are
    still shuffled). Changes which questions share a batch, so it is a choice to make on the valid split."""
    lr: float = field(default=2e-4, metadata={"gt": 0.0})
    """Peak learning rate of the LoRA weights."""
    projector_lr: float = field(default=1e-3, metadata={"gt": 0.0})
    """Peak learning rate of the projector (higher: it starts from scratch)."""
    weight_decay: float = field(default=0.0, metadata={"ge": 0.0})
    """AdamW weight decay."""
    warmup_steps: int = field(default=20, metadata={"ge": 0})
    """Linear warmup steps, then cosine decay to 10 %."""
    max_grad_norm: float = field(default=1.0, metadata={"ge": 0.0})
    """Gradient clipping norm (0 = off)."""
    seed: int = 0
    """Seed of data order, projector init and dropout (same seed -> same loss curve, also after resume)."""
    checkpoint_every: int = field(default=50, metadata={"ge": 1, "resume_free": True})
    """Save a complete checkpoint every this many steps (atomic)."""
    keep_checkpoints: int = field(default=2, metadata={"ge": 1, "resume_free": True})
    """Newest checkpoints to keep."""
    resume: bool = field(default=True, metadata=FREE)
    """Continue from the newest complete checkpoint in output_dir/checkpoints (its weight-shaping settings must
    match this run's, else CheckpointError); false starts over and deletes that folder's old checkpoints."""
    nan_policy: Literal["skip", "stop"] = field(default="skip", metadata=FREE)
    """Non-finite loss or gradient: ``skip`` the step (parameters unchanged) or ``stop`` with an error."""
    max_bad_steps: int = field(default=10, metadata={"ge": 1, "resume_free": True})
    """Stop after this many consecutive skipped (non-finite) steps."""
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    """accelerate mixed precision: no, bf16 or fp16 (GPU)."""
    feature_batch_size: int = field(default=64, metadata={"ge": 1, "resume_free": True})
    """ECGs per batch when caching the frozen encoder's features."""
    eval_constrained: bool = field(default=True, metadata=FREE)
    """Score held-out questions by picking the most likely answer among the template's options."""
    eval_max_new_tokens: int = field(default=12, metadata={"ge": 1, "resume_free": True})
    """Tokens generated per answer in free-form evaluation."""
    progress: bool = field(default=True, metadata=FREE)
    """Show tqdm progress bars."""

    def __post_init__(self) -> None:
        check_config(self)


MODEL_RESUME_FREE = ("model.gradient_checkpointing",)
"""Resume-free fields of ``EcgLlmConfig`` (a memory saver), until bridge/configuration.py marks them itself."""


def run_settings(cfg: FinetuneConfig) -> dict:
    """The settings a run's weights depend on, JSON-ready (saved with each checkpoint, checked on resume)."""
    return engine_run_settings(cfg, paths=("data_root", "encoder"), free=MODEL_RESUME_FREE)


# ----- data ------------------------------------------------------------------------------------------------
def _samples(cfg: FinetuneConfig, split: str, limit: int | None) -> list[QaSample]:
    root = cfg.ecgqa_root or (str(Path(cfg.data_root) / "ecgqa") if cfg.data_root else None)
    if root is None:
        raise ConfigError("Set data_root (PTB-XL-format folder) or ecgqa_root.")
    return load_qa_samples(root, split, question_types=cfg.question_types, limit=limit, seed=cfg.seed)


def weight_by_question_type(
    samples: list[QaSample], weights: dict[str, float] | None, seed: int
) -> list[QaSample]:
    """Repeat (weight > 1) or thin out (weight < 1) each question type; the fractional part is drawn seeded."""
    if not weights:
        return samples
    types = sorted({s.question_type for s in samples})
    for name, w in weights.items():
        if name not in types:
            raise ConfigError(
                f"question_type_weights names {name!r}, but the training questions have types {types}."
            )
        if not isinstance(w, int | float) or w < 0:
            raise ConfigError(f"question_type_weights[{name!r}] = {w!r}; use a number >= 0.")
    rng = np.random.default_rng([seed, 11])
    out = []
    for s in samples:
        w = float(weights.get(s.question_type, 1.0))
        out.extend([s] * (int(w) + int(rng.random() < w - int(w))))
    if not out:
        raise ConfigError("question_type_weights removed every training question; use weights > 0.")
    return out


def load_features(
    cfg: FinetuneConfig, model: EcgLlm, samples: list[QaSample], core: TrainingCore
) -> FeatureStore:
    """Frozen-encoder features of every ECG in ``samples``: the cache when it matches, else computed (a shard
    per process) and cached by the main process."""
    ecfg = model.encoder.config
    read = ptbxl_reader(_data_root(cfg), ecfg.sampling_rate, ecfg.input_samples, ecfg.input_normalization)
    return compute_features(
        model,
        [e for s in samples for e in s.ecg_ids],
        read,
        batch_size=cfg.feature_batch_size,
        cache_path=Path(cfg.output_dir) / "features.safetensors",
        accelerator=core.accelerator,
        progress=cfg.progress and core.is_main,
    )


# ----- one step ----------------------------------------------------------------------------------------------
def answer_positions(labels: torch.Tensor) -> torch.Tensor:
    """(K,) sequence positions whose next token is an answer token in some row of the (B, T) ``labels``: the
    only positions whose logits the loss needs (the LM head then runs on K instead of T positions)."""
    return (labels[:, 1:] != -100).any(0).nonzero().squeeze(1)


def answer_token_loss(
    logits: torch.Tensor, labels: torch.Tensor, positions: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed next-token cross-entropy over the answer tokens (labels != -100) and their number; the causal LM's
    own loss is the first divided by the second.

    ``logits`` are (B, T, V), or (B, K, V) at ``positions`` (:func:`answer_positions`) when the model was asked
    for those only.
    """
    if positions is None:
        positions = torch.arange(labels.shape[1] - 1, device=labels.device)
        logits = logits[:, :-1]
    targets = labels[:, positions + 1]  # (B, K): token t + 1 is predicted at t
    total = F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100, reduction="sum"
    )
    return total, (targets != -100).sum()


def answer_objective(
    model: torch.nn.Module, micro: dict[str, torch.Tensor], features: EcgFeatures
) -> tuple[torch.Tensor, dict]:
    """This process's share of the mean answer-token loss of the global micro-batch (the token count is summed
    over processes, so the mean over processes of the shares is the one-process loss)."""
    rows = micro["rows"]  # (M,); empty for a question-only run
    positions = answer_positions(micro["labels"])  # (K,)
    out = model(
        micro["input_ids"],
        micro["attention_mask"],
        features=features.index(rows) if rows.numel() else None,
        logits_to_keep=positions,
    )
    total, count = answer_token_loss(out.logits, micro["labels"], positions)
    tokens = sum_over_processes(count.float())
    return rank_and_world()[1] * total / tokens.clamp_min(1.0), {}


def build_optimizer(model: EcgLlm, cfg: FinetuneConfig) -> torch.optim.Optimizer:
    """AdamW: the projector at ``projector_lr``, the LoRA weights at ``lr``."""
    groups = [
        {"params": list(model.projector.parameters()), "lr": cfg.projector_lr},
        {"params": [p for p in model.llm.parameters() if p.requires_grad], "lr": cfg.lr},
    ]
    return torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=cfg.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: FinetuneConfig) -> Any:
    """Linear warm-up, then cosine decay to 10 % of the peak (transformers' schedule)."""
    from transformers import get_cosine_with_min_lr_schedule_with_warmup

    return get_cosine_with_min_lr_schedule_with_warmup(
        optimizer, cfg.warmup_steps, cfg.max_steps, min_lr_rate=0.1
    )


class Finetuning:
    """One stage-2 run's loop: global micro-batches -> this process's block -> one optimizer step."""

    def __init__(
        self,
        cfg: FinetuneConfig,
        core: TrainingCore,
        model: EcgLlm,
        dataset: QaDataset,
        features: EcgFeatures,
    ) -> None:
        self.cfg, self.core, self.dataset = cfg, core, dataset
        lengths = [len(item.input_ids) for item in dataset.items] if cfg.group_by_length else None
        self.order = BatchOrder(len(dataset), cfg.batch_size, cfg.seed, lengths)
        optimizer = build_optimizer(model, cfg)
        self.model, self.optimizer, self.scheduler = core.prepare(
            model, optimizer, build_scheduler(optimizer, cfg)
        )
        self.objective = partial(answer_objective, features=features)

    def micro_batches(self, step: int) -> list[dict[str, torch.Tensor]]:
        """This process's blocks of the global micro-batches of ``step`` (0-based)."""
        out = []
        for j in range(self.cfg.grad_accum):
            positions = shard(
                self.order.batch(step * self.cfg.grad_accum + j), self.core.rank, self.core.world
            )
            batch = self.dataset.collate([self.dataset[int(i)] for i in positions])
            out.append({k: v.to(self.core.device) for k, v in batch.items()})
        return out

    def train(self) -> None:
        self.model.train()
        for step in range(int(self.core.state["step"]), self.cfg.max_steps):
            lr = self.optimizer.param_groups[-1]["lr"]  # the LoRA learning rate of this step
            result = optimizer_step(
                self.core.accelerator, self.model, self.optimizer, self.scheduler, self.objective,
                self.micro_batches(step), self.cfg.max_grad_norm,
            )  # fmt: skip
            self.core.record(step + 1, result, {"lr": lr})
            if (step + 1) % self.cfg.checkpoint_every == 0 or step + 1 == self.cfg.max_steps:
                self.core.save(step + 1)


NON_FINITE_ADVICE = "Lower lr / projector_lr, check the input data, or resume from the last checkpoint."


def _data_root(cfg: FinetuneConfig) -> str:
    if cfg.data_root is None:
        raise ConfigError("Set data_root to the PTB-XL-format folder holding the ECG signals.")
    return cfg.data_root


def _check_paths(cfg: FinetuneConfig) -> None:
    if not cfg.encoder:
        raise ConfigError("Set encoder to a stage-1 encoder folder (`<stage-1 run>/encoder`).")
    _data_root(cfg)


def run_finetune(cfg: FinetuneConfig) -> Path:
    """Train projector + LoRA; returns ``<output_dir>/model`` (reload with ``EcgChat.from_pretrained``)."""
    check_config(cfg)
    _check_paths(cfg)
    out = Path(cfg.output_dir)
    core = TrainingCore(
        out, seed=cfg.seed, cpu=not torch.cuda.is_available(), mixed_precision=cfg.mixed_precision,
        keep_checkpoints=cfg.keep_checkpoints, weights=EcgLlm.trainable_state_dict, find_unused_parameters=True,
    )  # fmt: skip
    checkpoint = core.find_checkpoint(
        cfg.resume, run_settings(cfg), "--resume false (the quickstart: --force '[stage2]')"
    )
    if core.is_main:
        out.mkdir(parents=True, exist_ok=True)
        save_resolved_config(cfg, out)
    torch.manual_seed(cfg.seed)
    model = EcgLlm.build(copy.deepcopy(cfg.model), cfg.encoder).to(
        core.device
    )  # fitted prior shifts stay off cfg
    questions = _samples(cfg, cfg.train_split, cfg.max_train_samples)  # the split's ECG-QA questions
    train = questions + training_extras(questions, _data_root(cfg), cfg.train_split, describe=cfg.describe_samples,
                                        paraphrase_fraction=cfg.paraphrase_fraction, seed=cfg.seed)  # fmt: skip
    if core.is_main:  # which ECGs training saw: read by the VQA leakage check
        ids = sorted({e for s in train for e in s.ecg_ids})
        atomic_write_json(
            out / "train_ecg_ids.json", {"stage": 2, "train": ids, **source_record(_data_root(cfg), ids)}
        )
    heldout = _samples(cfg, cfg.eval_split, cfg.max_eval_samples) if cfg.max_eval_samples != 0 else []
    store = load_features(cfg, model, train + heldout, core)
    if model.config.verdict_prior_shift:  # before the prompts are built: the verdicts are part of them
        train_rows = sorted({store.rows[e] for s in train for e in s.ecg_ids})
        prevalence = store.features.probs[train_rows].double().mean(0).numpy()  # (L,)
        model.config.verdict_logit_shift = fit_verdict_shifts(train, model.label_names, prevalence)
    dataset = QaDataset(
        weight_by_question_type(train, cfg.question_type_weights, cfg.seed),
        model,
        store,
        use_ecg=cfg.ecg_input == "tokens",
    )
    run = Finetuning(cfg, core, model, dataset, store.features.to(core.device))
    core.start(
        checkpoint, fields=METRICS_FIELDS, total_steps=cfg.max_steps, desc="stage-2", progress=cfg.progress,
        max_bad_steps=1 if cfg.nan_policy == "stop" else cfg.max_bad_steps, advice=NON_FINITE_ADVICE,
    )  # fmt: skip
    try:
        run.train()
    finally:
        core.close()
    model_dir = out / "model"
    if core.is_main:
        model.save_pretrained(model_dir)
        if heldout:
            atomic_write_json(out / "eval.json", evaluate_heldout(model, heldout, store, questions, cfg))
    core.finish(total_steps=cfg.max_steps)
    return model_dir


if __name__ == "__main__":
    from encoder.cli_support import run_command

    raise SystemExit(run_command(FinetuneConfig, run_finetune))
