"""Stage 1: Jaccard-SigLIP ECG-text pretraining with a jointly trained per-label head.

``run_pretrain(cfg) -> Path`` (the run folder) writes, once (main process)::

    <out>/encoder/         EcgEncoder.save_pretrained (label_names, label_task, temperature + thresholds tuned on val)
    <out>/clip_model/      EcgClipModel.save_pretrained (encoder + text projection + logit scale/bias + label texts)
    <out>/best/            the weights of the best validation macro AUROC so far
    <out>/metrics.csv      one row per logged step / validation (+ the same scalars in <out>/tensorboard/)
    <out>/checkpoints/step_XXXXXXX/   complete checkpoints only (encoder.engine.checkpoints)
    <out>/summary.json     steps, skipped steps, best step / AUROC, number of processes, seconds
    <out>/config.yaml, <out>/train_ecg_ids.json

Determinism / resume: batch order and crops are pure functions of (seed, epoch) (``encoder.engine.batches`` +
``CachedEcgDataset.set_epoch``), dropout uses the random state every checkpoint restores on every process, so a
resumed run replays the same steps as an uninterrupted one. Several processes (``accelerate launch``): each
takes its contiguous block of every global batch, the contrastive loss is that of the global batch
(``encoder.loss.global_contrastive_loss``), BatchNorm uses global-batch statistics and the encoder's dropout
global-batch masks, so N processes train like one process on the same global batches.
Validation shards the fold and gathers the predictions.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from encoder.augment import AugmentConfig, augment_crops
from encoder.clip_model import EcgClipModel
from encoder.config_io import atomic_write_json, check_config, save_resolved_config
from encoder.configuration import EcgEncoderConfig
from encoder.engine.batches import BatchOrder, batch_loader, shard
from encoder.engine.core import StepResult, TrainingCore, optimizer_step
from encoder.engine.distributed import use_global_batchnorm, use_global_dropout
from encoder.engine.inference import EncodedDataset, encode_dataset
from encoder.engine.settings import run_settings
from encoder.errors import ConfigError
from encoder.exclusion import load_exclusion, seen_record_extras, split_rows
from encoder.heads import classifier_loss, fit_temperature
from encoder.loss import contrastive_loss, global_contrastive_loss
from encoder.metrics import macro_auroc, tune_thresholds
from encoder.modeling import EcgEncoder
from encoder.text import TextFeatureTable, TextTower, TextTowerConfig

log = logging.getLogger(__name__)

METRICS_FIELDS = [
    "epoch", "split", "loss", "contrastive", "bce", "aux", "grad_norm", "lr", "logit_scale", "logit_bias",
    "val_macro_auroc", "skipped", "seconds",
]  # fmt: skip


LossName = Literal["jaccard_siglip", "siglip", "clip"]
"""The contrastive objectives (``encoder.loss.CONTRASTIVE_LOSSES``)."""
TextStyle = Literal["knowledge", "codes"]
"""Record text: expanded SCP descriptions, or bare codes."""


@dataclass
class PretrainConfig:
    """Stage-1 pretraining: data, model, loss, optimisation, checkpointing."""

    data_dir: str = "data/synthetic"
    """PTB-XL-format folder (real PTB-XL or the synthetic cohort from ``ecgllm data synth``)."""
    heldout_ecgqa_root: str | None = None
    """ECG-QA root whose valid/test ECGs, and every ECG of their patients, stage 1 must not train or validate on."""
    exclude_ids_file: str | None = None
    """File of held-out ecg_ids (JSON list or ECG-QA's test_ecgs.tsv), excluded with their patients like above."""
    out_dir: str = field(default="runs/pretrain", metadata={"resume_free": True})
    """Run folder (encoder/, clip_model/, metrics.csv, checkpoints/, config.yaml)."""
    cache_dir: str | None = field(default=None, metadata={"resume_free": True})
    """Signal cache root (default ``$ECGLLM_CACHE/signals``); must be outside ``data_dir``."""
    task: str = "superdiagnostic"
    """PTB-XL label task of the classifier head and of the Jaccard targets."""
    sampling_rate: Literal[100, 500] = 100
    """Input rate in Hz (100 or 500)."""
    min_label_count: int = field(default=1, metadata={"ge": 0})
    """Keep labels with at least this many records."""
    text_style: TextStyle = "knowledge"
    """Record text: ``knowledge`` (expanded SCP descriptions) or ``codes`` (bare codes)."""
    text: TextTowerConfig = field(default_factory=TextTowerConfig)
    """Text tower (model, pooling, frozen / finetune / lora)."""
    arch: Literal["resnet10", "resnet18", "resnet34"] = "resnet18"
    """Encoder depth preset (resnet10 | resnet18 | resnet34)."""
    widths: list[int] = field(default_factory=lambda: [64, 128, 256, 512], metadata={"ge": 1})
    """Channels of the four encoder stages."""
    embed_dim: int = field(default=256, metadata={"ge": 1})
    """Shared ECG-text embedding width."""
    dropout: float = field(default=0.1, metadata={"ge": 0.0, "lt": 1.0})
    """Dropout before the encoder's projection."""
    loss: LossName = "jaccard_siglip"
    """Contrastive objective: ``jaccard_siglip`` | ``siglip`` | ``clip``."""
    loss_form: Literal["soft", "pm1"] = "soft"
    """Sigmoid-loss form: ``soft`` (BCE with soft targets, default) or ``pm1`` (±1 rescaled targets)."""
    loss_norm: Literal["positives", "batch"] = "positives"
    """Sigmoid-loss reduction (``encoder.loss.REDUCTIONS``): ``positives`` (divide by the global target mass
    sum J; = B for plain SigLIP) or ``batch`` (divide by the global B, SigLIP's reduction unchanged)."""
    classifier_weight: float = field(default=1.0, metadata={"ge": 0.0})
    """λ of the jointly trained per-label BCE head (0 = contrastive only; the head is then fit as a probe)."""
    aux_tasks: list[str] = field(default_factory=list)
    """Multi-task aux heads trained jointly (names of ``encoder.multitask.AUX_TASKS``; targets from the table's
    ECG-QA attributes); empty = none."""
    aux_weight: float = field(default=1.0, metadata={"ge": 0.0})
    """Weight of the summed aux-task losses."""
    refit_numeric_head: bool = field(default=True, metadata={"resume_free": True})
    """After training, refit the ``numeric_feature`` head by ridge regression on frozen centre-window embeddings
    of the training fold (penalty chosen on the validation fold); kept only when it lowers the validation MAE."""
    init_logit_scale: float = math.log(10.0)
    """Initial log of the logit scale (SigLIP: log 10)."""
    init_logit_bias: float = -10.0
    """Initial logit bias (SigLIP: -10)."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    """Signal augmentation of the training batches (``encoder.augment``; off unless ``augment.enabled``)."""
    random_crop: bool = True
    """Random-crop augmentation of the training windows (off = centre crop)."""
    crop_seconds: float = field(default=5.0, metadata={"gt": 0.0})
    """Training window length in seconds (random or centre crop of each cached record)."""
    input_normalization: Literal["zscore", "center"] = "zscore"
    """Per-lead input normalisation: ``zscore`` (shape only) or ``center`` (mean removed, amplitude kept in units
    of 0.3 mV); saved in the encoder config, so every inference path normalises the same way."""
    eval_seconds: float | None = field(default=None, metadata={"gt": 0.0})
    """Centre window for validation / test, saved as the encoder's ``input_seconds`` (what ``model_input`` and
    stage 2 feed it); None = ``crop_seconds``. The encoder is fully convolutional, so e.g. 10 s works after 2.5 s
    crops."""
    epochs: int = field(default=10, metadata={"ge": 1, "resume_free": True})
    """Passes over the training fold (a resumed run may change it: the cosine schedule stretches)."""
    max_steps: int | None = field(default=None, metadata={"ge": 1, "resume_free": True})
    """Stop after this many optimizer steps (overrides ``epochs`` when smaller)."""
    batch_size: int = field(default=64, metadata={"ge": 2})
    """Global batch size (contrastive negatives per step), split evenly over the processes."""
    lr: float = field(default=1e-3, metadata={"gt": 0.0})
    """Peak AdamW learning rate."""
    logit_lr: float | None = field(default=None, metadata={"gt": 0.0})
    """Learning rate of the logit scale and bias (None = 10 x lr). Adam moves a parameter by about lr per step
    whatever its gradient, so at the encoder's lr the bias would need thousands of steps to leave its -10 init,
    while with many J = 1 pairs per batch its optimum is near logit(mean J) (see encoder/loss.py)."""
    weight_decay: float = field(default=1e-4, metadata={"ge": 0.0})
    """AdamW weight decay (not applied to biases, norms, logit scale / bias)."""
    warmup_steps: int = field(default=50, metadata={"ge": 0})
    """Linear warm-up steps before the cosine decay (at most a fifth of the run)."""
    grad_clip: float = field(default=1.0, metadata={"ge": 0.0})
    """Gradient-norm clipping (0 = off)."""
    global_batchnorm: bool = True
    """With several processes, BatchNorm statistics over the global batch (as one process computes them);
    false = each process's block only (plain DDP, one exchange less per BatchNorm layer)."""
    mixed_precision: Literal["no", "fp16", "bf16"] = "bf16"
    """``no`` | ``fp16`` | ``bf16``; only used on GPU (CPU runs in float32)."""
    cpu: bool = field(default=False, metadata={"resume_free": True})
    """Force CPU even when a GPU is available."""
    num_threads: int | None = field(default=None, metadata={"ge": 1, "resume_free": True})
    """torch CPU threads (None = torch default)."""
    num_workers: int = field(default=0, metadata={"ge": 0, "resume_free": True})
    """DataLoader worker processes reading the training batches ahead (0 = read in the training process)."""
    seed: int = 0
    """Seed of initialisation, batch order, crops and dropout."""
    eval_every_epochs: int = field(default=1, metadata={"ge": 1, "resume_free": True})
    """Validate (macro AUROC of the head) every this many epochs and at the end."""
    log_every: int = field(default=10, metadata={"ge": 1, "resume_free": True})
    """Log training scalars every this many steps."""
    checkpoint_every: int = field(default=200, metadata={"ge": 1, "resume_free": True})
    """Write a resumable checkpoint every this many steps (and at the end)."""
    keep_checkpoints: int = field(default=2, metadata={"ge": 1, "resume_free": True})
    """How many complete checkpoints to keep."""
    resume: bool = field(default=False, metadata={"resume_free": True})
    """Continue from the latest complete checkpoint in ``out_dir/checkpoints`` (its weight-shaping settings must
    match this run's, else CheckpointError); false starts over and deletes that folder's old checkpoints."""
    max_bad_steps: int = field(default=5, metadata={"ge": 1, "resume_free": True})
    """Stop after this many consecutive steps with a NaN/inf loss or gradient (each one is skipped)."""
    progress: bool = field(default=True, metadata={"resume_free": True})
    """Show tqdm progress bars."""

    def __post_init__(self) -> None:
        # nested settings given as mappings (a saved config.yaml, JSON) become dataclasses
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, dict) and f.default_factory is not MISSING:
                default = f.default_factory()
                if is_dataclass(default) and not isinstance(default, type):
                    setattr(self, f.name, type(default)(**value))
        check_config(self)


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
    exclusion: Any = None
    """The :class:`encoder.exclusion.HeldoutExclusion` applied to train/val, if any."""
    aux_targets: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None
    """Aux task -> (target, mask) (N_cache, K) per cache row, when ``aux_tasks`` are set."""


def load_stage_data(cfg: PretrainConfig, crop_samples: int, random_crop: bool, seed: int) -> StageData:
    """PTB-XL-format dir -> cache -> train (random crops) / val / test (centre crops) datasets + texts."""
    from encoder.datasets.cache import build_cache
    from encoder.datasets.ptbxl import PtbXl
    from encoder.labels import label_text

    ds = PtbXl.from_config(cfg.data_dir, cfg)
    cache = build_cache(ds, cfg.cache_dir, progress=cfg.progress)
    names = list(cache.label_names)
    if crop_samples > cache.num_samples:
        raise ConfigError(
            f"crop_seconds={cfg.crop_seconds} is longer than the cached records ({cache.num_samples} samples)."
        )
    eval_samples = eval_window_samples(cfg)
    if eval_samples > cache.num_samples:
        raise ConfigError(
            f"eval_seconds={cfg.eval_seconds} is longer than the cached records ({cache.num_samples} samples)."
        )
    exclusion = load_exclusion(cfg.data_dir, cfg.heldout_ecgqa_root, cfg.exclude_ids_file)
    split = partial(_split, cache, cfg, seed, exclusion)
    return StageData(
        cache,
        names,
        [str(t) for t in cache.table["text"]],
        [label_text([n], ds.statements, cfg.text_style) for n in names],
        split("train", random_crop, crop_samples),
        split("val", False, eval_samples),  # validated, calibrated and reported on the window it is used on
        split("test", False, eval_samples),
        exclusion,
        aux_targets(ds.database, cache.table, cfg.aux_tasks),
    )


def aux_targets(
    database: Any, cache_table: Any, tasks: list[str]
) -> dict[str, tuple[torch.Tensor, torch.Tensor]] | None:
    """Aux-task targets (N_cache, K) of the cache rows, from the attributes of the PTB-XL table's rows with the
    same ``ecg_id`` (``None`` without aux tasks)."""
    if not tasks:
        return None
    from encoder.datasets.ptbxl_attributes import table_attributes
    from encoder.ecgqa.attributes import EcgAttributes
    from encoder.multitask import build_targets

    by_id = dict(zip(database["ecg_id"].astype(int), table_attributes(database), strict=True))
    return build_targets([by_id.get(int(e), EcgAttributes()) for e in cache_table["ecg_id"]], tasks)


def eval_window_samples(cfg: PretrainConfig) -> int:
    """Samples of the centre window the encoder is validated, calibrated and used on (its ``input_seconds``)."""
    return int(round((cfg.eval_seconds or cfg.crop_seconds) * cfg.sampling_rate))


def _split(
    cache: Any,
    cfg: PretrainConfig,
    seed: int,
    exclusion: Any,
    name: str,
    random_crop: bool,
    crop_samples: int,
) -> Any:
    from encoder.datasets.cache import CachedEcgDataset

    idx = split_rows(cache, name, exclusion)
    if len(idx) == 0:
        raise ConfigError(f"The {name} fold of {cfg.data_dir} is empty; stage 1 needs folds 1-8, 9 and 10.")
    return CachedEcgDataset(
        cache,
        idx,
        crop_samples=crop_samples,
        random_crop=random_crop,
        seed=seed,
        normalization=cfg.input_normalization,
        transform=_augmenter(cfg) if name == "train" else None,
    )


def _augmenter(cfg: PretrainConfig) -> Any:
    """The training crops' augmentation (``encoder.augment``), or None when it is off."""
    if not cfg.augment.enabled:
        return None
    return partial(
        augment_crops, cfg=cfg.augment, fs=float(cfg.sampling_rate), normalization=cfg.input_normalization
    )


def write_seen_ecg_ids(data: StageData, out: Path) -> None:
    """``train_ecg_ids.json``: which ECGs training and model selection saw (read by the VQA leakage check)."""
    ecg_ids = data.cache.table["ecg_id"].to_numpy()
    rows = {name: split_rows(data.cache, name, data.exclusion) for name in ("train", "val")}
    folds = {name: sorted(int(i) for i in ecg_ids[r]) for name, r in rows.items()}
    record = {"stage": 1, **folds, **seen_record_extras(data.exclusion, folds, out)}
    atomic_write_json(out / "train_ecg_ids.json", record)


class TextInputs:
    """The texts of a batch as the model takes them: rows of the cached feature table (frozen tower) or the
    strings themselves (a tower that trains encodes them inside the model's forward)."""

    def __init__(self, tower: TextTower, texts: list[str]) -> None:
        self.tower, self.texts = tower, texts
        self.table = TextFeatureTable(tower, texts) if tower.frozen else None

    def __call__(self, index: torch.Tensor, device: torch.device) -> dict[str, Any]:
        if self.table is not None:
            return {"text_features": self.table.features(index).to(device)}  # (B, H) cached
        return {"texts": [self.texts[i] for i in index.tolist()]}

    def features(self, index: torch.Tensor) -> torch.Tensor:
        """(N, H) features of the records ``index`` without gradients (validation)."""
        if self.table is not None:
            return self.table.features(index)
        return self.tower.encode_unique([self.texts[i] for i in index.tolist()])


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
        aux_tasks=cfg.aux_tasks,
    )
    model = EcgClipModel(
        EcgEncoder(enc_cfg),
        text_dim,
        cfg.text,
        cfg.init_logit_scale,
        cfg.init_logit_bias,
        text_tower=text_tower,
    )
    if cfg.classifier_weight <= 0 and model.encoder.classifier is not None:
        model.encoder.classifier.requires_grad_(False)  # no gradient in training; fit as a probe at the end
    return model


def build_optimizer(model: torch.nn.Module, cfg: PretrainConfig) -> torch.optim.Optimizer:
    """AdamW; biases/norms without decay; logit scale and bias in their own group at ``logit_lr``."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    logit: list[torch.nn.Parameter] = []
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


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: PretrainConfig, total: int) -> Any:
    """Linear warm-up (at most a fifth of the run), then cosine decay to 0 (transformers' schedule)."""
    from transformers import get_cosine_schedule_with_warmup

    return get_cosine_schedule_with_warmup(optimizer, min(cfg.warmup_steps, max(total // 5, 1)), total)


def pretrain_objective(
    model: torch.nn.Module,
    batch: dict[str, torch.Tensor],
    cfg: PretrainConfig,
    text: TextInputs,
    aux_targets: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """This process's share of contrastive (global batch) + λ · BCE + aux-task losses (local means)."""
    out = model(batch["ecg"], **text(batch["index"], batch["ecg"].device))
    contrastive = global_contrastive_loss(
        cfg.loss, out["ecg_emb"], out["text_emb"], out["logit_scale"], out["logit_bias"], batch["labels"],
        cfg.loss_form, cfg.loss_norm,
    )  # fmt: skip
    bce = torch.zeros((), device=contrastive.device)
    if cfg.classifier_weight > 0 and out["class_logits"] is not None:
        bce = classifier_loss(out["class_logits"], batch["labels"])
    aux = torch.zeros((), device=contrastive.device)
    if aux_targets is not None and out["aux_logits"] is not None:
        from encoder.multitask import aux_loss

        rows = batch["index"].cpu()
        batch_targets = {
            n: (t[rows].to(aux.device), m[rows].to(aux.device)) for n, (t, m) in aux_targets.items()
        }
        aux = aux_loss(out["aux_logits"], batch_targets)[0]
    loss = contrastive + cfg.classifier_weight * bce + cfg.aux_weight * aux
    return loss, {"contrastive": contrastive, "bce": bce, "aux": aux}


# --- the run ----------------------------------------------------------------------------------------------------


class Pretraining:
    """One stage-1 run: its data, model, optimizer, schedule and :class:`TrainingCore`, and the loop."""

    def __init__(self, cfg: PretrainConfig, core: TrainingCore, data: StageData, text: TextInputs) -> None:
        self.cfg, self.core, self.data, self.text = cfg, core, data, text
        self.order = BatchOrder(len(data.train), cfg.batch_size, cfg.seed)
        per_run = self.order.per_epoch * cfg.epochs
        self.total = per_run if cfg.max_steps is None else min(cfg.max_steps, per_run)
        torch.manual_seed(cfg.seed)  # model init independent of what the tower did
        model = build_model(cfg, data.label_names, text.tower.hidden_size, text.tower)
        use_global_dropout(model.encoder)  # the same masks on N processes as on one
        if cfg.global_batchnorm and core.world > 1:
            use_global_batchnorm(model)
        optimizer = build_optimizer(model, cfg)
        self.model, self.optimizer, self.scheduler = core.prepare(
            model, optimizer, build_scheduler(optimizer, cfg, self.total)
        )
        self.raw: EcgClipModel = core.accelerator.unwrap_model(self.model)
        self.objective = partial(pretrain_objective, cfg=cfg, text=text, aux_targets=data.aux_targets)
        self.best_file = core.out / "best" / "model.safetensors"

    def train(self) -> None:
        """Steps from the resumed one to the end, epoch by epoch (crops drawn per epoch)."""
        self.model.train()
        step = int(self.core.state["step"])
        while step < self.total:
            epoch, first = divmod(step, self.order.per_epoch)
            self.data.train.set_epoch(epoch)
            todo = self.order.epoch(epoch)[first : first + self.total - step]
            blocks = [shard(b, self.core.rank, self.core.world) for b in todo]
            for k, batch in enumerate(batch_loader(self.data.train, blocks, self.cfg.num_workers), first):
                step += 1
                self.one_step(step, epoch, {key: v.to(self.core.device) for key, v in batch.items()})
                end_of_epoch = k == self.order.per_epoch - 1
                if (end_of_epoch and (epoch + 1) % self.cfg.eval_every_epochs == 0) or step == self.total:
                    self.validate(step, epoch)
                if step % self.cfg.checkpoint_every == 0 or step == self.total:
                    self.core.save(step)
        if self.core.state["best_step"] < 0:  # resumed after the last validation of a finished run
            self.validate(step, step // self.order.per_epoch)

    def one_step(self, step: int, epoch: int, batch: dict[str, torch.Tensor]) -> StepResult:
        """Step ``step`` (1-based) on this process's block ``batch``; logs the learning rate it used."""
        acc, cfg = self.core.accelerator, self.cfg
        lr = self.optimizer.param_groups[0]["lr"]
        result = optimizer_step(
            acc, self.model, self.optimizer, self.scheduler, self.objective, [batch], cfg.grad_clip
        )
        row = {
            "epoch": epoch,
            "lr": lr,
            "logit_scale": float(self.raw.logit_scale.detach().exp()),
            "logit_bias": float(self.raw.logit_bias.detach()),
        }
        self.core.record(step, result, row, log_now=step % cfg.log_every == 0 or step == self.total)
        return result

    def validate(self, step: int, epoch: int) -> None:
        """Macro AUROC of the head on the whole validation fold (sharded over the processes, gathered); the best
        weights so far go to ``best/`` (main process)."""
        pred = encode_dataset(self.raw.encoder, self.data.val, accelerator=self.core.accelerator)
        auroc = (
            macro_auroc(pred.output("labels").numpy(), pred.output("logits").numpy())
            if pred.output("logits").shape[1]
            else float("nan")
        )
        if not math.isfinite(auroc):  # no head: rank by the validation contrastive loss
            auroc = -validation_contrastive(self.raw, self.data, pred, self.text)
        state = self.core.state
        self.core.log({"step": step, "epoch": epoch, "split": "val", "val_macro_auroc": auroc})
        if auroc > state["best_auroc"]:
            state.update(best_auroc=auroc, best_step=step)
            if self.core.is_main:
                self.best_file.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.best_file.with_name(".model.safetensors.tmp")
                save_file(
                    {k: v.detach().cpu().contiguous() for k, v in self.raw.state_dict().items()}, str(tmp)
                )
                os.replace(tmp, self.best_file)
        self.core.barrier()
        log.info(
            "step %d: val macro AUROC %.4f (best %.4f @ %d)",
            step,
            auroc,
            state["best_auroc"],
            state["best_step"],
        )


def validation_contrastive(
    raw: EcgClipModel, data: StageData, pred: EncodedDataset, text: TextInputs
) -> float:
    """Validation Jaccard-SigLIP loss of the whole fold (model selection when there is no classifier head)."""
    feats = text.features(torch.as_tensor(data.val.indices))
    with torch.no_grad():
        text_emb = raw.encode_text_features(feats.to(raw.logit_scale.device))
        ecg = torch.nn.functional.normalize(pred.output("embedding"), dim=-1).to(text_emb.device)
        logits = ecg @ text_emb.t() * raw.logit_scale.exp() + raw.logit_bias
        return float(contrastive_loss("jaccard_siglip", logits, pred.output("labels").to(logits.device)))


NON_FINITE_ADVICE = (
    "Lower lr, keep grad_clip > 0, use mixed_precision='bf16' instead of 'fp16', or check the data for NaN "
    "samples; resume from the last checkpoint with resume=true."
)


def run_pretrain(cfg: PretrainConfig) -> Path:
    """Train the stage-1 encoder; returns the run folder (see module docstring)."""
    check_config(cfg)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    out = Path(cfg.out_dir)
    use_cpu = cfg.cpu or not torch.cuda.is_available()
    core = TrainingCore(
        out, seed=cfg.seed, cpu=use_cpu, mixed_precision="no" if use_cpu else cfg.mixed_precision,
        keep_checkpoints=cfg.keep_checkpoints, find_unused_parameters=cfg.text.train_mode != "frozen",
    )  # fmt: skip
    checkpoint = core.find_checkpoint(
        cfg.resume,
        run_settings(cfg, paths=("data_dir",)),
        "--resume false (the quickstart: --force '[stage1]')",
    )
    with core.accelerator.main_process_first():  # the main process fills the signal and text caches
        data = load_stage_data(
            cfg, int(round(cfg.crop_seconds * cfg.sampling_rate)), cfg.random_crop, cfg.seed
        )
        tower = TextTower(cfg.text)
        text = TextInputs(tower, data.texts)
    if core.is_main:
        out.mkdir(parents=True, exist_ok=True)
        save_resolved_config(cfg, out)
        write_seen_ecg_ids(data, out)
    log.info(
        "text tower %s: %d records, %d unique texts", cfg.text.model, len(data.texts), len(set(data.texts))
    )
    run = Pretraining(cfg, core, data, text)
    core.start(
        checkpoint, fields=METRICS_FIELDS, total_steps=run.total, max_bad_steps=cfg.max_bad_steps,
        advice=NON_FINITE_ADVICE, desc="pretrain", progress=cfg.progress, best_auroc=-1.0, best_step=-1,
    )  # fmt: skip
    try:
        run.train()
    finally:
        core.close()
    if core.is_main:
        finalize(run.raw, cfg, data, tower, run.best_file, out)
    core.finish(total_steps=run.total)
    return out


@torch.no_grad()
def finalize(
    raw: EcgClipModel, cfg: PretrainConfig, data: StageData, tower: TextTower, best_file: Path, out: Path
) -> None:
    """Load the best weights, fit a probe head if λ = 0, calibrate on val, write encoder/ and clip_model/."""
    from encoder.heads import fit_linear_probe

    if best_file.is_file():
        raw.load_state_dict(load_file(str(best_file)))
    raw.eval()
    if cfg.classifier_weight <= 0 and raw.encoder.classifier is not None:  # linear probe on frozen embeddings
        device = raw.logit_scale.device
        labels = torch.from_numpy(data.cache.labels[data.train.indices].astype(np.float32))  # (N, L)
        embeddings = encode_dataset(raw.encoder, data.train, outputs=("embedding",)).output(
            "embedding"
        )  # (N, D)
        with torch.enable_grad():
            raw.encoder.classifier.requires_grad_(True)
            fit_linear_probe(raw.encoder.classifier, embeddings.to(device), labels.to(device))
    val = encode_dataset(raw.encoder, data.val, outputs=("logits", "labels"))
    logits, y = val.output("logits").numpy(), val.output("labels").numpy()
    temps = fit_temperature(logits, y)
    thresholds = tune_thresholds(y, 1.0 / (1.0 + np.exp(-logits / np.asarray(temps)[None, :])))
    enc = raw.encoder
    enc.config.label_temperature = [float(t) for t in temps]
    enc.config.label_thresholds = [float(t) for t in thresholds]
    if data.aux_targets is not None and enc.aux_head is not None:
        from encoder.datasets.cache import CachedEcgDataset
        from encoder.multitask import calibrate_and_report, refit_numeric_head

        refit = None
        if cfg.refit_numeric_head and "numeric_feature" in enc.aux_head.heads:
            train_windows = CachedEcgDataset(
                data.cache, data.train.indices, crop_samples=eval_window_samples(cfg), random_crop=False,
                normalization=cfg.input_normalization,
            )  # fmt: skip
            refit = refit_numeric_head(enc, data.aux_targets, train_windows, data.val)
        report = calibrate_and_report(enc, data.aux_targets, data.val, data.test)
        if refit is not None:
            report["numeric_feature"]["refit"] = refit
        atomic_write_json(out / "aux_metrics.json", report)
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


if __name__ == "__main__":
    from encoder.cli_support import run_command

    raise SystemExit(run_command(PretrainConfig, run_pretrain))
