"""ECG-QA (Oh et al., NeurIPS 2023) in its original JSON layout, and the join to ECG signals.

Layout::

    <root>/{ptbxl,mimic-iv-ecg}/{template,paraphrased}/{train,valid,test}/*.json
    <root>/{ptbxl,mimic-iv-ecg}/answers.csv                    index,class  (answer vocabulary)
    <root>/{ptbxl,mimic-iv-ecg}/answers_for_each_template.csv  template_id,classes ("['no', 'yes']")

Each JSON file is a list of samples with ``template_id, question_id, sample_id, question_type, attribute_type,
question, answer, ecg_id, attribute``. ``ecg_id`` refers to PTB-XL ecg_ids (ptbxl) or MIMIC-IV-ECG study ids
(mimic-iv-ecg); comparison questions have two. Loaded samples always have ``ecg_id`` as a list of 1 or 2 ints,
``answer`` as a list of strings and ``attribute`` as a list of strings or None.
"""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import datasets
import pandas as pd

from encoder.ecgqa.attributes import EcgAttributes
from encoder.errors import ConfigError, DatasetError
from encoder.record import Ecg

SOURCES = ("ptbxl", "mimic-iv-ecg")
VARIANTS = ("template", "paraphrased")
SPLITS = ("train", "valid", "test")
_SPLIT_ALIASES = {"val": "valid", "validation": "valid", "dev": "valid"}

FEATURES = datasets.Features(
    {
        "template_id": datasets.Value("int32"),
        "question_id": datasets.Value("int64"),
        "sample_id": datasets.Value("int64"),
        "question_type": datasets.Value("string"),
        "attribute_type": datasets.Value("string"),
        "question": datasets.Value("string"),
        "answer": datasets.List(datasets.Value("string")),
        "ecg_id": datasets.List(datasets.Value("int64")),
        "attribute": datasets.List(datasets.Value("string")),
    }
)
"""Explicit schema: lists of 1 or 2 ecg_ids and null attributes load the same in every shard."""


def _check(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(f"Unknown ECG-QA {name} {value!r}; choose one of {', '.join(allowed)}.")
    return value


def source_dir(root: str | os.PathLike, source: str = "ptbxl") -> Path:
    """``<root>/<source>``; ``root`` may also be that folder itself."""
    _check("source", source, SOURCES)
    root = Path(root).expanduser()
    if (root / source).is_dir():
        return root / source
    if root.name == source and root.is_dir():
        return root
    raise DatasetError(
        f"ECG-QA folder {root / source} not found. Pass the ECG-QA root that holds {', '.join(SOURCES)}/ "
        "(layout <root>/<source>/<template|paraphrased>/<train|valid|test>/*.json)."
    )


def ecgqa_files(
    root: str | os.PathLike, source: str = "ptbxl", variant: str = "template", split: str = "test"
) -> list[Path]:
    """The JSON shards of one split, sorted numerically by file name."""
    _check("variant", variant, VARIANTS)
    split = _check("split", _SPLIT_ALIASES.get(split, split), SPLITS)
    folder = source_dir(root, source) / variant / split
    if not folder.is_dir():
        raise DatasetError(f"ECG-QA split folder {folder} not found.")
    files = sorted(folder.glob("*.json"), key=lambda p: (len(p.stem), p.stem))
    if not files:
        raise DatasetError(f"No *.json shards in {folder}.")
    return files


def _as_str_list(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [str(value)]


def normalize_sample(sample: dict[str, Any], where: str = "") -> dict[str, Any]:
    """One raw ECG-QA sample -> the ``FEATURES`` schema (raises ``DatasetError`` on a malformed sample)."""
    missing = [k for k in FEATURES if k not in sample]
    if missing:
        raise DatasetError(f"ECG-QA sample {where} lacks field(s) {missing}.")
    ids = sample["ecg_id"]
    ids = list(ids) if isinstance(ids, (list, tuple)) else [ids]
    if not 1 <= len(ids) <= 2:
        raise DatasetError(f"ECG-QA sample {where}: ecg_id must hold 1 or 2 ids, got {ids!r}.")
    try:
        ids = [int(i) for i in ids]
        out: dict[str, Any] = {
            "template_id": int(sample["template_id"]),
            "question_id": int(sample["question_id"]),
            "sample_id": int(sample["sample_id"]),
        }
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"ECG-QA sample {where}: non-integer id ({exc}).") from exc
    out.update(
        question_type=str(sample["question_type"]),
        attribute_type=str(sample["attribute_type"]),
        question=str(sample["question"]),
        answer=_as_str_list(sample["answer"]) or [],
        ecg_id=ids,
        attribute=_as_str_list(sample["attribute"]),
    )
    return out


def load_ecgqa(
    root: str | os.PathLike, *, source: str = "ptbxl", variant: str = "template", split: str = "test"
) -> datasets.Dataset:
    """Load one ECG-QA split (all its shards) as a ``datasets.Dataset`` with the ``FEATURES`` schema."""
    rows: list[dict[str, Any]] = []
    for path in ecgqa_files(root, source, variant, split):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DatasetError(f"Cannot read ECG-QA shard {path}: {exc}") from exc
        if not isinstance(data, list):
            raise DatasetError(f"ECG-QA shard {path} must be a JSON list of samples.")
        rows.extend(normalize_sample(s, f"{path.name}[{i}]") for i, s in enumerate(data))
    return datasets.Dataset.from_list(rows, features=FEATURES)


def _table_path(root: str | os.PathLike | None, source: str, name: str) -> Path:
    if root is None:
        if source != "ptbxl":
            raise DatasetError(f"No shipped {name} for {source}; pass the ECG-QA root.")
        ref = resources.files("encoder") / "resources" / "ecgqa" / "ptbxl" / name
        return Path(str(ref))
    root = Path(root).expanduser()
    for p in (root / source / name, root / name):
        if p.is_file():
            return p
    raise DatasetError(f"{name} not found in {root / source} or {root}.")


def load_answers(root: str | os.PathLike | None = None, source: str = "ptbxl") -> list[str]:
    """ECG-QA answer vocabulary (``answers.csv``, in index order; ``None`` = the shipped PTB-XL copy)."""
    path = _table_path(root, source, "answers.csv")
    df = pd.read_csv(path, keep_default_na=False)
    if "class" not in df.columns:
        raise DatasetError(f"{path} has no 'class' column.")
    if "index" in df.columns:
        df = df.sort_values("index")
    return [str(c) for c in df["class"]]


def load_answer_options(root: str | os.PathLike | None = None, source: str = "ptbxl") -> dict[int, list[str]]:
    """template_id -> answer options (``answers_for_each_template.csv``; ``None`` = the shipped PTB-XL copy)."""
    path = _table_path(root, source, "answers_for_each_template.csv")
    df = pd.read_csv(path, keep_default_na=False)
    if not {"template_id", "classes"} <= set(df.columns):
        raise DatasetError(f"{path} needs columns template_id and classes.")
    out = {}
    for tid, classes in zip(df["template_id"], df["classes"], strict=True):
        try:
            options = ast.literal_eval(classes)  # a python list literal; literal_eval never runs code
        except (ValueError, SyntaxError) as exc:
            raise DatasetError(
                f"{path}: classes of template {tid} is not a list literal: {classes!r}"
            ) from exc
        out[int(tid)] = [str(o) for o in options]
    return out


class SignalSource(Protocol):
    """Anything that maps an ECG-QA ecg_id to a record (``PtbXl``, ``MimicIvEcg``)."""

    def path_for_ecg_id(self, ecg_id: int) -> Path: ...


class MimicIvEcg:
    """A local MIMIC-IV-ECG copy: ``record_list.csv`` (subject_id, study_id, path) + ``files/pXXXX/...`` WFDB,
    and, when present, ``machine_measurements.csv`` (the cart's intervals, axes and report statements).

    ECG-QA's mimic-iv-ecg questions refer to records by ``study_id``. :meth:`attributes_for_ecg_id` gives a study's
    ECG-QA attributes from the machine measurements and statements (``encoder.datasets.mimic_attributes``); the
    groups MIMIC-IV-ECG cannot tell (noise, form-statement leads) are never available.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).expanduser().resolve()
        index = self.root / "record_list.csv"
        if not index.is_file():
            raise DatasetError(
                f"{index} not found. Pass the root of a MIMIC-IV-ECG copy (record_list.csv, files/p1000/...)."
            )
        table = pd.read_csv(index)
        missing = [c for c in ("study_id", "path") if c not in table.columns]
        if missing:
            raise DatasetError(f"{index} is missing column(s) {missing}.")
        self.table = table
        self._paths = dict(zip(table["study_id"].astype(int), table["path"].astype(str), strict=True))
        self._machine: pd.DataFrame | None = None
        self._attributes: dict[int, EcgAttributes] | None = None

    @property
    def machine_measurements(self) -> pd.DataFrame | None:
        """``machine_measurements.csv`` indexed by study_id, or None when the copy has no such file."""
        if self._machine is None:
            path = self.root / "machine_measurements.csv"
            if not path.is_file():
                return None
            table = pd.read_csv(path, low_memory=False)
            if "study_id" not in table.columns:
                raise DatasetError(
                    f"{path} has no study_id column; is it MIMIC-IV-ECG's machine_measurements.csv?"
                )
            self._machine = table.drop_duplicates("study_id").set_index("study_id", drop=False)
        return self._machine

    def attributes_for_ecg_id(self, ecg_id: int) -> EcgAttributes:
        """The study's ECG-QA attributes; nothing available when the study (or the whole file) has no machine
        measurements, so questions about it are unanswerable rather than answered from defaults."""
        if self._attributes is None:
            from encoder.datasets.mimic_attributes import machine_attributes

            table = self.machine_measurements
            self._attributes = (
                {}
                if table is None
                else dict(zip(table["study_id"].astype(int), machine_attributes(table), strict=True))
            )
        if int(ecg_id) not in self._paths:
            raise DatasetError(f"study_id {ecg_id} is not in {self.root / 'record_list.csv'}.")
        return self._attributes.get(int(ecg_id), EcgAttributes())

    def report_for_ecg_id(self, ecg_id: int) -> str:
        """The cart's report statements of the study joined into one text ("" when there are none)."""
        from encoder.datasets.mimic_attributes import machine_report

        table = self.machine_measurements
        if table is None or int(ecg_id) not in table.index:
            return ""
        return machine_report(table.loc[int(ecg_id)])

    def __len__(self) -> int:
        return len(self.table)

    def path_for_ecg_id(self, ecg_id: int) -> Path:
        try:
            return self.root / self._paths[int(ecg_id)]
        except KeyError:
            raise DatasetError(f"study_id {ecg_id} is not in {self.root / 'record_list.csv'}.") from None

    def read_ecg_id(self, ecg_id: int) -> Ecg:
        from encoder.datasets.ptbxl import read_record

        ecg = read_record(self.path_for_ecg_id(ecg_id))
        ecg.meta["ecg_id"] = int(ecg_id)
        return ecg


def missing_ecg_ids(ids: Iterable[int], signals: SignalSource, check_files: bool = True) -> list[int]:
    """The ids (sorted, unique) that ``signals`` does not have (or whose ``.hea`` is absent)."""
    missing = set()
    for i in set(int(x) for x in ids):
        try:
            path = signals.path_for_ecg_id(i)
        except DatasetError:
            missing.add(i)
            continue
        if check_files and not Path(f"{path}.hea").is_file():
            missing.add(i)
    return sorted(missing)


def ecg_paths_for(ids: Iterable[int], signals: SignalSource, check_files: bool = True) -> list[Path]:
    """Record paths (no extension) for ECG-QA ecg_ids; one ``DatasetError`` listing every missing id."""
    ids = [int(x) for x in ids]
    missing = missing_ecg_ids(ids, signals, check_files)
    if missing:
        shown = ", ".join(map(str, missing[:20])) + (
            f", ... ({len(missing)} in all)" if len(missing) > 20 else ""
        )
        raise DatasetError(
            f"{len(missing)} ECG-QA ecg_id(s) have no record in {getattr(signals, 'root', signals)}: {shown}. "
            "Use the signal dataset the questions were written for (PTB-XL ecg_id / MIMIC-IV-ECG study_id)."
        )
    return [signals.path_for_ecg_id(i) for i in ids]


def with_ecg_paths(ds: datasets.Dataset, signals: SignalSource, check_files: bool = True) -> datasets.Dataset:
    """Add an ``ecg_path`` column (list of record paths, as strings); raises once, listing all missing ids."""
    all_ids = [i for ids in ds["ecg_id"] for i in ids]
    ecg_paths_for(all_ids, signals, check_files)  # validates everything up front
    return ds.map(
        lambda row: {"ecg_path": [str(signals.path_for_ecg_id(i)) for i in row["ecg_id"]]},
        desc="joining ecg_ids to records",
    )
