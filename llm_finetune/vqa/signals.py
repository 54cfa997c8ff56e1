"""ECG-QA ``ecg_id`` -> model-ready array (12, T), for each ECG-QA source.

``ptbxl`` ids are PTB-XL ``ecg_id``s (``encoder.datasets.ptbxl.PtbXl``); ``mimic-iv-ecg`` ids are
MIMIC-IV-ECG ``study_id``s (``encoder.datasets.ecgqa.MimicIvEcg``, through ``record_list.csv``). A record
carrying ``ecg_path`` (ECG-QA's mapped format) is read from that path directly. Every array goes through
``encoder.preprocess.model_input`` at the model's sampling rate and length, the same function every
inference path uses.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from encoder.errors import ConfigError


def _ptbxl(root: str | Path, sampling_rate: int):
    from encoder.datasets.ptbxl import PtbXl

    return PtbXl(root, sampling_rate=100 if sampling_rate <= 100 else 500, drop_unlabeled=False)


def _mimic(root: str | Path, sampling_rate: int):
    from encoder.datasets.ecgqa import MimicIvEcg

    return MimicIvEcg(root)


SIGNAL_SOURCES: dict[str, Callable] = {"ptbxl": _ptbxl, "mimic-iv-ecg": _mimic}
"""ECG-QA source -> factory ``(root, sampling_rate)`` of an object with ``read_ecg_id(ecg_id) -> Ecg``."""


def build_source(name: str, root: str | Path, sampling_rate: int):
    """Registry lookup: the signal reader of an ECG-QA source."""
    if name not in SIGNAL_SOURCES:
        raise ConfigError(f"Unknown ECG-QA source {name!r}; choose one of {sorted(SIGNAL_SOURCES)}.")
    return SIGNAL_SOURCES[name](root, sampling_rate)


class EcgArrays:
    """Cached ``ecg_id`` -> model-ready float32 (12, num_samples) array (many questions share ECGs)."""

    def __init__(self, source, sampling_rate: int, num_samples: int, normalization: str = "zscore") -> None:
        self.source = source
        self.sampling_rate = int(sampling_rate)
        self.num_samples = int(num_samples)
        self.normalization = normalization
        self._cache: dict = {}

    def get(self, ecg_id: int, path: str | None = None) -> np.ndarray:
        key = path or int(ecg_id)
        if key not in self._cache:
            from encoder.preprocess import model_input

            if path is not None:
                from encoder.io import read_ecg

                ecg = read_ecg(path)
            else:
                ecg = self.source.read_ecg_id(int(ecg_id))
            self._cache[key] = model_input(
                ecg, self.sampling_rate, self.num_samples, normalization=self.normalization
            )  # (12, T)
        return self._cache[key]

    def for_record(self, record: dict) -> list[np.ndarray]:
        """Arrays of all ECGs a question uses, in order."""
        paths = record.get("ecg_path") or [None] * len(record["ecg_id"])
        return [self.get(e, p) for e, p in zip(record["ecg_id"], paths, strict=True)]
