"""Checkpoints through accelerate's ``save_state`` / ``load_state``: complete or absent, never half-written.

``<root>/step_XXXXXXX/`` holds what ``save_state`` writes (``model.safetensors``; ``optimizer.bin``,
``scheduler.bin`` and one ``random_states_<rank>.pkl`` per process through ``torch.save``) and, written last as
the completeness marker, ``trainer_state.json`` (step, counters, best score, the run's settings). Every process
writes into ``.tmp_step_XXXXXXX``; the main process adds the marker and renames the folder, so a crash leaves
at most a temp folder, which is never resumed. The newest ``keep`` complete checkpoints are kept.

Loading is safe: the weights are safetensors, every pickle goes through ``torch.load(weights_only=True)``
(accelerate's loader), and a random-state file that does not load that way is refused here rather than
skipped. The model's tensors are saved unwrapped (no DDP ``module.`` prefix), so a checkpoint resumes under
any process count; ``weights`` chooses which tensors (stage 2: only the trained ones).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from encoder.errors import CheckpointError

log = logging.getLogger(__name__)

STATE_FILE = "trainer_state.json"
WEIGHTS_FILE = "model.safetensors"
_NAME = re.compile(r"^step_(\d+)$")
WeightsFn = Callable[[Any], dict[str, torch.Tensor]]
"""The (unwrapped) model -> the tensors a checkpoint holds, e.g. ``EcgLlm.trainable_state_dict``."""


def full_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer of ``model`` (the default of :class:`Checkpoints`)."""
    return model.state_dict()


class Checkpoints:
    """The checkpoints of one run under ``root``, through ``accelerator`` (which must have ``prepare``-d the model,
    optimizer and scheduler); ``weights(model)`` picks the model tensors a checkpoint holds."""

    def __init__(
        self,
        root: Path,
        keep: int,
        accelerator: Any,
        weights: WeightsFn = full_state,
    ) -> None:
        self.root, self.keep, self.accelerator, self.weights = Path(root), keep, accelerator, weights
        accelerator.register_save_state_pre_hook(self._save_hook)
        accelerator.register_load_state_pre_hook(self._load_hook)

    def latest(self) -> Path | None:
        """The newest complete checkpoint, or None."""
        return latest_checkpoint(self.root)

    def clear(self) -> None:
        """Start over: the main process deletes every checkpoint (others would shadow the new run's)."""
        if self.accelerator.is_main_process and self.root.is_dir():
            shutil.rmtree(self.root)
        self.accelerator.wait_for_everyone()

    # --- saving ---------------------------------------------------------------------------------------------------
    def save(self, step: int, state: dict[str, Any]) -> Path:
        """Write checkpoint ``step`` with trainer ``state``; every process calls this."""
        acc = self.accelerator
        tmp, final = self.root / f".tmp_step_{step:07d}", self.root / f"step_{step:07d}"
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        acc.wait_for_everyone()
        acc.save_state(str(tmp))
        acc.wait_for_everyone()
        if acc.is_main_process:
            with open(tmp / STATE_FILE, "w") as f:  # last file: marks completeness
                json.dump({**state, "step": step}, f, indent=2)
                f.flush()
                os.fsync(f.fileno())
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            self._prune()
        acc.wait_for_everyone()
        return final

    def _prune(self) -> None:
        done = complete_checkpoints(self.root)
        for old in done[: -self.keep] if self.keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
        for stale in self.root.glob(".tmp_step_*"):  # leftovers of a crash
            shutil.rmtree(stale, ignore_errors=True)

    def _save_hook(self, models: list, weights: list, output_dir: str) -> None:
        for i, model in enumerate(models[: len(weights)]):  # FSDP / DeepSpeed save their models themselves
            tensors = self.weights(self.accelerator.unwrap_model(model))
            weights[i] = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}

    # --- loading --------------------------------------------------------------------------------------------------
    def load(self, path: Path) -> dict[str, Any]:
        """Restore model, optimizer, scheduler and this process's random state from ``path``; returns its trainer
        state. Every process calls this."""
        self._check_random_state(path)
        try:
            self.accelerator.load_state(str(path))
        except CheckpointError:
            raise
        except (OSError, RuntimeError, KeyError, ValueError, EOFError, pickle.UnpicklingError) as err:
            raise CheckpointError(
                f"Checkpoint {path} cannot be loaded ({type(err).__name__}: {str(err)[:300]}); delete it to "
                "resume from an older one."
            ) from None
        state = read_state(path)
        if state is None:
            raise CheckpointError(f"Checkpoint {path} has no readable {STATE_FILE}; delete it.")
        return state

    def _check_random_state(self, path: Path) -> None:
        from accelerate.utils import load

        file = path / f"random_states_{self.accelerator.process_index}.pkl"
        if not file.is_file():
            log.warning("%s has no random state for process %d (other process count); dropout restarts.", path,
                        self.accelerator.process_index)  # fmt: skip
            return
        try:
            load(file)  # torch.load(weights_only=True): accelerate swallows a failure here, we do not
        except Exception as err:  # noqa: BLE001 - any failure means the file is not a plain random state
            raise CheckpointError(
                f"Checkpoint {path}: {file.name} cannot be loaded safely ({type(err).__name__}); delete the "
                "checkpoint to resume from an older one."
            ) from None

    def _load_hook(self, models: list, input_dir: str) -> None:
        for i, model in enumerate(models):
            module = self.accelerator.unwrap_model(model)
            saved = load_file(str(Path(input_dir) / (WEIGHTS_FILE if i == 0 else f"model_{i}.safetensors")))
            expected = set(self.weights(module))
            if set(saved) != expected:
                diff = sorted(set(saved) ^ expected)
                raise CheckpointError(f"Checkpoint {input_dir} does not match this model (e.g. {diff[:3]}).")
            module.load_state_dict(saved, strict=False)
        models.clear()  # loaded here, not by accelerate (which would expect wrapped names)


def complete_checkpoints(root: Path) -> list[Path]:
    """The complete checkpoints under ``root``, oldest first (``step_*`` folders with weights and a marker that
    parses; temp folders and half-written ones are ignored)."""
    root = Path(root)
    found = []
    for p in root.glob("step_*") if root.is_dir() else []:
        if _NAME.match(p.name) and p.is_dir() and (p / WEIGHTS_FILE).is_file() and read_state(p) is not None:
            found.append(p)
    return sorted(found, key=lambda p: int(p.name.split("_")[1]))


def latest_checkpoint(root: Path) -> Path | None:
    """The newest complete checkpoint under ``root``, or None."""
    done = complete_checkpoints(root)
    return done[-1] if done else None


def read_state(path: Path) -> dict[str, Any] | None:
    """The trainer state of checkpoint ``path`` (None when the marker is missing or unreadable)."""
    try:
        state = json.loads((Path(path) / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and "step" in state else None
