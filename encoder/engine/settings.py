"""The settings a run's weights depend on: saved with every checkpoint and compared when a run resumes.

Every config field shapes the weights unless its dataclass marks it ``metadata={"resume_free": True}``
(bookkeeping, output, evaluation, memory savers, the run length). A checkpoint written with other weight-shaping
settings is refused with a :class:`~encoder.errors.CheckpointError` that names the changes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any

from encoder.config_io import resume_free_fields
from encoder.errors import CheckpointError

log = logging.getLogger(__name__)


def run_settings(cfg: Any, paths: Iterable[str] = (), free: Iterable[str] = ()) -> dict:
    """The weight-shaping settings of config dataclass ``cfg``, JSON-ready: every field except the resume-free
    ones (and the dotted names in ``free``); the fields named in ``paths`` as absolute paths (the same folder
    however it is spelled)."""
    data = json.loads(json.dumps(dataclasses.asdict(cfg), default=str))
    for key in paths:
        if data.get(key):
            data[key] = os.path.abspath(data[key])
    return _without(data, resume_free_fields(type(cfg)) | set(free))


def _without(data: dict, drop: AbstractSet[str], prefix: str = "") -> dict:
    return {
        k: _without(v, drop, f"{prefix}{k}.") if isinstance(v, dict) else v
        for k, v in data.items()
        if f"{prefix}{k}" not in drop
    }


def changed_settings(saved: dict, now: dict, prefix: str = "") -> list[str]:
    """``name: old -> new`` for each setting that differs (dotted names; settings only one side records, e.g.
    options added to the library after the checkpoint was written, are not compared)."""
    out = []
    for key in sorted(set(saved) & set(now)):
        a, b = saved[key], now[key]
        if isinstance(a, dict) and isinstance(b, dict):
            out += changed_settings(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def check_resume_settings(checkpoint: Path, saved: dict | None, now: dict, start_over_hint: str) -> None:
    """Refuse to continue ``checkpoint`` (its recorded ``saved`` settings) under other settings ``now``."""
    if saved is None:
        log.warning(
            "%s was written before checkpoints recorded their settings; resuming it without checking that they "
            "match this run's (resume false starts over).",
            checkpoint,
        )
        return
    changed = changed_settings(saved, now)
    if changed:
        raise CheckpointError(
            f"{checkpoint} was trained with other settings ({'; '.join(changed[:5])}). Resuming would continue "
            f"those weights under the new settings: use a new output folder, or start over here with "
            f"{start_over_hint}."
        )
