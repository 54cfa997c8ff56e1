"""Frozen text tower: cached unique-text embeddings vs encoding every batch's texts, in one run.

Usage: ``python benchmarks/bench_text_cache.py [--batch 64] [--steps 10] [--widths 16 32 64 128]``.
Prints (1) the text side of a step alone (gather from the cache vs a tower forward pass) and (2) a whole training
step (encoder forward/backward + Jaccard-SigLIP + AdamW) with each text path, and their ratios (target >= 5x).
Texts are PTB-XL-style knowledge texts of random label sets, so batches repeat texts like real data does.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from encoder.clip_model import EcgClipModel
from encoder.configuration import EcgEncoderConfig
from encoder.labels import ScpStatements, label_text
from encoder.loss import contrastive_loss
from encoder.modeling import EcgEncoder
from encoder.text import TextFeatureTable, TextTower, TextTowerConfig


def _records(n: int, seed: int) -> tuple[list[str], torch.Tensor]:
    st = ScpStatements.load()
    codes = [
        "NORM",
        "SR",
        "IMI",
        "ASMI",
        "LVH",
        "CLBBB",
        "CRBBB",
        "1AVB",
        "AFIB",
        "STACH",
        "NDT",
        "ISC_",
        "LAFB",
    ]
    rng = np.random.default_rng(seed)
    texts, labels = [], torch.zeros(n, len(codes))
    for i in range(n):
        pick = rng.choice(len(codes), size=rng.integers(1, 4), replace=False)
        labels[i, pick] = 1
        texts.append(label_text([codes[j] for j in pick], st, "knowledge"))
    return texts, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--widths", type=int, nargs=4, default=[16, 32, 64, 128])
    parser.add_argument("--samples", type=int, default=500, help="ECG crop length (5 s at 100 Hz)")
    args = parser.parse_args()
    torch.manual_seed(0)
    texts, labels = _records(args.records, 0)
    tower = TextTower(TextTowerConfig())
    t0 = time.perf_counter()
    table = TextFeatureTable(tower, texts)
    build = time.perf_counter() - t0
    print(f"{len(texts)} records, {len(table.unique)} unique texts; cache built once in {build:.2f} s")
    enc = EcgEncoder(
        EcgEncoderConfig(widths=args.widths, label_names=[f"L{i}" for i in range(labels.shape[1])])
    )
    model = EcgClipModel(enc, tower.hidden_size)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(1)
    batches = [
        torch.from_numpy(rng.choice(len(texts), args.batch, replace=False)) for _ in range(args.steps + 2)
    ]
    ecg = torch.randn(args.batch, 12, args.samples)

    def text_features(idx: torch.Tensor, cached: bool) -> torch.Tensor:
        if cached:
            return table.features(idx)  # (B, H) gather
        with torch.no_grad():
            return tower([texts[i] for i in idx.tolist()])  # (B, H) forward pass every step

    def step(idx: torch.Tensor, cached: bool) -> None:
        opt.zero_grad()
        out = model(ecg, text_features(idx, cached))
        loss = contrastive_loss("jaccard_siglip", out["logits"], labels[idx])
        loss.backward()
        opt.step()

    results: dict[str, dict[bool, list[float]]] = {
        "text only": {True: [], False: []},
        "full step": {True: [], False: []},
    }
    for i, idx in enumerate(batches):
        for cached in (True, False) if i % 2 == 0 else (False, True):  # alternate: load drift hits both
            t0 = time.perf_counter()
            text_features(idx, cached)
            t1 = time.perf_counter()
            step(idx, cached)
            t2 = time.perf_counter()
            if i >= 2:
                results["text only"][cached].append(t1 - t0)
                results["full step"][cached].append(t2 - t1)
    print(
        f"batch={args.batch} encoder widths={args.widths} threads={torch.get_num_threads()} (medians of {args.steps})"
    )
    for name, r in results.items():
        c, p = float(np.median(r[True])), float(np.median(r[False]))
        print(
            f"{name:9s}: cached {c * 1e3:9.2f} ms   per-batch encoding {p * 1e3:9.2f} ms   ratio {p / c:8.1f}x"
        )


if __name__ == "__main__":
    main()
