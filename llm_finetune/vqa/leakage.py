"""Refuse (or warn) when ECGs or patients of the evaluated split were seen in stage-1 or stage-2 training.

Preferred evidence: the ECG ids a training run recorded. Any ``train_ecg_ids.json`` found in the model
directory, its parent, its ``encoder/`` sub-folder or an extra run directory is read; accepted forms are a
JSON list of ids, or an object whose ``"ecg_ids"`` / ``"train"`` / ``"train_ecg_ids"`` (seen in training)
and ``"val"`` / ``"valid"`` / ``"val_ecg_ids"`` (used for early stopping / calibration) hold id lists;
an optional ``"stage"`` (1 or 2) says which stage wrote it (else it is inferred from the folder:
``encoder/`` -> stage 1).

A stage-2 run folder (``<run>/model`` + ``<run>/config.yaml``, written by ``run_finetune``) is read with
:func:`stage2_run_info`: its ``encoder`` entry points at the stage-1 encoder (whose folders are searched
too) and its ``train_split`` / ``ecgqa_root`` say which ECG-QA questions stage 2 trained on.

A record may also hold ``data_fingerprint`` (:func:`encoder.exclusion.data_fingerprint` of the table its
ids refer to) and ``train_patients`` / ``val_patients``. Ids are only compared within one fingerprint
(a synthetic cohort's ``ecg_id`` 7 is not real PTB-XL's 7), and patients are compared as well as ECGs
when the evaluated ECGs' patients are known. Overlap found in *recorded* training ids raises
:class:`~encoder.errors.LeakageError` unless ``allow_leakage`` is set; the fold/split fallbacks below
are guesses and only warn.

Fallbacks, used only when no run recorded its ids (the report says which rule was used):
- stage 1: the PTB-XL fold rule of this library (stage 1 trains on ``strat_fold`` 1-8, validates on 9),
  applied with the dataset's ``ptbxl_database.csv``. Note that ECG-QA's splits are **not** PTB-XL's folds,
  so ECG-QA test ECGs usually sit in folds 1-8.
- stage 2: the ECG-QA ``train`` (and ``valid``) split of the same dataset, when it is on disk.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

from encoder.errors import LeakageError

log = logging.getLogger(__name__)

RECORD_NAME = "train_ecg_ids.json"
_TRAIN_KEYS = ("ecg_ids", "train", "train_ecg_ids")
_VAL_KEYS = ("val", "valid", "val_ecg_ids", "valid_ecg_ids")
STAGE1_TRAIN_FOLDS = frozenset(range(1, 9))
STAGE1_VAL_FOLDS = frozenset({9})


class LeakageWarning(UserWarning):
    """ECGs of the evaluated split were (or may have been) seen in training."""


def read_id_record(path: str | Path) -> dict:
    """Parse one ``train_ecg_ids.json`` into ``{"train": set, "val": set, "stage": int | None}``."""
    data = json.loads(Path(path).read_text())
    if isinstance(data, list):
        return {"train": _ids(data), "val": set(), "stage": None, "fingerprint": None}
    train = set().union(*(_ids(data[k]) for k in _TRAIN_KEYS if k in data))
    val = set().union(*(_ids(data[k]) for k in _VAL_KEYS if k in data))
    return {
        "train": train,
        "val": val,
        "stage": data.get("stage"),
        "fingerprint": data.get("data_fingerprint"),
        "train_patients": _ids(data.get("train_patients", [])),
        "val_patients": _ids(data.get("val_patients", [])),
    }


def _ids(values: Iterable) -> set[int]:
    out: set[int] = set()
    for v in values:
        out.update(int(x) for x in v) if isinstance(v, (list, tuple)) else out.add(int(v))
    return out


def find_id_records(
    model_dir: str | Path | None, stage1_dirs: Sequence[str | Path] = ()
) -> list[tuple[int, Path]]:
    """``(stage, path)`` of every ``train_ecg_ids.json`` near the stage-2 model or in the stage-1 ``stage1_dirs``.

    A record's own ``"stage"`` key wins; otherwise ``encoder/`` folders and ``stage1_dirs`` are stage 1 and the
    model folder and its parent are stage 2.
    """
    candidates: list[tuple[Path, int]] = []
    if model_dir is not None:
        m = Path(model_dir)
        candidates += [(m, 2), (m.parent, 2), (m / "encoder", 1), (m.parent / "encoder", 1)]
    for d in map(Path, stage1_dirs):
        candidates += [(d, 1), (d / "encoder", 1)]
    found: list[tuple[int, Path]] = []
    seen: set[Path] = set()
    for d, default in candidates:
        p = (d / RECORD_NAME).resolve()
        if p in seen or not p.is_file():
            continue
        seen.add(p)
        stage = read_id_record(p)["stage"]
        found.append((int(stage) if stage else default, p))
    return found


def stage2_run_info(model_dir: str | Path | None) -> dict:
    """What the stage-2 run's ``config.yaml`` (next to ``model_dir``) says: stage-1 dirs, train split, ECG-QA root,
    ``ecg_input``."""
    if model_dir is None:
        return {}
    path = Path(model_dir).parent / "config.yaml"
    if not path.is_file():
        return {}
    import yaml

    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        return {}
    if not isinstance(cfg, dict):
        return {}
    info: dict = {"config": str(path)}
    if cfg.get("encoder"):
        enc = Path(str(cfg["encoder"]))
        info["stage1_dirs"] = [enc, enc.parent]
    if cfg.get("train_split"):
        info["train_split"] = str(cfg["train_split"])
    if cfg.get("ecg_input"):
        info["ecg_input"] = str(cfg["ecg_input"])
    root = cfg.get("ecgqa_root") or (
        str(Path(str(cfg["data_root"])) / "ecgqa") if cfg.get("data_root") else None
    )
    if root:
        info["ecgqa_root"] = str(root)
    return info


def _overlap(eval_ids: set[int], seen: set[int]) -> dict:
    both = sorted(eval_ids & seen)
    return {"n_overlap": len(both), "fraction": len(both) / max(1, len(eval_ids)), "examples": both[:10]}


def check_leakage(
    eval_ecg_ids: Iterable[int],
    *,
    model_dir: str | Path | None = None,
    extra_run_dirs: Sequence[str | Path] = (),
    ptbxl_folds: dict[int, int] | None = None,
    ecgqa_train_ecg_ids: Iterable[int] | None = None,
    eval_fingerprint: str | None = None,
    patient_of: dict[int, int] | None = None,
    allow_leakage: bool = False,
    warn: bool = True,
) -> dict:
    """Overlap of the evaluated ECGs (and their patients) with what stage 1 / stage 2 trained on.

    Args:
        eval_ecg_ids: every ``ecg_id`` the evaluated questions use.
        model_dir: the stage-2 model directory (searched for recorded ids, see the module docstring).
        extra_run_dirs: stage-1 run directories to search (the stage-2 run's ``config.yaml`` adds its own).
        ptbxl_folds: ``ecg_id -> strat_fold`` of the signal dataset, for the stage-1 fold fallback.
        ecgqa_train_ecg_ids: ECG ids of the ECG-QA training split, for the stage-2 fallback.
        eval_fingerprint: data-source fingerprint of the evaluated ECGs; records of another source are skipped.
        patient_of: ``ecg_id -> patient_id`` of the evaluated data source, to compare patients too.
        allow_leakage: report overlap in recorded training ids instead of raising ``LeakageError``.
        warn: emit a :class:`LeakageWarning` for every stage with overlap.

    Returns ``{"stage1": {...}, "stage2": {...}}``, each with ``source`` (where the evidence came from),
    ``n_overlap``, ``fraction``, ``examples`` (``val_*`` likewise for validation ids when recorded;
    ``patient_*`` for patients when both sides know them).
    """
    ev = {int(i) for i in eval_ecg_ids}
    ev_patients = {patient_of[i] for i in ev if i in patient_of} if patient_of else set()
    result: dict = {"n_eval_ecgs": len(ev), "eval_fingerprint": eval_fingerprint}
    records = find_id_records(
        model_dir, [*extra_run_dirs, *stage2_run_info(model_dir).get("stage1_dirs", [])]
    )
    for stage in (1, 2):
        paths = [p for s, p in records if s == stage]
        entry = (
            _recorded_entry(ev, ev_patients, paths, eval_fingerprint)
            if paths
            else _fallback_entry(stage, ev, ptbxl_folds, ecgqa_train_ecg_ids)
        )
        result[f"stage{stage}"] = entry
        n = (entry.get("n_overlap") or 0) + (entry.get("n_patient_overlap") or 0)
        if not n:
            continue
        msg = (
            f"Leakage: {entry['n_overlap']} of {len(ev)} evaluated ECGs ({entry['fraction']:.1%}) and "
            f"{entry.get('n_patient_overlap', 0)} of their patients were seen in stage-{stage} training "
            f"({entry['source']}); scores on them are optimistic."
        )
        if entry["source"].startswith("recorded") and not allow_leakage:
            raise LeakageError(
                msg + " Evaluate on ECGs training never saw (train stage 1 with heldout_ecgqa_root / "
                "exclude_ids_file), or pass allow_leakage to report the optimistic numbers anyway."
            )
        if warn:
            warnings.warn(msg, LeakageWarning, stacklevel=2)
            log.warning(msg)
    return result


def _recorded_entry(ev: set[int], ev_patients: set[int], paths: list[Path], fingerprint: str | None) -> dict:
    """Overlap with the recorded ids of ``paths`` that belong to the evaluated data source."""
    train, val, train_p, val_p, used, other = set(), set(), set(), set(), [], []
    for p in paths:
        rec = read_id_record(p)
        if fingerprint and rec["fingerprint"] and rec["fingerprint"] != fingerprint:
            other.append(f"{p} (fingerprint {rec['fingerprint']})")
            continue
        used.append(str(p))
        train |= rec["train"]
        val |= rec["val"]
        train_p |= rec.get("train_patients", set())
        val_p |= rec.get("val_patients", set())
    if not used:
        return {
            "source": "other data source: "
            + ", ".join(other)
            + f" is not {fingerprint}; no overlap possible",
            "n_overlap": 0,
            "fraction": 0.0,
            "examples": [],
        }
    entry = {"source": "recorded: " + ", ".join(used), **_overlap(ev, train)}
    if other:
        entry["skipped_other_source"] = other
    if val:
        entry.update({f"val_{k}": v for k, v in _overlap(ev, val).items()})
    if ev_patients and train_p:
        entry.update({f"patient_{k}": v for k, v in _overlap(ev_patients, train_p).items()})
        entry["n_patient_overlap"] = entry.pop("patient_n_overlap")
        if val_p:
            entry.update({f"val_patient_{k}": v for k, v in _overlap(ev_patients, val_p).items()})
    return entry


def _fallback_entry(
    stage: int, ev: set[int], ptbxl_folds: dict[int, int] | None, ecgqa_train_ecg_ids: Iterable[int] | None
) -> dict:
    """The fold / split rule used when no run recorded its ids (a guess: it only warns)."""
    if stage == 1 and ptbxl_folds:
        train = {i for i, f in ptbxl_folds.items() if int(f) in STAGE1_TRAIN_FOLDS}
        val = {i for i, f in ptbxl_folds.items() if int(f) in STAGE1_VAL_FOLDS}
        entry = {"source": "rule: PTB-XL strat_fold 1-8 = stage-1 training (no recorded ids found)"}
        entry.update(_overlap(ev, train))
        entry.update({f"val_{k}": v for k, v in _overlap(ev, val).items()})
        return entry
    if stage == 2 and ecgqa_train_ecg_ids is not None:
        entry = {
            "source": "rule: the ECG-QA split stage 2 trained on, read from disk (no recorded ids found)"
        }
        entry.update(_overlap(ev, {int(i) for i in ecgqa_train_ecg_ids}))
        return entry
    return {"source": "unknown: no recorded ids and no fallback available", "n_overlap": None}
