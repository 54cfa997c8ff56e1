"""Stage-2 fine-tuning: projector + LoRA on ECG-QA, frozen encoder features cached once, crash-safe resume.

``run_finetune(FinetuneConfig) -> Path`` (the ``save_pretrained`` model directory). Works unchanged under
``accelerate launch --config_file configs/accelerate/<setup>.yaml -m ...``.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import logging
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from bridge.configuration import EcgLlmConfig
from bridge.modeling import EcgLlm
from encoder.config_io import atomic_write_json, atomic_write_text, save_resolved_config
from encoder.errors import CheckpointError, ConfigError, EcgLlmError
from llm_finetune.data import QaDataset, QaSample, load_qa_samples
from llm_finetune.features import compute_features, ptbxl_reader
from llm_finetune.heldout import evaluate_heldout
from llm_finetune.question_prior import fit_verdict_shifts

log = logging.getLogger(__name__)

LOG_FIELDS = ("step", "loss", "lr", "grad_norm", "skipped", "seconds")


class TrainingError(EcgLlmError):
    """Training cannot continue (e.g. the loss stayed NaN/inf)."""


@dataclass
class FinetuneConfig:
    data_root: str | None = None
    """PTB-XL-format folder with the signals (the synthetic cohort's output dir or a real PTB-XL copy)."""
    ecgqa_root: str | None = None
    """ECG-QA folder (``<root>/ptbxl/template/...``); default ``<data_root>/ecgqa``."""
    encoder: str = ""
    """Stage-1 encoder folder (``<stage-1 run>/encoder``)."""
    output_dir: str = "runs/finetune"
    """Run folder: config.yaml, log.csv, checkpoints/, features.safetensors, model/ (the result)."""
    model: EcgLlmConfig = field(default_factory=EcgLlmConfig)
    """Stage-2 model: LLM, projector, LoRA/QLoRA, findings hint."""
    train_split: str = "train"
    """ECG-QA split to train on."""
    eval_split: str = "valid"
    """ECG-QA split to score after training (held-out questions)."""
    question_types: list[str] | None = None
    """Keep only these ECG-QA question types (e.g. [single-verify, single-choose]); None = all."""
    question_type_weights: dict[str, float] | None = None
    """Training-set weight per question type (e.g. {single-choose: 2.0} sees each choose question twice per
    epoch; 0.5 keeps a seeded half); types not named keep weight 1."""
    max_train_samples: int | None = None
    """Random subset of training questions (seeded); None = all."""
    max_eval_samples: int | None = 200
    """Random subset of held-out questions scored at the end; 0 = skip evaluation."""
    max_steps: int = 300
    """Optimizer steps."""
    batch_size: int = 8
    """Questions per micro-batch."""
    grad_accum: int = 1
    """Micro-batches per optimizer step."""
    lr: float = 2e-4
    """Peak learning rate of the LoRA weights."""
    projector_lr: float = 1e-3
    """Peak learning rate of the projector (higher: it starts from scratch)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    warmup_steps: int = 20
    """Linear warmup steps, then cosine decay to 10 %."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm."""
    seed: int = 0
    """Seed of data order, projector init and dropout (same seed -> same loss curve, also after resume)."""
    checkpoint_every: int = 50
    """Save a complete checkpoint every this many steps (atomic)."""
    keep_checkpoints: int = 2
    """Newest checkpoints to keep."""
    resume: bool = True
    """Continue from the newest complete checkpoint in output_dir/checkpoints (its weight-shaping settings must
    match this run's, else CheckpointError); false starts over and deletes that folder's old checkpoints."""
    nan_policy: str = "skip"
    """Non-finite loss or gradient: ``skip`` the step (parameters unchanged) or ``stop`` with an error."""
    max_bad_steps: int = 10
    """Stop after this many consecutive skipped (non-finite) steps."""
    mixed_precision: str = "no"
    """accelerate mixed precision: no, bf16 or fp16 (GPU)."""
    feature_batch_size: int = 64
    """ECGs per batch when caching the frozen encoder's features."""
    eval_constrained: bool = True
    """Score held-out questions by picking the most likely answer among the template's options."""
    eval_max_new_tokens: int = 12
    """Tokens generated per answer in free-form evaluation."""


RESUME_FREE_FIELDS = frozenset(
    {
        "output_dir",
        "eval_split",
        "max_eval_samples",
        "max_steps",
        "checkpoint_every",
        "keep_checkpoints",
        "resume",
        "nan_policy",
        "max_bad_steps",
        "feature_batch_size",
        "eval_constrained",
        "eval_max_new_tokens",
        "model.gradient_checkpointing",
    }
)
"""FinetuneConfig fields (dotted for the model's) a resumed run may change: output, bookkeeping, evaluation,
memory savers and ``max_steps`` (which also stretches the cosine schedule of the steps still to come). Every other
setting shapes the weights and must match the checkpoint's."""


def run_settings(cfg: FinetuneConfig) -> dict:
    """The settings a run's weights depend on, JSON-ready (saved with each checkpoint, checked on resume)."""
    data = json.loads(json.dumps(dataclasses.asdict(cfg), default=str))
    for key in ("data_root", "encoder"):  # the same folder however it is spelled
        if data.get(key):
            data[key] = os.path.abspath(data[key])
    return _without_free(data)


def _without_free(data: dict, prefix: str = "") -> dict:
    return {
        k: _without_free(v, f"{prefix}{k}.") if isinstance(v, dict) and k == "model" else v
        for k, v in data.items()
        if f"{prefix}{k}" not in RESUME_FREE_FIELDS
    }


def _changed(saved: dict, now: dict, prefix: str = "") -> list[str]:
    """Dotted names of the settings that differ between two run_settings dicts (settings a checkpoint does not
    record, added to the library after it was written, keep their defaults and are not compared)."""
    out = []
    for key in sorted(set(saved) & set(now)):
        a, b = saved[key], now[key]
        if isinstance(a, dict) and isinstance(b, dict):
            out += _changed(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def check_resume_settings(checkpoint: Path, settings: dict) -> None:
    """Refuse to continue a checkpoint written with other settings (its weights would not be this run's)."""
    try:
        saved = json.loads((checkpoint / "state.json").read_text()).get("settings")
    except (OSError, ValueError) as err:
        raise CheckpointError(
            f"Checkpoint {checkpoint} is unreadable ({err}); delete it to resume from an older one."
        ) from err
    if saved is None:
        log.warning(
            "%s was written before checkpoints recorded their settings; resuming it without checking that they "
            "match this run's (resume false starts over).",
            checkpoint,
        )
        return
    changed = _changed(saved, settings)
    if changed:
        raise CheckpointError(
            f"{checkpoint} was trained with other settings ({'; '.join(changed[:5])}). Resuming would continue "
            "those weights under the new settings: use a new output_dir, or start over here with --resume false "
            "(the quickstart: --force '[stage2]')."
        )


def _lr_factor(step: int, cfg: FinetuneConfig) -> float:
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def batch_indices(step: int, micro: int, cfg: FinetuneConfig, n: int) -> list[int]:
    """Deterministic data order: a fresh seeded permutation per epoch, independent of restarts."""
    start = (step * cfg.grad_accum + micro) * cfg.batch_size
    out = []
    for k in range(start, start + cfg.batch_size):
        epoch, pos = divmod(k, n)
        out.append(int(np.random.default_rng([cfg.seed, epoch]).permutation(n)[pos]))
    return out


# ----- checkpoints -----------------------------------------------------------------------------------------
def latest_checkpoint(ckpt_dir: Path) -> Path | None:
    """Newest checkpoint with its COMPLETE marker (half-written ones are never picked)."""
    done = sorted(p for p in ckpt_dir.glob("step-*") if (p / "COMPLETE").is_file())
    return done[-1] if done else None


def save_checkpoint(
    model: EcgLlm, optimizer: torch.optim.Optimizer, step: int, state: dict, ckpt_dir: Path, keep: int
):
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=ckpt_dir, prefix=".tmp-"))
    names = {id(p): n for n, p in model.named_parameters()}
    opt = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            for key, value in optimizer.state.get(p, {}).items():
                if torch.is_tensor(value):
                    opt[f"{names[id(p)]}::{key}"] = value.detach().cpu().contiguous()
    save_file(
        {k: v.cpu().contiguous() for k, v in model.trainable_state_dict().items()},
        tmp / "trainable.safetensors",
    )
    save_file(opt or {"_empty": torch.zeros(1)}, tmp / "optimizer.safetensors")
    atomic_write_json(tmp / "state.json", {**state, "step": step})
    (tmp / "COMPLETE").write_text("ok\n")
    final = ckpt_dir / f"step-{step:07d}"
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in sorted(p for p in ckpt_dir.glob("step-*") if (p / "COMPLETE").is_file())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in ckpt_dir.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)


def load_checkpoint(model: EcgLlm, optimizer: torch.optim.Optimizer, path: Path) -> dict:
    try:
        weights = load_file(path / "trainable.safetensors")
        opt = load_file(path / "optimizer.safetensors")
        state = json.loads((path / "state.json").read_text())
    except Exception as err:
        raise CheckpointError(
            f"Checkpoint {path} is unreadable ({err}); delete it to resume from an older one."
        ) from err
    params = dict(model.named_parameters())
    unknown = sorted(set(weights) - {n for n, p in params.items() if p.requires_grad})
    if unknown:
        raise CheckpointError(f"Checkpoint {path} does not match this model (e.g. {unknown[:3]}).")
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value)
    for name, p in params.items():
        entries = {k.split("::", 1)[1]: v for k, v in opt.items() if k.split("::", 1)[0] == name}
        if entries:
            optimizer.state[p] = {k: v.to(p.device) if k != "step" else v for k, v in entries.items()}
    return state


def _read_log(path: Path, upto: int) -> list[dict]:
    if not path.is_file():
        return []
    with open(path) as f:
        return [row for row in csv.DictReader(f) if int(row["step"]) <= upto]


# ----- one step --------------------------------------------------------------------------------------------
def train_step(model, batch: dict, features, optimizer, cfg: FinetuneConfig, accelerator=None) -> dict:
    """Forward/backward over one micro-batch list; skip the update when loss or gradients are not finite."""
    params = [p for p in model.parameters() if p.requires_grad]
    total = 0.0
    finite = True
    for micro in batch["micro"]:
        feats = features.index(micro["rows"])
        out = model(micro["input_ids"], micro["attention_mask"], features=feats, labels=micro["labels"])
        loss = out.loss / len(batch["micro"])
        if not torch.isfinite(loss):
            finite = False
            break
        (accelerator.backward(loss) if accelerator is not None else loss.backward())
        total += float(loss.detach())
    grad_norm = float("nan")
    if finite:
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm))
        finite = math.isfinite(grad_norm)
    if finite:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return {"loss": total if finite else float("nan"), "grad_norm": grad_norm, "skipped": int(not finite)}


# ----- run ---------------------------------------------------------------------------------------------------
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


def run_finetune(cfg: FinetuneConfig) -> Path:
    """Train projector + LoRA; returns ``<output_dir>/model`` (reload with ``EcgChat.from_pretrained``)."""
    from accelerate import Accelerator

    if cfg.nan_policy not in ("skip", "stop"):
        raise ConfigError(f"nan_policy must be 'skip' or 'stop', got {cfg.nan_policy!r}.")
    if not cfg.encoder:
        raise ConfigError("Set encoder to a stage-1 encoder folder (`<stage-1 run>/encoder`).")
    if cfg.data_root is None:
        raise ConfigError("Set data_root to the PTB-XL-format folder holding the ECG signals.")
    out = Path(cfg.output_dir)
    settings = run_settings(cfg)
    ckpt_dir = out / "checkpoints"
    latest = latest_checkpoint(ckpt_dir) if cfg.resume else None
    if latest is not None:
        check_resume_settings(latest, settings)
    out.mkdir(parents=True, exist_ok=True)
    save_resolved_config(cfg, out)
    accelerator = Accelerator(mixed_precision=cfg.mixed_precision)
    torch.manual_seed(cfg.seed)
    model = EcgLlm.build(copy.deepcopy(cfg.model), cfg.encoder)  # the fitted prior shifts stay off cfg
    model.to(accelerator.device)

    train = _samples(cfg, cfg.train_split, cfg.max_train_samples)
    # which ECGs training saw: read by the VQA leakage check
    atomic_write_json(
        out / "train_ecg_ids.json", {"stage": 2, "train": sorted({e for s in train for e in s.ecg_ids})}
    )
    heldout = _samples(cfg, cfg.eval_split, cfg.max_eval_samples) if cfg.max_eval_samples != 0 else []
    ecfg = model.encoder.config
    read = ptbxl_reader(cfg.data_root, ecfg.sampling_rate, ecfg.input_samples, ecfg.input_normalization)
    store = compute_features(
        model,
        [e for s in train + heldout for e in s.ecg_ids],
        read,
        batch_size=cfg.feature_batch_size,
        cache_path=out / "features.safetensors",
    )
    if model.config.verdict_prior_shift:  # before the prompts are built: the verdicts are part of them
        rows = store.rows
        train_rows = sorted({rows[e] for s in train for e in s.ecg_ids})
        prevalence = store.features.probs[train_rows].double().mean(0).numpy()  # (L,)
        model.config.verdict_logit_shift = fit_verdict_shifts(train, model.label_names, prevalence)
    dataset = QaDataset(weight_by_question_type(train, cfg.question_type_weights, cfg.seed), model, store)
    features = store.features.to(accelerator.device)

    groups = [
        {
            "params": [p for p in model.projector.parameters()],
            "lr": cfg.projector_lr,
            "base_lr": cfg.projector_lr,
        },
        {
            "params": [p for n, p in model.llm.named_parameters() if p.requires_grad],
            "lr": cfg.lr,
            "base_lr": cfg.lr,
        },
    ]
    groups = [g for g in groups if g["params"]]
    optimizer = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    wrapped, optimizer = accelerator.prepare(model, optimizer)

    if not cfg.resume and ckpt_dir.is_dir():  # starting over: an older run's checkpoints would shadow ours
        if accelerator.is_main_process:
            shutil.rmtree(ckpt_dir)
        accelerator.wait_for_everyone()
    start, state = 0, {"bad_streak": 0, "settings": settings}
    if latest is not None:
        state = {**load_checkpoint(model, optimizer, latest), "settings": settings}
        start = int(state["step"])
    log_path = out / "log.csv"
    rows = _read_log(log_path, start) if start else []
    atomic_write_text(
        log_path,
        ",".join(LOG_FIELDS) + "\n" + "".join(",".join(str(r[k]) for k in LOG_FIELDS) + "\n" for r in rows),
    )

    wrapped.train()
    t0 = time.time()
    bar = tqdm(range(start, cfg.max_steps), desc="stage-2", initial=start, total=cfg.max_steps)
    with open(log_path, "a") as log:
        for step in bar:
            lr_f = _lr_factor(step, cfg)
            for g in optimizer.param_groups:
                g["lr"] = g["base_lr"] * lr_f
            torch.manual_seed(cfg.seed * 1_000_003 + step)  # dropout identical after a resume
            micro = [
                {
                    k: v.to(accelerator.device)
                    for k, v in dataset.collate(
                        [dataset[i] for i in batch_indices(step, j, cfg, len(dataset))]
                    ).items()
                }
                for j in range(cfg.grad_accum)
            ]
            result = train_step(wrapped, {"micro": micro}, features, optimizer, cfg, accelerator)
            state["bad_streak"] = state["bad_streak"] + 1 if result["skipped"] else 0
            log.write(
                f"{step + 1},{result['loss']:.6f},{optimizer.param_groups[-1]['lr']:.3e},{result['grad_norm']:.4f},"
                f"{result['skipped']},{time.time() - t0:.1f}\n"
            )
            log.flush()
            bar.set_postfix(loss=f"{result['loss']:.4f}")
            if result["skipped"] and (cfg.nan_policy == "stop" or state["bad_streak"] >= cfg.max_bad_steps):
                raise TrainingError(
                    f"Step {step + 1}: loss or gradients are NaN/inf ({state['bad_streak']} in a row); parameters "
                    "were left unchanged. Lower lr / projector_lr, check the input data, or resume from "
                    f"{latest_checkpoint(ckpt_dir)}."
                )
            if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.max_steps:
                if accelerator.is_main_process:
                    save_checkpoint(model, optimizer, step + 1, state, ckpt_dir, cfg.keep_checkpoints)
                accelerator.wait_for_everyone()
    model_dir = out / "model"
    if accelerator.is_main_process:
        accelerator.unwrap_model(wrapped).save_pretrained(model_dir)
        if heldout:
            report = evaluate_heldout(model, heldout, store, train, cfg)
            atomic_write_json(out / "eval.json", report)
    accelerator.wait_for_everyone()
    return model_dir
