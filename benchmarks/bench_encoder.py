"""Encoder throughput: records/s of the stage-1 encoder at 100 Hz and 500 Hz (10 s windows), side by side.

    python benchmarks/bench_encoder.py [--batch 32] [--repeats 3]

Measures inference (forward, no grad) and a training step (forward + backward) of the default ResNet-18 layout
(widths 64-128-256-512) and the narrow synthetic-cohort layout (16-32-64-64).
"""

from __future__ import annotations

import argparse
import time

import torch

from encoder.configuration import EcgEncoderConfig
from encoder.modeling import EcgEncoder

LAYOUTS = {"resnet18 64-512": [64, 128, 256, 512], "resnet18 16-64 (synthetic)": [16, 32, 64, 64]}


def records_per_second(model: EcgEncoder, batch: torch.Tensor, repeats: int, train: bool) -> float:
    model.train(train)
    best = float("inf")
    for _ in range(repeats + 1):  # first pass warms up
        t0 = time.perf_counter()
        if train:
            out = model(batch)
            (out.embedding.square().mean() + out.logits.square().mean()).backward()
        else:
            with torch.no_grad():
                model(batch)
        best = min(best, time.perf_counter() - t0)
    return batch.shape[0] / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch threads: {torch.get_num_threads()}, batch {args.batch}, 10 s windows")
    print("| layout | rate | inference rec/s | train-step rec/s | 100 Hz / 500 Hz inference |")
    print("|---|---|---:|---:|---:|")
    for name, widths in LAYOUTS.items():
        rates = {}
        for fs in (100, 500):
            cfg = EcgEncoderConfig(widths=widths, sampling_rate=fs, label_names=[f"L{i}" for i in range(30)])
            model = EcgEncoder(cfg)
            x = torch.randn(args.batch, 12, 10 * fs)
            rates[fs] = (
                records_per_second(model, x, args.repeats, False),
                records_per_second(model, x, args.repeats, True),
            )
        for fs in (100, 500):
            ratio = f"{rates[100][0] / rates[500][0]:.1f}x" if fs == 500 else ""
            print(f"| {name} | {fs} Hz | {rates[fs][0]:.0f} | {rates[fs][1]:.0f} | {ratio} |")


if __name__ == "__main__":
    main()
