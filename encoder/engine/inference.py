"""Run the encoder over a dataset in batches: the one function every consumer uses (validation and the final
calibration in training, ``encoder.evaluate``, ``encoder.realism``, the stage-2 feature cache)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from encoder.errors import ConfigError
from encoder.modeling import EcgEncoder

ENCODER_OUTPUTS = ("tokens", "embedding", "logits", "probs", "labels")


@dataclass
class EncodedDataset:
    """What :func:`encode_dataset` returns (float32, CPU, rows in the data's order); outputs not asked for are None.
    Without a classifier head ``logits`` and ``probs`` are (N, 0)."""

    tokens: torch.Tensor | None = None  # (N, N_tok, C) token sequence (stage 2's input)
    embedding: torch.Tensor | None = None  # (N, D) pooled embedding before L2 normalisation
    logits: torch.Tensor | None = None  # (N, L) classifier-head logits
    probs: torch.Tensor | None = None  # (N, L) calibrated head probabilities (the encoder's temperatures)
    labels: torch.Tensor | None = None  # (N, L) the dataset's labels

    def output(self, name: str) -> torch.Tensor:
        """The output ``name`` (a field of this class); a ``ConfigError`` when it was not asked for."""
        value = getattr(self, name, None) if name in ENCODER_OUTPUTS else None
        if value is None:
            raise ConfigError(
                f"Encoder output {name!r} was not computed; pass it in encode_dataset's outputs."
            )
        return value


class _ArrayDataset(torch.utils.data.Dataset):
    """(N, 12, T) model-ready signals as a dataset of ``{"ecg": (12, T)}`` items."""

    def __init__(self, signals: np.ndarray | torch.Tensor) -> None:
        self.signals = torch.as_tensor(np.asarray(signals, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.signals)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"ecg": self.signals[i]}


def _stack(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    return {
        k: torch.stack([torch.as_tensor(it[k]) for it in items]) for k in ("ecg", "labels") if k in items[0]
    }


@torch.no_grad()
def _encode_batch(
    encoder: EcgEncoder, batch: dict[str, torch.Tensor], outputs: Sequence[str], device
) -> dict:
    out = encoder(batch["ecg"].to(device=device, dtype=torch.float32))  # (b, 12, T)
    logits = out.logits if out.logits is not None else out.embedding.new_zeros((out.embedding.shape[0], 0))
    values = {"tokens": out.tokens, "embedding": out.embedding, "logits": logits}
    if "probs" in outputs:
        values["probs"] = encoder.calibrated_probs(logits) if logits.shape[1] else logits
    if "labels" in outputs:
        values["labels"] = batch["labels"].to(device)
    return {k: values[k].float() for k in outputs}


def encode_dataset(
    encoder: EcgEncoder,
    data: Any,
    *,
    outputs: Sequence[str] = ("embedding", "logits", "labels"),
    batch_size: int = 256,
    device: torch.device | str | None = None,
    accelerator: Any = None,
    num_workers: int = 0,
    progress: bool = False,
) -> EncodedDataset:
    """``encoder`` in eval mode, without gradients, over ``data`` in batches; returns the requested ``outputs``
    (names of :class:`EncodedDataset` fields).

    ``data``: a dataset of ``{"ecg": (12, T), "labels": (L,)}`` items (e.g. ``CachedEcgDataset``; ``labels``
    only when asked for), or model-ready signals (N, 12, T) as an array or tensor. With an ``accelerator`` of
    several processes every process encodes its shard and all of them receive every row
    (``gather_for_metrics``), so each row is computed once; every process must call it then."""
    unknown = sorted(set(outputs) - set(ENCODER_OUTPUTS))
    if unknown:
        raise ConfigError(f"Unknown encoder outputs {unknown}; choose from {list(ENCODER_OUTPUTS)}.")
    dataset = data if isinstance(data, torch.utils.data.Dataset) else _ArrayDataset(data)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=_stack,
        generator=torch.Generator(),
    )  # its own generator: encoding in the middle of training must not draw from the global RNG
    sharded = accelerator is not None and accelerator.num_processes > 1
    if sharded:
        from accelerate.data_loader import prepare_data_loader

        loader = prepare_data_loader(
            loader, accelerator.device, accelerator.num_processes, accelerator.process_index
        )
    device = device if device is not None else next(encoder.parameters()).device
    was_training = encoder.training
    encoder.eval()
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in outputs}
    for batch in tqdm(loader, desc="encode", leave=False, disable=not progress):
        values = _encode_batch(encoder, batch, outputs, device)
        if sharded:
            values = accelerator.gather_for_metrics(values)
        for k in outputs:
            parts[k].append(values[k].cpu())
    encoder.train(was_training)
    return EncodedDataset(
        **{f.name: torch.cat(parts[f.name]) for f in fields(EncodedDataset) if parts.get(f.name)}
    )
