"""Frozen-encoder features of every ECG a stage-2 run needs, computed once and cached (``features.safetensors``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from bridge.modeling import EcgFeatures, EcgLlm


def ptbxl_reader(
    ptbxl_root: str | os.PathLike, sampling_rate: int, num_samples: int, normalization: str = "zscore"
) -> Callable[[int], np.ndarray]:
    """ecg_id -> model-ready (12, num_samples) array, read from a PTB-XL-format folder with ``model_input``
    (``normalization``: the encoder config's ``input_normalization``)."""
    from encoder.datasets.ptbxl import PtbXl
    from encoder.preprocess import model_input

    dataset = PtbXl(ptbxl_root, sampling_rate=sampling_rate, min_label_count=0, drop_unlabeled=False)

    def read(ecg_id: int) -> np.ndarray:
        return model_input(
            dataset.read_ecg_id(int(ecg_id)), sampling_rate, num_samples, normalization=normalization
        )

    return read


@dataclass
class FeatureStore:
    """Frozen-encoder features of every ECG a run needs, computed once; ``rows`` maps ecg_id -> row."""

    ecg_ids: list[int]
    features: EcgFeatures

    @property
    def rows(self) -> dict[int, int]:
        return {e: i for i, e in enumerate(self.ecg_ids)}

    def save(self, path: Path) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        f = self.features
        tensors = {
            "ecg_ids": torch.tensor(self.ecg_ids),
            "tokens": f.tokens,
            "summary": f.summary,
            "probs": f.probs,
        }
        save_file({k: v.contiguous() for k, v in tensors.items()}, tmp)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> FeatureStore:
        t = load_file(path)
        return cls(t["ecg_ids"].tolist(), EcgFeatures(t["tokens"], t["summary"], t["probs"]))


@torch.no_grad()
def compute_features(
    model: EcgLlm,
    ecg_ids: Sequence[int],
    read: Callable[[int], np.ndarray],
    *,
    batch_size: int = 64,
    cache_path: Path | None = None,
) -> FeatureStore:
    """Run the frozen encoder once per unique ECG (reused from ``cache_path`` when it holds the same ids)."""
    ids = sorted({int(e) for e in ecg_ids})
    if cache_path is not None and cache_path.is_file():
        store = FeatureStore.load(cache_path)
        if store.ecg_ids == ids:
            return store
    parts: list[EcgFeatures] = []
    for start in tqdm(range(0, len(ids), batch_size), desc="encoder features", leave=False):
        batch = np.stack([read(e) for e in ids[start : start + batch_size]])  # (b, 12, T)
        parts.append(model.encode_ecgs(torch.from_numpy(batch)).to("cpu"))
    feats = EcgFeatures(
        torch.cat([p.tokens for p in parts]),
        torch.cat([p.summary for p in parts]),
        torch.cat([p.probs for p in parts]),
    )
    store = FeatureStore(ids, feats)
    if cache_path is not None:
        store.save(cache_path)
    return store
