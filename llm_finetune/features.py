"""Frozen-encoder features of every ECG a stage-2 run needs, computed once and cached (``features.safetensors``).

Next to the tokens, summary and label probabilities it holds the encoder's multi-task head outputs (``aux.<task>``,
(M, K) each; none without that head), from which the prompt hint decodes each ECG's attributes. The cache is keyed
on everything the features depend on (and on :data:`FEATURES_VERSION`): the encoder (its weights and config, e.g. the
calibration temperatures behind ``probs``), the reader (data folder, rate, length, normalisation) and the ECG ids.
A changed encoder or reader recomputes them; a matching cache is read by every process. With several processes
each computes a shard of the ECGs and all receive every row (``encoder.engine.inference.encode_dataset``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from bridge.modeling import EcgFeatures, EcgLlm
from encoder.engine.distributed import all_agree
from encoder.engine.inference import encode_dataset
from encoder.modeling import EcgEncoder

FEATURES_VERSION = "features-2: aux"
"""Part of the cache key: a cache written before the multi-task outputs were stored is recomputed."""


class PtbXlReader:
    """ecg_id -> model-ready (12, num_samples) array, read from a PTB-XL-format folder with ``model_input``;
    ``settings`` names what the arrays depend on (part of the feature-cache key)."""

    def __init__(
        self,
        ptbxl_root: str | os.PathLike,
        sampling_rate: int,
        num_samples: int,
        normalization: str = "zscore",
    ) -> None:
        from encoder.datasets.ptbxl import PtbXl

        self.dataset = PtbXl(ptbxl_root, sampling_rate=sampling_rate, min_label_count=0, drop_unlabeled=False)
        self.sampling_rate, self.num_samples, self.normalization = (
            int(sampling_rate),
            int(num_samples),
            normalization,
        )
        self.settings = {
            "root": os.path.abspath(ptbxl_root),
            "sampling_rate": self.sampling_rate,
            "num_samples": self.num_samples,
            "normalization": self.normalization,
        }

    def __call__(self, ecg_id: int) -> np.ndarray:
        from encoder.preprocess import model_input

        return model_input(
            self.dataset.read_ecg_id(int(ecg_id)),
            self.sampling_rate,
            self.num_samples,
            normalization=self.normalization,
        )


def ptbxl_reader(
    ptbxl_root: str | os.PathLike, sampling_rate: int, num_samples: int, normalization: str = "zscore"
) -> PtbXlReader:
    """The reader of a PTB-XL-format folder (``normalization``: the encoder config's ``input_normalization``)."""
    return PtbXlReader(ptbxl_root, sampling_rate, num_samples, normalization)


@dataclass
class FeatureStore:
    """Frozen-encoder features of every ECG a run needs, computed once; ``rows`` maps ecg_id -> row."""

    ecg_ids: list[int]
    features: EcgFeatures

    @property
    def rows(self) -> dict[int, int]:
        return {e: i for i, e in enumerate(self.ecg_ids)}

    def save(self, path: Path, key: str = "") -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        f = self.features
        tensors = {
            "ecg_ids": torch.tensor(self.ecg_ids),
            "tokens": f.tokens,
            "summary": f.summary,
            "probs": f.probs,
            **{f"aux.{n}": v for n, v in f.aux.items()},
        }
        save_file({k: v.contiguous() for k, v in tensors.items()}, tmp, metadata={"key": key})
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> FeatureStore:
        t = load_file(path)
        aux = {k.removeprefix("aux."): v for k, v in t.items() if k.startswith("aux.")}
        return cls(t["ecg_ids"].tolist(), EcgFeatures(t["tokens"], t["summary"], t["probs"], aux))


def cache_key(encoder: EcgEncoder, reader: Callable[[int], np.ndarray], ecg_ids: Sequence[int]) -> str:
    """sha256 of the encoder's weights and config, the reader's settings and the ECG ids."""
    h = hashlib.sha256(FEATURES_VERSION.encode())
    for name, tensor in sorted(encoder.state_dict().items()):
        h.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    h.update(encoder.config.to_json_string(use_diff=False).encode())
    settings = getattr(reader, "settings", {"reader": repr(reader)})  # a plain function never matches
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    h.update(json.dumps(sorted(int(e) for e in ecg_ids)).encode())
    return h.hexdigest()


def _cached_key(path: Path) -> str | None:
    try:
        with safe_open(str(path), "pt") as f:
            return (f.metadata() or {}).get("key")
    except (OSError, ValueError):
        return None


class _EcgIds(torch.utils.data.Dataset):
    def __init__(self, ids: list[int], read: Callable[[int], np.ndarray]) -> None:
        self.ids, self.read = ids, read

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"ecg": torch.from_numpy(np.asarray(self.read(self.ids[i]), dtype=np.float32))}  # (12, T)


@torch.no_grad()
def aux_outputs(encoder: EcgEncoder, embedding: torch.Tensor) -> dict[str, torch.Tensor]:
    """The multi-task head's outputs (task -> (M, K), CPU float32) on pooled embeddings (M, D); empty without
    that head (as ``EcgLlm.encode_ecgs`` computes them)."""
    from encoder.multitask import probabilities

    head = getattr(encoder, "aux_head", None)
    if head is None:
        return {}
    device = next(head.parameters()).device
    out = head(embedding.to(device, torch.float32))
    return {n: probabilities(n, v).cpu() for n, v in out.items()}


def compute_features(
    model: EcgLlm,
    ecg_ids: Sequence[int],
    read: Callable[[int], np.ndarray],
    *,
    batch_size: int = 64,
    cache_path: Path | None = None,
    accelerator: Any = None,
    progress: bool = True,
) -> FeatureStore:
    """Run the frozen encoder once per unique ECG, or read ``cache_path`` when its key matches
    (:func:`cache_key`). With an ``accelerator`` every process calls this; the main process writes the cache."""
    ids = sorted({int(e) for e in ecg_ids})
    key = cache_key(model.encoder, read, ids)
    hit = cache_path is not None and cache_path.is_file() and _cached_key(cache_path) == key
    if accelerator is not None and not all_agree(hit, accelerator.device):
        hit = False  # every process computes its shard, or none does
    if hit and cache_path is not None:
        return FeatureStore.load(cache_path)
    out = encode_dataset(
        model.encoder,
        _EcgIds(ids, read),
        outputs=("tokens", "embedding", "probs"),
        batch_size=batch_size,
        accelerator=accelerator,
        progress=progress,
    )
    tokens, embedding, probs = out.output("tokens"), out.output("embedding"), out.output("probs")
    summary = torch.cat([embedding, probs], dim=-1)  # (M, D + L), as EcgLlm.encode_ecgs builds it
    store = FeatureStore(ids, EcgFeatures(tokens, summary, probs, aux_outputs(model.encoder, embedding)))
    if cache_path is not None and (accelerator is None or accelerator.is_main_process):
        store.save(cache_path, key)
    if accelerator is not None:
        accelerator.wait_for_everyone()
    return store
