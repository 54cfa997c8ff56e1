"""Keep ECG-QA's held-out ECGs, and every ECG of their patients, out of stage-1 training.

ECG-QA splits PTB-XL by patient, not by ``strat_fold``: its valid/test ECGs sit in folds 1-8, which
stage 1 trains on. Given the ECG-QA root (its ``valid``/``test`` questions) or an id file, stage 1
drops those ECGs and all ECGs of the same patients (``patient_id`` of ``ptbxl_database.csv``) from its
train and val rows, and writes what it dropped to ``<run>/heldout_exclusion.json``.

The data-source fingerprint (:func:`data_fingerprint`) names the table an id belongs to, so that a
leakage check never compares a synthetic cohort's ``ecg_id`` 7 with real PTB-XL's ``ecg_id`` 7.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from encoder.errors import DatasetError

EXCLUSION_NAME = "heldout_exclusion.json"
HELDOUT_SPLITS = ("valid", "test")
_FINGERPRINT_COLUMNS = ("ecg_id", "patient_id", "scp_codes")


def data_fingerprint(table: pd.DataFrame) -> str:
    """sha256 (16 hex) of the table's ``ecg_id``, ``patient_id`` and ``scp_codes`` columns, sorted by ecg_id."""
    cols = [c for c in _FINGERPRINT_COLUMNS if c in table.columns]
    if "ecg_id" not in cols:
        raise DatasetError("Cannot fingerprint a table without an ecg_id column.")
    t = table[cols].sort_values("ecg_id")
    text = t.to_csv(index=False, header=True, float_format="%.0f")
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_id_file(path: str | Path) -> set[int]:
    """ECG ids from a JSON list, one id per line, or ECG-QA's ``test_ecgs.tsv`` (``index<TAB>ecg_id``)."""
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"Id file {p} not found; pass a JSON list or a file with one ecg_id per line.")
    text = p.read_text()
    if text.lstrip().startswith("["):
        return {int(i) for i in json.loads(text)}
    try:
        return {int(line.split()[-1]) for line in text.splitlines() if line.strip()}
    except ValueError as exc:
        raise DatasetError(f"{p}: every line must end with an integer ecg_id ({exc}).") from exc


def ecgqa_heldout_ids(root: str | Path, splits: Iterable[str] = HELDOUT_SPLITS) -> set[int]:
    """Every ``ecg_id`` used by the ECG-QA questions of ``splits`` (template variant, PTB-XL source)."""
    from encoder.datasets.ecgqa import load_ecgqa

    ids: set[int] = set()
    for split in splits:
        ids.update(int(e) for ids_ in load_ecgqa(root, split=split)["ecg_id"] for e in ids_)
    return ids


@dataclass(frozen=True)
class HeldoutExclusion:
    """Which ECGs stage 1 must not see: the held-out ones and every ECG of their patients."""

    heldout_ecg_ids: frozenset[int]
    """The ids named by ECG-QA's valid/test split (or the id file)."""
    excluded_ecg_ids: frozenset[int]
    """Those of ``heldout_ecg_ids`` in the table plus every ECG of the same patients."""
    excluded_patients: frozenset[int]
    fingerprint: str
    """:func:`data_fingerprint` of the table the ids refer to."""
    not_in_table: int = 0
    """Held-out ids absent from the table (nothing to exclude for them)."""
    patient_of: dict[int, int] = field(default_factory=dict, compare=False, repr=False)
    """``ecg_id -> patient_id`` of the whole table (empty when it has no patient_id column)."""

    @classmethod
    def from_table(cls, table: pd.DataFrame, heldout: Iterable[int] = ()) -> HeldoutExclusion:
        held = frozenset(int(i) for i in heldout)
        ecg = table["ecg_id"].astype(int).to_numpy()
        if "patient_id" not in table.columns:
            if held:
                raise DatasetError(
                    "ptbxl_database.csv has no patient_id column: cannot exclude the held-out ECGs' patients."
                )
            return cls(held, frozenset(), frozenset(), data_fingerprint(table))
        patient = table["patient_id"].astype(int).to_numpy()
        patients = frozenset(int(p) for p in patient[np.isin(ecg, list(held))])
        excluded = frozenset(int(e) for e in ecg[np.isin(patient, list(patients))])
        missing = len(held - set(ecg.tolist()))
        patient_of = dict(zip(ecg.tolist(), patient.tolist(), strict=True))
        return cls(held, excluded, patients, data_fingerprint(table), missing, patient_of)

    def keep(self, ecg_ids: np.ndarray) -> np.ndarray:
        """Boolean mask over ``ecg_ids`` (shape (n,)): true where the ECG may be used for training."""
        return ~np.isin(np.asarray(ecg_ids, dtype=np.int64), list(self.excluded_ecg_ids))

    def summary(self) -> dict:
        return {
            "fingerprint": self.fingerprint,
            "n_heldout_ecgs": len(self.heldout_ecg_ids),
            "n_heldout_not_in_table": self.not_in_table,
            "n_excluded_patients": len(self.excluded_patients),
            "n_excluded_ecgs": len(self.excluded_ecg_ids),
        }

    def save(self, out_dir: str | Path) -> Path:
        """Write ``heldout_exclusion.json`` (summary + sorted id lists) into ``out_dir``."""
        path = Path(out_dir) / EXCLUSION_NAME
        body = {
            **self.summary(),
            "excluded_patients": sorted(self.excluded_patients),
            "excluded_ecg_ids": sorted(self.excluded_ecg_ids),
        }
        path.write_text(json.dumps(body, indent=1))
        return path


def load_exclusion(
    data_dir: str | Path, ecgqa_root: str | Path | None = None, ids_file: str | Path | None = None
) -> HeldoutExclusion:
    """The exclusion for a PTB-XL-layout ``data_dir`` from an ECG-QA root and/or an id file (empty if neither)."""
    heldout: set[int] = set()
    if ecgqa_root is not None:
        heldout |= ecgqa_heldout_ids(ecgqa_root)
    if ids_file is not None:
        heldout |= read_id_file(ids_file)
    return HeldoutExclusion.from_table(read_table(data_dir), heldout)


def read_table(data_dir: str | Path) -> pd.DataFrame:
    """The ``ecg_id``/``patient_id``/``scp_codes`` columns of ``<data_dir>/ptbxl_database.csv`` (or that file)."""
    p = Path(data_dir)
    p = p if p.is_file() else p / "ptbxl_database.csv"
    if not p.is_file():
        raise DatasetError(f"{p} not found; pass a PTB-XL-layout folder or its ptbxl_database.csv.")
    return pd.read_csv(p, usecols=lambda c: c in _FINGERPRINT_COLUMNS)


def split_rows(cache, name: str, exclusion: HeldoutExclusion | None) -> np.ndarray:
    """Rows of the cache's ``name`` split; ``train``/``val`` rows of excluded ECGs are dropped. Shape (n,)."""
    idx = cache.split_indices(name)
    if exclusion is None or name == "test" or not exclusion.excluded_ecg_ids:
        return idx
    return idx[exclusion.keep(cache.table["ecg_id"].to_numpy()[idx])]


def seen_record_extras(exclusion: HeldoutExclusion | None, seen: dict[str, list[int]], out: Path) -> dict:
    """What ``train_ecg_ids.json`` stores beside the ids: fingerprint, patients seen, the exclusion summary.

    Also writes ``heldout_exclusion.json`` into ``out`` when something was held out.
    """
    if exclusion is None:
        return {}
    extras: dict = {"data_fingerprint": exclusion.fingerprint}
    if exclusion.patient_of:
        for name, ids in seen.items():
            extras[f"{name}_patients"] = sorted(
                {exclusion.patient_of[i] for i in ids if i in exclusion.patient_of}
            )
    if exclusion.heldout_ecg_ids:
        exclusion.save(out)
        extras["heldout_exclusion"] = exclusion.summary()
    return extras


def source_record(data_dir: str | Path, train_ids: list[int]) -> dict:
    """``data_fingerprint`` and ``train_patients`` of a run's training ECGs, for its ``train_ecg_ids.json``."""
    ex = HeldoutExclusion.from_table(read_table(data_dir))
    return seen_record_extras(ex, {"train": train_ids}, Path(data_dir))
