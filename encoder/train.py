"""Stage 1: Jaccard-SigLIP ECG-text pretraining with a jointly trained per-label head.

``run_pretrain(cfg) -> Path`` (the run folder) writes::

    <out>/encoder/         EcgEncoder.save_pretrained (label_names, label_task, temperature + thresholds tuned on val)
    <out>/clip_model/      EcgClipModel.save_pretrained (encoder + text projection + logit scale/bias + label texts)
    <out>/metrics.csv      one row per logged step / validation
    <out>/tensorboard/     the same scalars for TensorBoard
    <out>/checkpoints/step_XXXXXXX/   complete checkpoints only (temp dir + rename; trainer_state.json last)
    <out>/config.yaml      the resolved config

Determinism / resume: batch order and crops are pure functions of (seed, epoch) (``CachedEcgDataset.set_epoch`` +
a seeded permutation), dropout uses the torch RNG saved in every checkpoint, so a resumed run replays the same
steps as an uninterrupted one. Multi-GPU (accelerate/DDP): each process takes a strided shard of every global
batch; the contrastive loss uses the local (per-GPU) batch as negatives.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import pickle
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from encoder.clip_model import EcgClipModel
from encoder.config_io import atomic_write_json, save_resolved_config
from encoder.configuration import EcgEncoderConfig
from encoder.errors import CheckpointError, ConfigError, EcgLlmError
from encoder.heads import classifier_loss, fit_temperature
from encoder.loss import CONTRASTIVE_LOSSES, NORMALISATIONS, SIGMOID_FORMS, contrastive_loss
from encoder.metrics import macro_auroc, tune_thresholds
from encoder.modeling import EcgEncoder
from encoder.preprocess import check_normalization
from encoder.text import TextFeatureTable, TextTower, TextTowerConfig

log = logging.getLogger(__name__)


class NonFiniteTrainingError(EcgLlmError):
    """The loss or the gradients were NaN/inf for too many consecutive steps."""


@dataclass
class PretrainConfig:
    """Stage-1 pretraining: data, model, loss, optimisation, checkpointing."""

    data_dir: str = "data/synthetic"
    """PTB-XL-format folder (real PTB-XL or the synthetic cohort from ``ecgllm data synth``)."""
    out_dir: str = "runs/pretrain"
    """Run folder (encoder/, clip_model/, metrics.csv, checkpoints/, config.yaml)."""
    cache_dir: str | None = None
    """Signal cache root (default ``$ECGLLM_CACHE/signals``); must be outside ``data_dir``."""
    task: str = "superdiagnostic"
    """PTB-XL label task of the classifier head and of the Jaccard targets."""
    sampling_rate: int = 100
    """Input rate in Hz (100 or 500)."""
    min_label_count: int = 1
    """Keep labels with at least this many records."""
    text_style: str = "knowledge"
    """Record text: ``knowledge`` (expanded SCP descriptions) or ``codes`` (bare codes)."""
    text: TextTowerConfig = field(default_factory=TextTowerConfig)
    """Text tower (model, pooling, frozen / finetune / lora)."""
    arch: str = "resnet18"
    """Encoder depth preset (resnet10 | resnet18 | resnet34)."""
    widths: list[int] = field(default_factory=lambda: [64, 128, 256, 512])
    """Channels of the four encoder stages."""
    embed_dim: int = 256
    """Shared ECG-text embedding width."""
    dropout: float = 0.1
    """Dropout before the encoder's projection."""
    loss: str = "jaccard_siglip"
    """Contrastive objective: ``jaccard_siglip`` | ``siglip`` | ``clip``."""
    loss_form: str = "soft"
    """Sigmoid-loss form: ``soft`` (BCE with soft targets, default) or ``pm1`` (±1 rescaled targets)."""
    loss_norm: str = "positives"
    """Sigmoid-loss reduction: ``positives`` (divide by the target mass sum J; = B for plain SigLIP) or ``batch``
    (divide by B, SigLIP's reduction unchanged). See encoder/loss.py."""
    classifier_weight: float = 1.0
    """λ of the jointly trained per-label BCE head (0 = contrastive only; the head is then fit as a probe)."""
    init_logit_scale: float = math.log(10.0)
    """Initial log of the logit scale (SigLIP: log 10)."""
    init_logit_bias: float = -10.0
    """Initial logit bias (SigLIP: -10)."""
    random_crop: bool = True
    """Random-crop augmentation of the training windows (off = centre crop)."""
    crop_seconds: float = 5.0
    """Training window length in seconds (random or centre crop of each cached record)."""
    input_normalization: str = "zscore"
    """Per-lead input normalisation: ``zscore`` (shape only) or ``center`` (mean removed, amplitude kept in units
    of 0.3 mV); saved in the encoder config, so every inference path normalises the same way."""
    eval_seconds: float | None = None
    """Centre window for validation / test, saved as the encoder's ``input_seconds`` (what ``model_input`` and
    stage 2 feed it); None = ``crop_seconds``. The encoder is fully convolutional, so e.g. 10 s works after 2.5 s
    crops."""
    epochs: int = 10
    """Passes over the training fold."""
    max_steps: int | None = None
    """Stop after this many optimizer steps (overrides ``epochs`` when smaller)."""
    batch_size: int = 64
    """Global batch size (contrastive negatives per step)."""
    lr: float = 1e-3
    """Peak AdamW learning rate."""
    logit_lr: float | None = None
    """Learning rate of the logit scale and bias (None = 10 x lr). Adam moves a parameter by about lr per step
    whatever its gradient, so at the encoder's lr the bias would need thousands of steps to leave its -10 init,
    while with many J = 1 pairs per batch its optimum is near logit(mean J) (see encoder/loss.py)."""
    weight_decay: float = 1e-4
    """AdamW weight decay (not applied to biases, norms, logit scale / bias)."""
    warmup_steps: int = 50
    """Linear warm-up steps before the cosine decay."""
    grad_clip: float = 1.0
    """Gradient-norm clipping (0 = off)."""
    mixed_precision: str = "bf16"
    """``no`` | ``fp16`` | ``bf16``; only used on GPU (CPU runs in float32)."""
    cpu: bool = False
    """Force CPU even when a GPU is available."""
    num_threads: int | None = None
    """torch CPU threads (None = torch default)."""
    seed: int = 0
    """Seed of initialisation, batch order, crops and dropout."""
    eval_every_epochs: int = 1
    """Validate (macro AUROC of the head) every this many epochs and at the end."""
    log_every: int = 10
    """Log training scalars every this many steps."""
    checkpoint_every: int = 200
    """Write a resumable checkpoint every this many steps (and at the end)."""
    keep_checkpoints: int = 2
    """How many complete checkpoints to keep."""
    resume: bool = False
    """Continue from the latest complete checkpoint in ``out_dir/checkpoints`` (half-written ones are ignored)."""
    max_bad_steps: int = 5
    """Stop after this many consecutive steps with a NaN/inf loss or gradient (each one is skipped)."""
    progress: bool = True
    """Show tqdm progress bars."""


# --- data -------------------------------------------------------------------------------------------------------


@dataclass
class StageData:
    cache: Any
    label_names: list[str]
    texts: list[str]
    label_texts: list[str]
    train: Any
    val: Any
    test: Any


def load_stage_data(
    cfg: PretrainConfig, crop_samples: int, random_crop: bool, seed: int, eval_samples: int | None = None
) -> StageData:
    """PTB-XL-format dir -> cache -> train (random crops) / val / test (centre crops) datasets + texts."""
    from encoder.datasets.cache import CachedEcgDataset, build_cache
    from encoder.datasets.ptbxl import PtbXl
    from encoder.labels import label_text

    ds = PtbXl(
        cfg.data_dir,
        task=cfg.task,
        sampling_rate=cfg.sampling_rate,
        min_label_count=cfg.min_label_count,
        text_style=cfg.text_style,
    )
    cache = build_cache(ds, cfg.cache_dir, progress=cfg.progress)
    table = cache.table
    texts = [str(t) for t in table["text"]]
    names = list(cache.label_names)
    label_texts = [label_text([n], ds.statements, cfg.text_style) for n in names]
    if crop_samples > cache.num_samples:
        raise ConfigError(
            f"crop_seconds={cfg.crop_seconds} is longer than the cached records ({cache.num_samples} samples)."
        )

    def split(name: str, rand: bool) -> Any:
        idx = cache.split_indices(name)
        if len(idx) == 0:
            raise ConfigError(
                f"The {name} fold of {cfg.data_dir} is empty; stage 1 needs folds 1-8, 9 and 10."
            )
        return CachedEcgDataset(
            cache,
            idx,
            crop_samples=crop_samples,
            random_crop=rand,
            seed=seed,
            normalization=cfg.input_normalization,
        )

    return StageData(
        cache,
        names,
        texts,
        label_texts,
        split("train", random_crop),
        split("val", False),
        split("test", False),
    )


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """Shuffled positions 0..n-1 cut into full batches (the last partial batch is dropped); pure in (seed, epoch)."""
    perm = np.random.default_rng((seed, 7919, epoch)).permutation(n)
    n_full = max(n // batch_size, 1)
    return [perm[i * batch_size : (i + 1) * batch_size] for i in range(n_full)]


def collate(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    return {
        "ecg": torch.stack([it["ecg"] for it in items]),  # (B, 12, T)
        "labels": torch.stack([it["labels"] for it in items]),  # (B, L)
        "index": torch.tensor([it["index"] for it in items], dtype=torch.long),  # (B,)
    }


# --- model / optimiser ------------------------------------------------------------------------------------------


def build_model(
    cfg: PretrainConfig, label_names: list[str], text_dim: int, text_tower: TextTower | None
) -> EcgClipModel:
    enc_cfg = EcgEncoderConfig(
        arch=cfg.arch,
        widths=cfg.widths,
        sampling_rate=cfg.sampling_rate,
        input_seconds=cfg.eval_seconds or cfg.crop_seconds,
        input_normalization=cfg.input_normalization,
        embed_dim=cfg.embed_dim,
        label_names=label_names,
        label_task=cfg.task,
        dropout=cfg.dropout,
    )
    return EcgClipModel(
        EcgEncoder(enc_cfg),
        text_dim,
        cfg.text,
        cfg.init_logit_scale,
        cfg.init_logit_bias,
        text_tower=text_tower,
    )


def build_optimizer(model: torch.nn.Module, cfg: PretrainConfig) -> torch.optim.Optimizer:
    """AdamW; biases/norms without decay; logit scale and bias in their own group at ``logit_lr``."""
    decay, no_decay, logit = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.startswith("logit_"):
            logit.append(p)
        else:
            (no_decay if p.ndim < 2 else decay).append(p)
    logit_lr = cfg.logit_lr if cfg.logit_lr is not None else 10.0 * cfg.lr
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
        {"params": logit, "weight_decay": 0.0, "lr": logit_lr},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr)


def cosine_with_warmup(
    optimizer: torch.optim.Optimizer, warmup: int, total: int
) -> torch.optim.lr_scheduler.LambdaLR:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(warmup, 1)
        progress = (step - warmup) / max(total - warmup, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# --- one step ---------------------------------------------------------------------------------------------------


class StepGuard:
    """Counts consecutive non-finite steps and stops the run when they repeat."""

    def __init__(self, max_bad_steps: int) -> None:
        self.max_bad_steps = max_bad_steps
        self.consecutive = 0
        self.total = 0

    def record(self, ok: bool, step: int) -> None:
        if ok:
            self.consecutive = 0
            return
        self.consecutive += 1
        self.total += 1
        log.warning(
            "step %d: non-finite loss or gradient, step skipped (%d in a row)", step, self.consecutive
        )
        if self.consecutive >= self.max_bad_steps:
            raise NonFiniteTrainingError(
                f"The loss or gradients were NaN/inf for {self.consecutive} consecutive steps (last: step {step}); "
                "training stopped. Lower lr, keep grad_clip > 0, use mixed_precision='bf16' instead of 'fp16', "
                "or check the data for NaN samples; resume from the last checkpoint with resume=true."
            )


def train_step(
    model: torch.nn.Module,
    batch: dict[str, torch.Tensor],
    text_features: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    cfg: PretrainConfig,
    accelerator: Any = None,
) -> tuple[bool, dict[str, float]]:
    """Forward + backward + (clipped) step. Returns (applied, scalars); a non-finite loss or gradient skips the
    step and leaves parameters, optimizer state and BatchNorm statistics unchanged."""
    module = accelerator.unwrap_model(model) if accelerator is not None else model
    buffers = [b.detach().clone() for b in module.buffers()]  # BN running stats, restored on a skipped step
    optimizer.zero_grad(set_to_none=True)
    autocast = accelerator.autocast() if accelerator is not None else torch.autocast("cpu", enabled=False)
    with autocast:
        out = model(batch["ecg"], text_features)
        c_loss = contrastive_loss(
            cfg.loss, out["logits"].float(), batch["labels"], cfg.loss_form, cfg.loss_norm
        )
        b_loss = (
            classifier_loss(out["class_logits"], batch["labels"])
            if cfg.classifier_weight > 0 and out["class_logits"] is not None
            else torch.zeros((), device=c_loss.device)
        )
        loss = c_loss + cfg.classifier_weight * b_loss
    ok = bool(torch.isfinite(loss))
    grad_norm = float("nan")
    if ok:
        if accelerator is not None:
            accelerator.backward(loss)
        else:
            loss.backward()
        params = [p for p in module.parameters() if p.grad is not None]
        if cfg.grad_clip > 0:
            if accelerator is not None:
                grad_norm = float(accelerator.clip_grad_norm_(params, cfg.grad_clip))
            else:
                grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip))
        else:
            grad_norm = float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params])))
        ok = math.isfinite(grad_norm)
    if ok:
        optimizer.step()
    else:
        optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            for b, saved in zip(module.buffers(), buffers, strict=True):
                b.copy_(saved)
    scalars = {
        "loss": float(loss.detach()),
        "contrastive": float(c_loss.detach()),
        "bce": float(b_loss.detach()),
        "grad_norm": grad_norm,
    }
    return ok, scalars


# --- evaluation -------------------------------------------------------------------------------------------------


@torch.no_grad()
def predict(
    model: EcgClipModel, dataset: Any, device: torch.device, batch_size: int = 256
) -> dict[str, np.ndarray]:
    """Head logits (N, L), ECG embeddings (N, D, normalised) and labels (N, L) of a whole split (eval mode)."""
    was_training = model.training
    model.eval()
    logits, embs, labels = [], [], []
    for start in range(0, len(dataset), batch_size):
        batch = collate(dataset.__getitems__(list(range(start, min(start + batch_size, len(dataset))))))
        out, emb = model.encode_ecg(batch["ecg"].to(device))
        if out.logits is not None:
            logits.append(out.logits.float().cpu())
        embs.append(emb.float().cpu())
        labels.append(batch["labels"])
    model.train(was_training)
    return {
        "logits": torch.cat(logits).numpy() if logits else np.zeros((0, 0)),
        "embeddings": torch.cat(embs).numpy(),
        "labels": torch.cat(labels).numpy(),
    }


# --- checkpoints ------------------------------------------------------------------------------------------------

STATE_FILE = "trainer_state.json"  # written last: its presence marks a complete checkpoint


def _trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def save_checkpoint(
    ckpt_root: Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: dict[str, Any],
    keep: int,
) -> Path:
    """Write ``ckpt_root/step_{step:07d}`` atomically: a hidden temp dir, fsync'ed files, then one rename."""
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"step_{step:07d}"
    tmp = ckpt_root / f".tmp_step_{step:07d}_{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_file(_trainable_state(model), str(tmp / "model.safetensors"))
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    rng = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng.update({f"cuda_{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    save_file(rng, str(tmp / "rng_state.safetensors"))
    with open(tmp / STATE_FILE, "w") as f:  # last file: marks completeness
        json.dump({**state, "step": step}, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    complete = sorted(p for p in ckpt_root.glob("step_*") if (p / STATE_FILE).is_file())
    for old in complete[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(ckpt_root: Path) -> Path | None:
    """Newest COMPLETE checkpoint (a ``step_*`` dir with trainer_state.json); temp / partial dirs are ignored."""
    if not ckpt_root.is_dir():
        return None
    complete = []
    for p in ckpt_root.glob("step_*"):
        need = ("model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.safetensors", STATE_FILE)
        if p.is_dir() and all((p / n).is_file() for n in need):
            try:
                json.loads((p / STATE_FILE).read_text())
            except (OSError, json.JSONDecodeError):
                continue
            complete.append(p)
    return max(complete, key=lambda p: int(p.name.split("_")[1])) if complete else None


def load_checkpoint(
    path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any
) -> dict[str, Any]:
    try:
        model.load_state_dict(load_file(str(path / "model.safetensors")))
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
        scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
        rng = load_file(str(path / "rng_state.safetensors"))
    except (OSError, RuntimeError, KeyError, ValueError, pickle.UnpicklingError) as err:
        raise CheckpointError(
            f"Checkpoint {path} cannot be loaded ({err}); delete it to resume from an older one."
        ) from None
    torch.set_rng_state(rng["torch_cpu"])
    if torch.cuda.is_available():
        states = [rng[k] for k in sorted(rng) if k.startswith("cuda_")]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)
    return json.loads((path / STATE_FILE).read_text())


# --- logging ----------------------------------------------------------------------------------------------------

CSV_FIELDS = [
    "step", "epoch", "split", "loss", "contrastive", "bce", "grad_norm", "lr", "logit_scale", "logit_bias",
    "val_macro_auroc", "skipped", "seconds",
]  # fmt: skip


class MetricsLog:
    """metrics.csv (truncated to ``resume_step`` on resume so replayed steps are not duplicated) + TensorBoard."""

    def __init__(self, out: Path, resume_step: int, enabled: bool) -> None:
        self.path = out / "metrics.csv"
        self.enabled = enabled
        if not enabled:
            return
        rows = []
        if resume_step > 0 and self.path.is_file():
            with open(self.path) as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        with open(self.path, "w", newline="") as f:
            w = csv.DictWriter(f, CSV_FIELDS)
            w.writeheader()
            w.writerows(rows)
        self.tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(
                str(out / "tensorboard"), purge_step=resume_step + 1 if resume_step else None
            )
        except ImportError:  # tensorboard is optional at run time
            pass

    def write(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, CSV_FIELDS).writerow({k: row.get(k, "") for k in CSV_FIELDS})
        if self.tb is not None:
            for k, v in row.items():
                if k not in ("step", "epoch", "split") and isinstance(v, (int, float)) and math.isfinite(v):
                    self.tb.add_scalar(f"{row.get('split', 'train')}/{k}", v, row["step"])

    def close(self) -> None:
        if self.enabled and self.tb is not None:
            self.tb.close()


# --- the run ----------------------------------------------------------------------------------------------------


def _check(cfg: PretrainConfig) -> None:
    if cfg.loss not in CONTRASTIVE_LOSSES:
        raise ConfigError(f"Unknown loss {cfg.loss!r}; choose one of {sorted(CONTRASTIVE_LOSSES)}.")
    if cfg.loss_form not in SIGMOID_FORMS:
        raise ConfigError(f"Unknown loss_form {cfg.loss_form!r}; choose one of {sorted(SIGMOID_FORMS)}.")
    if cfg.loss_norm not in NORMALISATIONS:
        raise ConfigError(f"Unknown loss_norm {cfg.loss_norm!r}; choose one of {sorted(NORMALISATIONS)}.")
    check_normalization(cfg.input_normalization)
    if cfg.batch_size < 2:
        raise ConfigError("batch_size must be >= 2 (contrastive learning needs negatives).")
    if cfg.crop_seconds <= 0:
        raise ConfigError(f"crop_seconds must be positive, got {cfg.crop_seconds}.")
    if cfg.mixed_precision not in ("no", "fp16", "bf16"):
        raise ConfigError(f"mixed_precision must be no | fp16 | bf16, got {cfg.mixed_precision!r}.")


def run_pretrain(cfg: PretrainConfig) -> Path:
    """Train the stage-1 encoder; returns the run folder (see module docstring)."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    _check(cfg)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    use_cpu = cfg.cpu or not torch.cuda.is_available()
    accelerator = Accelerator(cpu=use_cpu, mixed_precision="no" if use_cpu else cfg.mixed_precision)
    device = accelerator.device
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    is_main = accelerator.is_main_process
    if is_main:
        save_resolved_config(cfg, out)
    set_seed(cfg.seed)

    crop_samples = int(round(cfg.crop_seconds * cfg.sampling_rate))
    eval_samples = int(round((cfg.eval_seconds or cfg.crop_seconds) * cfg.sampling_rate))
    data = load_stage_data(cfg, crop_samples, cfg.random_crop, cfg.seed, eval_samples)
    if is_main:  # which ECGs training saw: read by the VQA leakage check
        ecg_ids = data.cache.table["ecg_id"].to_numpy()
        atomic_write_json(
            out / "train_ecg_ids.json",
            {
                "stage": 1,
                "train": sorted(int(i) for i in ecg_ids[data.cache.split_indices("train")]),
                "val": sorted(int(i) for i in ecg_ids[data.cache.split_indices("val")]),
            },
        )
    tower = TextTower(cfg.text)
    feature_table = TextFeatureTable(tower, data.texts) if tower.frozen else None
    log.info(
        "text tower %s: %d records, %d unique texts", cfg.text.model, len(data.texts), len(set(data.texts))
    )

    torch.manual_seed(cfg.seed)  # model init independent of what the tower did
    model = build_model(cfg, data.label_names, tower.hidden_size, tower)
    optimizer = build_optimizer(model, cfg)
    per_epoch = len(epoch_batches(len(data.train), cfg.batch_size, cfg.seed, 0))
    total = per_epoch * cfg.epochs if cfg.max_steps is None else min(cfg.max_steps, per_epoch * cfg.epochs)
    scheduler = cosine_with_warmup(optimizer, min(cfg.warmup_steps, max(total // 5, 1)), total)
    model, optimizer = accelerator.prepare(model, optimizer)
    raw: EcgClipModel = accelerator.unwrap_model(model)

    ckpt_root = out / "checkpoints"
    state: dict[str, Any] = {"step": 0, "best_auroc": -1.0, "best_step": -1, "skipped": 0}
    if cfg.resume:
        latest = latest_checkpoint(ckpt_root)
        if latest is not None:
            state = load_checkpoint(latest, raw, optimizer, scheduler)
            log.info("resumed from %s (step %d)", latest, state["step"])
        else:
            log.info("resume=true but no complete checkpoint in %s; starting from scratch", ckpt_root)
    for p in ckpt_root.glob(".tmp_step_*") if ckpt_root.is_dir() else []:  # leftovers of a crash
        shutil.rmtree(p, ignore_errors=True)
    mlog = MetricsLog(out, state["step"], is_main)
    guard = StepGuard(cfg.max_bad_steps)
    best_file = out / "best" / "model.safetensors"

    def text_features(idx: torch.Tensor) -> torch.Tensor:
        if feature_table is not None:
            return feature_table.features(idx).to(device)  # (B, H) cached
        return raw.text_tower([data.texts[i] for i in idx.tolist()])  # (B, H) with gradients

    def validate(step: int, epoch: int) -> None:
        pred = predict(raw, data.val, device)
        auroc = macro_auroc(pred["labels"], pred["logits"]) if pred["logits"].size else float("nan")
        if not math.isfinite(auroc):
            auroc = -_val_contrastive(raw, data, pred, feature_table, tower)  # no head: rank by val loss
        if is_main:
            mlog.write({"step": step, "epoch": epoch, "split": "val", "val_macro_auroc": auroc})
            if auroc > state["best_auroc"]:
                state.update(best_auroc=auroc, best_step=step)
                best_file.parent.mkdir(parents=True, exist_ok=True)
                tmp = best_file.with_name(".model.safetensors.tmp")
                save_file(_trainable_state(raw), str(tmp))
                os.replace(tmp, best_file)
        log.info(
            "step %d: val macro AUROC %.4f (best %.4f @ %d)",
            step,
            auroc,
            state["best_auroc"],
            state["best_step"],
        )

    step = int(state["step"])
    t0 = time.time()
    model.train()
    bar = tqdm(total=total, initial=step, desc="pretrain", disable=not (cfg.progress and is_main))
    try:
        while step < total:
            epoch, k0 = divmod(step, per_epoch)
            data.train.set_epoch(epoch)
            for k, batch_pos in enumerate(epoch_batches(len(data.train), cfg.batch_size, cfg.seed, epoch)):
                if k < k0:
                    continue
                shard = batch_pos[accelerator.process_index :: accelerator.num_processes]
                batch = {
                    key: v.to(device) for key, v in collate(data.train.__getitems__(list(shard))).items()
                }
                ok, scalars = train_step(
                    model, batch, text_features(batch["index"]), optimizer, cfg, accelerator
                )
                scheduler.step() if ok else None
                step += 1
                state["skipped"] = state.get("skipped", 0) + (0 if ok else 1)
                bar.update(1)
                if step % cfg.log_every == 0 or not ok or step == total:
                    row = {
                        "step": step, "epoch": epoch, "split": "train", **scalars,
                        "lr": scheduler.get_last_lr()[0], "logit_scale": float(raw.logit_scale.detach().exp()),
                        "logit_bias": float(raw.logit_bias.detach()), "skipped": int(not ok), "seconds": round(time.time() - t0, 2),
                    }  # fmt: skip
                    mlog.write(row)
                    bar.set_postfix(loss=f"{scalars['loss']:.3f}")
                guard.record(ok, step)  # after logging, so the stopping step is in metrics.csv
                end_of_epoch = k == per_epoch - 1
                if (end_of_epoch and (epoch + 1) % cfg.eval_every_epochs == 0) or step == total:
                    validate(step, epoch)
                if is_main and (step % cfg.checkpoint_every == 0 or step == total):
                    save_checkpoint(
                        ckpt_root, step, raw, optimizer, scheduler, dict(state), cfg.keep_checkpoints
                    )
                if step >= total:
                    break
    finally:
        bar.close()
        mlog.close()
    if state["best_step"] < 0:  # resumed after the last validation of a finished run
        validate(step, step // per_epoch)
    accelerator.wait_for_everyone()
    if is_main:
        finalize(raw, cfg, data, tower, best_file, out, device)
        atomic_write_json(
            out / "summary.json", {**state, "total_steps": total, "seconds": round(time.time() - t0, 2)}
        )
    return out


def _val_contrastive(raw: EcgClipModel, data: StageData, pred: dict, table: Any, tower: TextTower) -> float:
    """Validation contrastive loss (used for model selection only when there is no classifier head)."""
    idx = torch.as_tensor(data.val.indices)
    feats = (
        table.features(idx)
        if table is not None
        else tower.encode_unique([data.texts[i] for i in idx.tolist()])
    )
    with torch.no_grad():
        text_emb = raw.encode_text_features(feats.to(raw.logit_scale.device))
        ecg = torch.from_numpy(pred["embeddings"]).to(text_emb.device)
        logits = ecg @ text_emb.t() * raw.logit_scale.exp() + raw.logit_bias
        return float(
            contrastive_loss("jaccard_siglip", logits, torch.from_numpy(pred["labels"]).to(logits.device))
        )


@torch.no_grad()
def finalize(
    raw: EcgClipModel,
    cfg: PretrainConfig,
    data: StageData,
    tower: TextTower,
    best_file: Path,
    out: Path,
    device: torch.device,
) -> None:
    """Load the best weights, fit a probe head if λ = 0, calibrate on val, write encoder/ and clip_model/."""
    from encoder.heads import fit_linear_probe

    if best_file.is_file():
        raw.load_state_dict(load_file(str(best_file)))
    raw.eval()
    if cfg.classifier_weight <= 0 and raw.encoder.classifier is not None:  # linear probe on frozen embeddings
        labels = torch.from_numpy(data.cache.labels[data.train.indices].astype(np.float32))  # (N, L)
        with torch.enable_grad():
            fit_linear_probe(
                raw.encoder.classifier, torch.from_numpy(_unnormalised(raw, data.train, device)), labels
            )
    val = predict(raw, data.val, device)
    temps = fit_temperature(val["logits"], val["labels"])
    probs = 1.0 / (1.0 + np.exp(-val["logits"] / np.asarray(temps)[None, :]))
    thresholds = tune_thresholds(val["labels"], probs)
    enc = raw.encoder
    enc.config.label_temperature = [float(t) for t in temps]
    enc.config.label_thresholds = [float(t) for t in thresholds]
    enc.save_pretrained(out / "encoder")
    label_feats = (
        tower.encode_unique(data.label_texts)
        if tower.frozen
        else tower.encode_unique(data.label_texts, False)
    )
    raw.set_label_texts(data.label_texts, label_feats)
    tmp = out / ".clip_model.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    raw.save_pretrained(tmp)
    shutil.rmtree(out / "clip_model", ignore_errors=True)
    os.replace(tmp, out / "clip_model")


@torch.no_grad()
def _unnormalised(raw: EcgClipModel, dataset: Any, device: torch.device, batch_size: int = 256) -> np.ndarray:
    """Encoder embeddings (N, D) before L2 normalisation (what ``forward_head`` sees)."""
    outs = []
    for start in range(0, len(dataset), batch_size):
        batch = collate(dataset.__getitems__(list(range(start, min(start + batch_size, len(dataset))))))
        outs.append(raw.encoder(batch["ecg"].to(device)).embedding.float().cpu())
    return torch.cat(outs).numpy()
