"""What both training stages share: the accelerator, resuming, one optimizer step, logging, checkpoints, summary.

A stage builds its model, optimizer, scheduler and objective, then drives :class:`TrainingCore`::

    core = TrainingCore(out, seed=..., cpu=..., mixed_precision=..., keep_checkpoints=...)
    checkpoint = core.find_checkpoint(cfg.resume, run_settings(cfg), "--resume false")  # before writing anything
    model, optimizer, scheduler = core.prepare(model, optimizer, scheduler)
    core.start(checkpoint, fields=..., max_bad_steps=..., advice=..., total_steps=...)
    for step in range(core.state["step"], total):
        result = optimizer_step(core.accelerator, model, optimizer, scheduler, objective, micro_batches, clip)
        core.record(step + 1, result, {...})
        core.save(step + 1) if ... else None
    core.finish()

Multi-process rules kept here: every decision that changes control flow (skip a step, stop) is agreed by all
processes; files (metrics, checkpoint marker, summary) are written by the main process only; every process
restores its own state from a checkpoint.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from encoder.config_io import atomic_write_json
from encoder.engine.checkpoints import Checkpoints, WeightsFn, full_state, read_state
from encoder.engine.distributed import all_agree, rank_and_world, sum_over_processes
from encoder.engine.guard import NonFiniteGuard
from encoder.engine.metrics import MetricsLog
from encoder.engine.settings import check_resume_settings
from encoder.errors import ConfigError

log = logging.getLogger(__name__)

Objective = Callable[[torch.nn.Module, Any], tuple[torch.Tensor, dict[str, torch.Tensor]]]
"""(model, micro-batch) -> (this process's share of the loss, named parts for the log). Shares are defined so
that their mean over processes is the global-batch loss (see ``encoder.loss.global_contrastive_loss``)."""


@dataclass
class StepResult:
    """One optimizer step: applied or skipped, and the loss / parts averaged over processes and micro-batches."""

    applied: bool
    loss: float
    grad_norm: float
    parts: dict[str, float] = field(default_factory=dict)


def optimizer_step(
    accelerator: Any,
    model: torch.nn.Module,
    optimizer: Any,
    scheduler: Any,
    objective: Objective,
    micro_batches: Sequence[Any],
    max_grad_norm: float,
) -> StepResult:
    """Forward + backward over the micro-batches (gradient accumulation), clip, step optimizer and scheduler.

    A non-finite loss or gradient norm on ANY process skips the step on EVERY process: parameters, optimizer
    state, scheduler and buffers (BatchNorm statistics) stay as they were. ``max_grad_norm`` 0 = no clipping."""
    module = accelerator.unwrap_model(model)
    buffers = [b.detach().clone() for b in module.buffers()]
    optimizer.zero_grad(set_to_none=True)
    values, names, applied = _forward_backward(accelerator, model, objective, micro_batches)
    grad_norm = float("nan")
    if applied:
        params = [p for p in module.parameters() if p.grad is not None]
        grad_norm = float(
            accelerator.clip_grad_norm_(params, max_grad_norm if max_grad_norm > 0 else math.inf)
        )
        applied = all_agree(math.isfinite(grad_norm), accelerator.device)
    if applied:
        optimizer.step()
        scheduler.step()
    else:
        with torch.no_grad():
            for buffer, saved in zip(module.buffers(), buffers, strict=True):
                buffer.copy_(saved)
    optimizer.zero_grad(set_to_none=True)
    loss, *parts = values.tolist()
    return StepResult(applied, loss, grad_norm, dict(zip(names, parts, strict=True)))


def _forward_backward(
    accelerator: Any, model: torch.nn.Module, objective: Objective, micro_batches: Sequence[Any]
) -> tuple[torch.Tensor, list[str], bool]:
    """(loss and parts averaged over processes and micro-batches, part names, all finite everywhere)."""
    n = len(micro_batches)
    world = rank_and_world()[1]
    total: torch.Tensor | None = None
    names: list[str] = []
    for j, batch in enumerate(micro_batches):
        syncing = contextlib.nullcontext() if j == n - 1 else accelerator.no_sync(model)
        with syncing:
            with accelerator.autocast():
                loss, parts = objective(model, batch)
            names = list(parts)
            local = torch.stack([loss.detach().float(), *(p.detach().float() for p in parts.values())])
            bad = (~torch.isfinite(local)).any().float()[None]
            summed = sum_over_processes(torch.cat([local, bad]))  # one exchange: the values and the skip vote
            mean = summed[:-1] / (world * n)
            total = mean if total is None else total + mean
            if float(summed[-1]) > 0:
                return total, names, False
            accelerator.backward(loss / n)
    if total is None:
        raise ConfigError("optimizer_step got no micro-batches; a step needs at least one batch.")
    return total, names, True


class TrainingCore:
    """One training run's plumbing on accelerate, the same for stage 1 and stage 2 (see module docstring).

    ``state`` (step, skipped, bad_streak, plus whatever the stage adds, e.g. the best validation score) is saved
    in every checkpoint and in ``summary.json``; ``weights`` picks the model tensors a checkpoint holds."""

    def __init__(
        self,
        out_dir: str | Path,
        *,
        seed: int,
        cpu: bool,
        mixed_precision: str,
        keep_checkpoints: int,
        weights: WeightsFn = full_state,
        find_unused_parameters: bool = False,
    ) -> None:
        from accelerate import Accelerator, DistributedDataParallelKwargs
        from accelerate.utils import ProjectConfiguration, set_seed

        self.out = Path(out_dir)
        self.accelerator = Accelerator(
            cpu=cpu,
            mixed_precision=mixed_precision,
            project_config=ProjectConfiguration(
                project_dir=str(self.out), logging_dir=str(self.out / "tensorboard")
            ),
            step_scheduler_with_optimizer=False,  # one scheduler step per optimizer step, whatever the process count
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=find_unused_parameters)],
        )
        set_seed(seed)
        self.checkpoints = Checkpoints(self.out / "checkpoints", keep_checkpoints, self.accelerator, weights)
        self.state: dict[str, Any] = {"step": 0, "skipped": 0, "bad_streak": 0}
        self.settings: dict = {}
        self.guard = NonFiniteGuard(1)
        self.metrics: MetricsLog | None = None
        self.bar: Any = None
        self.t0 = time.time()

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def rank(self) -> int:
        return self.accelerator.process_index

    @property
    def world(self) -> int:
        return self.accelerator.num_processes

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    def barrier(self) -> None:
        self.accelerator.wait_for_everyone()

    def find_checkpoint(self, resume: bool, settings: dict, start_over_hint: str) -> Path | None:
        """Call before writing anything: the checkpoint to resume (its settings must match ``settings``), or None.
        ``resume`` false deletes the folder's old checkpoints, so they cannot shadow the new run's."""
        self.settings = settings
        if not resume:
            self.checkpoints.clear()
            return None
        latest = self.from_main(self.checkpoints.latest())
        if latest is not None:
            check_resume_settings(
                latest, (read_state(latest) or {}).get("settings"), settings, start_over_hint
            )
        return latest

    def from_main(self, value: Any) -> Any:
        """The main process's ``value`` on every process (decisions taken from the file system)."""
        if self.world == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def prepare(self, *objects: Any) -> tuple:
        """``accelerator.prepare``: DDP-wrap the model, wrap optimizer and scheduler for checkpointing."""
        return self.accelerator.prepare(*objects)

    def start(
        self,
        checkpoint: Path | None,
        *,
        fields: Sequence[str],
        total_steps: int,
        max_bad_steps: int,
        advice: str,
        desc: str,
        progress: bool = True,
        **fresh_state: Any,
    ) -> dict[str, Any]:
        """Restore ``checkpoint`` on every process (or start with ``fresh_state``), open the metrics log (cut back
        to the resumed step) and the progress bar; returns ``state``."""
        if checkpoint is not None:
            self.state = {**self.state, **self.checkpoints.load(checkpoint)}
            log.info("resumed from %s (step %d)", checkpoint, self.state["step"])
        else:
            self.state.update(fresh_state)
        self.guard = NonFiniteGuard(max_bad_steps, advice)
        self.guard.consecutive, self.guard.total = int(self.state["bad_streak"]), int(self.state["skipped"])
        self.metrics = MetricsLog(self.out, ["step", *fields], int(self.state["step"]), self.is_main)
        step = int(self.state["step"])
        self.bar = tqdm(total=total_steps, initial=step, desc=desc, disable=not (progress and self.is_main))
        return self.state

    def record(self, step: int, result: StepResult, row: dict[str, Any], log_now: bool = True) -> None:
        """Count step ``step`` (1-based), log it (always when skipped), then apply the non-finite guard (which may
        raise :class:`~encoder.engine.guard.TrainingError`; the stopping step is logged first)."""
        if log_now or not result.applied:
            self.log({"split": "train", "loss": result.loss, **result.parts, "grad_norm": result.grad_norm,
                      "skipped": int(not result.applied), "seconds": round(time.time() - self.t0, 2),
                      **row, "step": step})  # fmt: skip
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{result.loss:.4f}")
        self.guard.record(result.applied, step)
        self.state.update(step=step, skipped=self.guard.total, bad_streak=self.guard.consecutive)

    def log(self, row: dict[str, Any]) -> None:
        """One metrics row (main process only)."""
        if self.metrics is None:
            raise ConfigError("TrainingCore.log before start(): start() opens the metrics log.")
        self.metrics.write(row)

    def save(self, step: int) -> Path:
        """Checkpoint the current state at ``step`` (every process calls this)."""
        state = {**self.state, "step": step, "settings": self.settings, "num_processes": self.world}
        return self.checkpoints.save(step, state)

    def finish(self, **summary: Any) -> None:
        """Close the log and write ``summary.json`` once (main process), then wait for every process."""
        self.close()
        if self.is_main:
            state = {k: v for k, v in self.state.items() if k != "settings"}
            atomic_write_json(self.out / "summary.json", {**state, "num_processes": self.world,
                              "seconds": round(time.time() - self.t0, 2), **summary})  # fmt: skip
        self.barrier()

    def close(self) -> None:
        """Close the progress bar and the metrics log (safe to call twice)."""
        if self.bar is not None:
            self.bar.close()
        if self.metrics is not None:
            self.metrics.close()
        self.bar = self.metrics = None
