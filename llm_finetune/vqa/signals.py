"""ECG-QA ``ecg_id`` -> model-ready array (12, T), for each ECG-QA source.

``ptbxl`` ids are PTB-XL ``ecg_id``s (read through ``encoder.datasets.ptbxl.PtbXl``); ``mimic-iv-ecg`` ids are
MIMIC-IV-ECG ``study_id``s, resolved through the dataset's ``record_list.csv`` (as ECG-QA's own mapping
script does). A record carrying ``ecg_path`` (ECG-QA's mapped format) is read from that path directly.
Every array goes through ``encoder.preprocess.model_input`` at the model's sampling rate and length, the
same function every inference path uses.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from encoder.errors import ConfigError, DatasetError
from encoder.record import Ecg


class PtbXlSource:
    """PTB-XL records by ``ecg_id`` (any record of ``ptbxl_database.csv``, labelled or not)."""

    def __init__(self, root: str | Path, sampling_rate: int = 500) -> None:
        from encoder.datasets.ptbxl import PtbXl

        self.dataset = PtbXl(root, sampling_rate=100 if sampling_rate <= 100 else 500, drop_unlabeled=False)
        db = self.dataset.database
        self.folds = {int(e): int(f) for e, f in zip(db["ecg_id"], db["strat_fold"], strict=True)}
        """``ecg_id -> strat_fold`` (for the leakage check's fold rule)."""

    def read(self, ecg_id: int) -> Ecg:
        return self.dataset.read_ecg_id(int(ecg_id))


class MimicIvEcgSource:
    """MIMIC-IV-ECG records by ``study_id`` (``<root>/record_list.csv`` -> ``<root>/<path>``)."""

    def __init__(self, root: str | Path, sampling_rate: int = 500) -> None:
        import pandas as pd

        self.root = Path(root)
        index = self.root / "record_list.csv"
        if not index.is_file():
            raise DatasetError(
                f"{index} not found; --signals_root must be the MIMIC-IV-ECG folder with record_list.csv."
            )
        table = pd.read_csv(index)
        self._path = {int(s): str(p) for s, p in zip(table["study_id"], table["path"], strict=True)}
        self.folds: dict[int, int] = {}

    def read(self, ecg_id: int) -> Ecg:
        from encoder.io import read_ecg

        if int(ecg_id) not in self._path:
            raise DatasetError(f"study_id {ecg_id} is not in {self.root / 'record_list.csv'}.")
        return read_ecg(self.root / self._path[int(ecg_id)])


SIGNAL_SOURCES: dict[str, Callable[..., object]] = {"ptbxl": PtbXlSource, "mimic-iv-ecg": MimicIvEcgSource}


def build_source(name: str, root: str | Path, sampling_rate: int):
    """Registry lookup: the signal reader of an ECG-QA source."""
    if name not in SIGNAL_SOURCES:
        raise ConfigError(f"Unknown ECG-QA source {name!r}; choose one of {sorted(SIGNAL_SOURCES)}.")
    return SIGNAL_SOURCES[name](root, sampling_rate=sampling_rate)


class EcgArrays:
    """Cached ``ecg_id`` -> model-ready float32 (12, num_samples) array (many questions share ECGs)."""

    def __init__(self, source, sampling_rate: int, num_samples: int) -> None:
        self.source = source
        self.sampling_rate = int(sampling_rate)
        self.num_samples = int(num_samples)
        self._cache: dict = {}

    def get(self, ecg_id: int, path: str | None = None) -> np.ndarray:
        key = path or int(ecg_id)
        if key not in self._cache:
            from encoder.preprocess import model_input

            if path is not None:
                from encoder.io import read_ecg

                ecg = read_ecg(path)
            else:
                ecg = self.source.read(int(ecg_id))
            self._cache[key] = model_input(ecg, self.sampling_rate, self.num_samples)  # (12, T)
        return self._cache[key]

    def for_record(self, record: dict) -> list[np.ndarray]:
        """Arrays of all ECGs a question uses, in order."""
        paths = record.get("ecg_path") or [None] * len(record["ecg_id"])
        return [self.get(e, p) for e, p in zip(record["ecg_id"], paths, strict=True)]
