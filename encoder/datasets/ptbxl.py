"""PTB-XL from a user's local copy in its original PhysioNet layout.

Expected layout (PTB-XL 1.0.x)::

    <root>/ptbxl_database.csv     ecg_id, scp_codes (python-dict string), strat_fold, filename_lr, filename_hr,
                                  age, sex, report, ...
    <root>/scp_statements.csv     (optional here; the shipped copy of the same file is used when absent)
    <root>/records100/...         WFDB records at 100 Hz (filename_lr)
    <root>/records500/...         WFDB records at 500 Hz (filename_hr)

Official split of the benchmark: folds 1-8 train, 9 validation, 10 test. Nothing is ever written into ``root``.
"""

from __future__ import annotations

import ast
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from encoder.datasets.ptbxl_attributes import table_attributes
from encoder.ecg_measurements import measure_record
from encoder.ecgqa.attributes import EcgAttributes
from encoder.errors import ConfigError, DatasetError
from encoder.io import read_ecg
from encoder.labels import ScpStatements, check_task, label_text, labels_for_record
from encoder.record import Ecg

SPLIT_FOLDS: dict[str, tuple[int, ...]] = {"train": (1, 2, 3, 4, 5, 6, 7, 8), "val": (9,), "test": (10,)}
"""Official PTB-XL folds of each split (Strodthoff et al. 2020)."""

SAMPLING_RATES = {100: "filename_lr", 500: "filename_hr"}
"""Supported sampling rates -> the database column holding the record path."""

_REQUIRED_COLUMNS = ("ecg_id", "scp_codes", "strat_fold")


def parse_scp_codes(value: Any, ecg_id: Any = None) -> dict[str, float]:
    """Parse PTB-XL's ``scp_codes`` cell (a python-dict string like ``"{'NORM': 100.0, 'SR': 0.0}"``)."""
    if isinstance(value, dict):
        return {str(k): float(v or 0.0) for k, v in value.items()}
    try:
        parsed = ast.literal_eval(str(value))  # literal_eval: data only, never code
    except (ValueError, SyntaxError) as exc:
        raise DatasetError(
            f"ptbxl_database.csv: scp_codes of ecg_id {ecg_id} is not a python dict string: {value!r}"
        ) from exc
    if not isinstance(parsed, dict):
        raise DatasetError(f"ptbxl_database.csv: scp_codes of ecg_id {ecg_id} is not a dict: {value!r}")
    return {str(k): float(v or 0.0) for k, v in parsed.items()}


def read_database(root: Path) -> pd.DataFrame:
    """Read and check ``ptbxl_database.csv`` (raises ``DatasetError`` with what is missing)."""
    db_path = root / "ptbxl_database.csv"
    if not root.is_dir():
        raise DatasetError(
            f"PTB-XL directory not found: {root}. Pass the folder that holds ptbxl_database.csv."
        )
    if not db_path.is_file():
        raise DatasetError(
            f"{db_path} not found. Pass the root of a PTB-XL copy in its original layout "
            "(ptbxl_database.csv, scp_statements.csv, records100/, records500/)."
        )
    try:
        db = pd.read_csv(db_path)
    except Exception as exc:
        raise DatasetError(f"Cannot parse {db_path}: {exc}") from exc
    missing = [c for c in _REQUIRED_COLUMNS if c not in db.columns]
    if missing:
        raise DatasetError(f"{db_path} is missing column(s) {missing}; found {list(db.columns)}.")
    if not ({"filename_lr", "filename_hr"} & set(db.columns)):
        raise DatasetError(f"{db_path} has neither filename_lr nor filename_hr; cannot locate the records.")
    if db["ecg_id"].duplicated().any():
        dup = db.loc[db["ecg_id"].duplicated(), "ecg_id"].head(5).tolist()
        raise DatasetError(f"{db_path}: duplicate ecg_id values, e.g. {dup}.")
    return db


def _label_names(
    labels: list[list[str]], task: str, statements: ScpStatements, min_label_count: int
) -> list[str]:
    """The task's labels (min_label_count 0) or those seen at least ``min_label_count`` times, sorted."""
    if min_label_count == 0:
        return statements.task_labels(task)
    counts = Counter(x for ls in labels for x in ls)
    return sorted(k for k, n in counts.items() if n >= min_label_count)


def _record_text(
    text_labels: list[str], report: str, statements: ScpStatements, text_style: str, include_report: bool
) -> str:
    """A record's label text, with its free-text report appended when asked for."""
    t = label_text(text_labels, statements, text_style)
    if include_report and report.strip():
        t = f"{t} Report: {report.strip()}" if t else f"Report: {report.strip()}"
    return t


def _record_table(
    db: pd.DataFrame, col: str, labels: list[list[str]], texts: list[str], codes: list
) -> pd.DataFrame:
    """One row per database row: ecg_id, filename, strat_fold, labels, text, scp_codes (+ patient/age/sex/report)."""
    table = pd.DataFrame(
        {
            "ecg_id": db["ecg_id"].astype(int).to_numpy(),
            "filename": db[col].astype(str).to_numpy(),
            "strat_fold": db["strat_fold"].astype(int).to_numpy(),
            "labels": labels,
            "text": texts,
            "scp_codes": codes,
        }
    )
    for extra in ("patient_id", "age", "sex", "report"):
        if extra in db.columns:
            table[extra] = db[extra].to_numpy()
    return table


class PtbXl:
    """PTB-XL records with labels of one task, text per record and the official folds.

    Args:
        root: local PTB-XL folder (original layout).
        task: one of ``encoder.labels.LABEL_TASKS``.
        sampling_rate: 100 (records100/, filename_lr) or 500 (records500/, filename_hr).
        min_label_count: keep labels occurring in at least this many records (whole database, as in the
            benchmark); 0 keeps the full vocabulary of the task even for labels with no record.
        drop_unlabeled: drop records with no label of this task (as the benchmark does).
        text_style: ``knowledge`` (expanded SCP descriptions) or ``codes`` (bare codes).
        text_task: label task the text is built from; ``all`` (default) describes every SCP code of the
            record, whatever the training task.
        include_report: append the free-text report of the record to its text.
        min_likelihood: see ``encoder.labels.labels_for_record`` (0 = keep every listed code).
        statements: SCP statements; default ``<root>/scp_statements.csv`` or the shipped copy.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        task: str = "superdiagnostic",
        sampling_rate: int = 100,
        min_label_count: int = 1,
        drop_unlabeled: bool = True,
        text_style: str = "knowledge",
        text_task: str = "all",
        include_report: bool = False,
        min_likelihood: float = 0.0,
        statements: ScpStatements | None = None,
    ) -> None:
        self.root = Path(root).expanduser().resolve()
        self.task = check_task(task)
        check_task(text_task)
        if sampling_rate not in SAMPLING_RATES:
            raise ConfigError(f"PTB-XL sampling_rate must be 100 or 500, got {sampling_rate}.")
        if min_label_count < 0:
            raise ConfigError(f"min_label_count must be >= 0, got {min_label_count}.")
        self.sampling_rate = int(sampling_rate)
        self.min_label_count = int(min_label_count)
        self.text_style = text_style
        self.include_report = include_report
        self.settings = {
            "task": task,
            "sampling_rate": self.sampling_rate,
            "min_label_count": self.min_label_count,
            "drop_unlabeled": drop_unlabeled,
            "text_style": text_style,
            "text_task": text_task,
            "include_report": include_report,
            "min_likelihood": float(min_likelihood),
        }
        """Every setting that changes ``table`` / ``label_names`` (part of the cache key)."""
        self.database = read_database(self.root)
        col = SAMPLING_RATES[self.sampling_rate]
        if col not in self.database.columns:
            raise DatasetError(
                f"{self.root / 'ptbxl_database.csv'} has no {col} column for {sampling_rate} Hz."
            )
        self.filename_column = col
        if statements is None:
            local = self.root / "scp_statements.csv"
            statements = ScpStatements.load(local if local.is_file() else None)
        self.statements = statements

        db = self.database
        codes = [parse_scp_codes(v, e) for v, e in zip(db["scp_codes"], db["ecg_id"], strict=True)]
        labels = [labels_for_record(c, task, statements, min_likelihood) for c in codes]
        text_labels = [labels_for_record(c, text_task, statements, min_likelihood) for c in codes]

        names = _label_names(labels, task, statements, self.min_label_count)
        keep = set(names)
        labels = [[x for x in ls if x in keep] for ls in labels]

        reports = db["report"].fillna("").astype(str) if "report" in db.columns else [""] * len(db)
        texts = [
            _record_text(tl, rep, statements, text_style, include_report)
            for tl, rep in zip(text_labels, reports, strict=True)
        ]

        table = _record_table(db, col, labels, texts, codes)
        if drop_unlabeled:
            table = table[[len(x) > 0 for x in table["labels"]]]
        self._database_rows = table.index.to_numpy()  # (N,) row of each table row in ``database``
        self.table = table.reset_index(drop=True)
        self._attributes: list[EcgAttributes] | None = None
        self.label_names: list[str] = list(names)
        self._ecg_id_to_file = dict(zip(db["ecg_id"].astype(int), db[col].astype(str), strict=True))

    CONFIG_FIELDS = (
        "task",
        "sampling_rate",
        "min_label_count",
        "drop_unlabeled",
        "text_style",
        "include_report",
    )
    """The arguments a command's config may set under the same names (``ecgllm data cache``, ``data stats``,
    ``pretrain``)."""

    @classmethod
    def from_config(cls, root: str | os.PathLike, cfg: Any) -> PtbXl:
        """The dataset at ``root`` with the :attr:`CONFIG_FIELDS` that ``cfg`` has (the others keep their defaults)."""
        return cls(root, **{k: getattr(cfg, k) for k in cls.CONFIG_FIELDS if hasattr(cfg, k)})

    def __len__(self) -> int:
        return len(self.table)

    def __repr__(self) -> str:
        return (
            f"PtbXl(root={str(self.root)!r}, task={self.task!r}, sampling_rate={self.sampling_rate}, "
            f"records={len(self)}, labels={len(self.label_names)})"
        )

    @property
    def attributes(self) -> list[EcgAttributes]:
        """ECG-QA attributes of each table row from the database columns (no signal measurements)."""
        if self._attributes is None:
            self._attributes = table_attributes(self.database.iloc[self._database_rows])
        return self._attributes

    def measured_attributes(self, cache_dir: str | Path) -> list[EcgAttributes]:
        """:attr:`attributes` plus numeric features and heart axis measured from each 500 Hz record.

        Measurements are cached in ``cache_dir`` (keyed on record path and mtime); reads ``filename_hr``.
        """
        if "filename_hr" not in self.database.columns:
            raise DatasetError(
                f"{self.root / 'ptbxl_database.csv'} has no filename_hr: cannot measure at 500 Hz."
            )
        files = self.database["filename_hr"].astype(str).to_numpy()[self._database_rows]
        rows = self.database.iloc[self._database_rows]
        return table_attributes(rows, measure=lambda i: measure_record(self.root / files[i], cache_dir))

    def multi_hot(self) -> np.ndarray:
        """Labels as a (N, L) uint8 matrix in ``label_names`` order."""
        index = {n: j for j, n in enumerate(self.label_names)}
        out = np.zeros((len(self.table), len(self.label_names)), dtype=np.uint8)  # (N, L)
        for i, ls in enumerate(self.table["labels"]):
            for x in ls:
                out[i, index[x]] = 1
        return out

    @property
    def folds(self) -> dict[int, int]:
        """``ecg_id -> strat_fold`` of every record in the database (the VQA leakage check's fold rule)."""
        db = self.database
        return {int(e): int(f) for e, f in zip(db["ecg_id"], db["strat_fold"], strict=True)}

    def split_indices(self, split: str) -> np.ndarray:
        """Row positions of ``split`` (``train`` folds 1-8, ``val`` fold 9, ``test`` fold 10)."""
        if split not in SPLIT_FOLDS:
            raise ConfigError(f"Unknown split {split!r}; choose one of {', '.join(SPLIT_FOLDS)}.")
        mask = self.table["strat_fold"].isin(SPLIT_FOLDS[split]).to_numpy()
        return np.flatnonzero(mask)

    def record_path(self, i: int) -> Path:
        """Path (without extension) of the WFDB record in row ``i``."""
        return self.root / str(self.table["filename"].iloc[i])

    def path_for_ecg_id(self, ecg_id: int) -> Path:
        """Path of a record by PTB-XL ecg_id (any record of the database, filtered or not)."""
        try:
            return self.root / self._ecg_id_to_file[int(ecg_id)]
        except KeyError:
            raise DatasetError(f"ecg_id {ecg_id} is not in {self.root / 'ptbxl_database.csv'}.") from None

    def read(self, i: int) -> Ecg:
        """Read the record of row ``i`` as an ``Ecg`` (float32 mV, canonical lead order)."""
        ecg = read_record(self.record_path(i))
        ecg.meta["ecg_id"] = int(self.table["ecg_id"].iloc[i])
        return ecg

    def read_ecg_id(self, ecg_id: int) -> Ecg:
        ecg = read_record(self.path_for_ecg_id(ecg_id))
        ecg.meta["ecg_id"] = int(ecg_id)
        return ecg


def read_record(path: Path) -> Ecg:
    """Read one WFDB record with the library's reader (clear error if its header is missing)."""
    if not Path(f"{path}.hea").is_file():
        raise DatasetError(
            f"WFDB record {path}.hea not found. Is the dataset complete (records100/ or records500/ present)?"
        )
    return read_ecg(path)
