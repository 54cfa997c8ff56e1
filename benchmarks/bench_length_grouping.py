"""Stage-2 step cost with random vs length-grouped batches (``group_by_length``), side by side on a real run's data.

    python benchmarks/bench_length_grouping.py --run runs/quickstart/stage2 [--attribute_hint asked] [--steps 8]

Reads a finished stage-2 run folder (its ``config.yaml`` and ``features.safetensors``), builds its training
questions with the run's prompt settings (``--attribute_hint`` overrides the hint), and reports for both batch
orders: the share of real tokens in the padded batches over the run's ``max_steps`` batches, padded tokens per
step, and the measured forward + backward seconds per step (steps interleaved: random, grouped, random, ...).
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np
import torch

from bridge.modeling import EcgLlm
from encoder.config_io import load_config
from encoder.engine.batches import BatchOrder
from llm_finetune.data import QaDataset
from llm_finetune.features import FeatureStore
from llm_finetune.train import FinetuneConfig, _samples, answer_objective, weight_by_question_type


def padding_share(order: BatchOrder, lengths: np.ndarray, steps: int) -> tuple[float, float]:
    """(real tokens / padded tokens, padded tokens per step) over the first ``steps`` batches."""
    real = padded = 0
    for step in range(steps):
        b = lengths[order.batch(step)]
        real, padded = real + int(b.sum()), padded + len(b) * int(b.max())
    return real / padded, padded / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True, help="a finished stage-2 run folder")
    ap.add_argument("--attribute_hint", choices=["off", "asked", "all"], default=None)
    ap.add_argument("--steps", type=int, default=8, help="timed steps per batch order")
    args = ap.parse_args()
    cfg = load_config(FinetuneConfig, args.run / "config.yaml")
    if args.attribute_hint:
        cfg.model.attribute_hint = args.attribute_hint
    torch.manual_seed(0)
    model = EcgLlm.build(copy.deepcopy(cfg.model), cfg.encoder)
    store = FeatureStore.load(args.run / "features.safetensors")
    questions = weight_by_question_type(
        _samples(cfg, cfg.train_split, None), cfg.question_type_weights, cfg.seed
    )
    dataset = QaDataset(questions, model, store, use_ecg=cfg.ecg_input == "tokens")
    lengths = np.array([len(item.input_ids) for item in dataset.items])
    orders = {
        "random": BatchOrder(len(dataset), cfg.batch_size, cfg.seed),
        "grouped": BatchOrder(len(dataset), cfg.batch_size, cfg.seed, lengths.tolist()),
    }
    features = store.features
    model.train()
    seconds: dict[str, list[float]] = {name: [] for name in orders}
    for step in range(args.steps + 1):  # step 0 warms up and is not counted
        for name, order in orders.items():
            batch = dataset.collate([dataset[int(i)] for i in order.batch(step)])
            t0 = time.perf_counter()
            loss, _ = answer_objective(model, batch, features)
            loss.backward()
            model.zero_grad(set_to_none=True)
            if step:
                seconds[name].append(time.perf_counter() - t0)
    print(f"run {args.run}, attribute_hint {cfg.model.attribute_hint}, {len(dataset)} training questions, ")
    print(
        f"prompt tokens mean {lengths.mean():.0f}, p95 {np.percentile(lengths, 95):.0f}, max {lengths.max()}"
    )
    print(f"| batches | real / padded tokens ({cfg.max_steps} steps) | padded tokens per step ({cfg.max_steps} steps) "
          f"| padded tokens per timed step | s per timed step (fwd + bwd) |")  # fmt: skip
    print("|---|---|---|---|---|")
    for name, order in orders.items():
        share, per_step = padding_share(order, lengths, cfg.max_steps)
        timed = np.mean(
            [len(b) * lengths[b].max() for b in (order.batch(s) for s in range(1, args.steps + 1))]
        )
        print(f"| {name} | {share:.3f} | {per_step:.0f} | {timed:.0f} | {np.mean(seconds[name]):.2f} |")
    ratio = np.mean(seconds["random"]) / np.mean(seconds["grouped"])
    print(f"grouped batches: {ratio:.2f}x faster per step ({args.steps} steps each, interleaved)")


if __name__ == "__main__":
    main()
