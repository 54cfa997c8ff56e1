"""Benchmark: the stage-1 input path, side by side in one run (issue 23).

    .venv/bin/python benchmarks/bench_input_path.py                     # 256 generated 500 Hz records
    .venv/bin/python benchmarks/bench_input_path.py --models paper --steps 6 --batch-size 32

1. **Cache epoch vs. ``wfdb.rdsamp`` loop** at 500 Hz (``bench_cache.epoch_timings``: wall and CPU time).
2. **Data-loader wait as a share of a stage-1 step**: the library's stage-1 run (``encoder.train.Pretraining``:
   model, AdamW, schedule, Jaccard-SigLIP + BCE objective, frozen text tower) fed by ``encoder.engine.batch_loader``
   with 0 and with ``--workers`` DataLoader workers; wait = time blocked in ``next(loader)``, step = forward +
   backward + optimizer step; share = wait / (wait + step), over the steps after ``--warmup``.
3. **Achieved FLOP/s of the step vs. a matmul of the same size**: the step's FLOPs counted with
   ``torch.utils.flop_counter.FlopCounterMode`` (forward + backward), divided by its median step time, against
   the FLOP/s of one float32 square matmul with the same FLOP count (the practical ceiling of this machine, same
   torch threads).

The machine's load is printed: on a shared machine the loader workers and the step compete for the same cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from bench_cache import TARGET, epoch_timings, print_epoch_table
from torch.utils.flop_counter import FlopCounterMode

from encoder.datasets.cache import build_cache
from encoder.datasets.ptbxl import PtbXl
from encoder.datasets.testing import write_tiny_ptbxl
from encoder.engine.batches import batch_loader
from encoder.engine.core import TrainingCore, optimizer_step
from encoder.text import TextTower, TextTowerConfig
from encoder.train import PretrainConfig, Pretraining, TextInputs, load_stage_data

MODELS = {
    "paper": ("resnet18", [64, 128, 256, 512], 256),  # configs/pretrain_ptbxl.yaml
    "smoke": ("resnet10", [8, 16, 16, 16], 32),  # configs/pretrain_smoke.yaml
}
"""Encoder sizes: name -> (arch, widths, embed_dim)."""
LOADER_TARGET = 0.10
"""Goal of the loader wait's share of a step with 2 workers (issue 23)."""


@dataclass
class StepTimes:
    wait: list[float]  # seconds blocked in next(loader), per measured step
    step: list[float]  # seconds of forward + backward + optimizer step

    @property
    def share(self) -> float:
        return sum(self.wait) / (sum(self.wait) + sum(self.step))


def stage1_run(root: Path, tmp: Path, model: str, args: argparse.Namespace) -> Pretraining:
    """The library's stage-1 run on ``root`` (500 Hz, ``model`` size), built as ``run_pretrain`` builds it."""
    arch, widths, embed_dim = MODELS[model]
    cfg = PretrainConfig(
        data_dir=str(root), out_dir=str(tmp / f"run-{model}"), cache_dir=str(tmp / "cache"),
        sampling_rate=500, arch=arch, widths=widths, embed_dim=embed_dim, batch_size=args.batch_size,
        crop_seconds=args.crop_seconds, cpu=True, mixed_precision="no", progress=False, warmup_steps=1,
        text=TextTowerConfig(cache_dir=str(tmp / "text_cache")),
    )  # fmt: skip
    core = TrainingCore(cfg.out_dir, seed=0, cpu=True, mixed_precision="no", keep_checkpoints=1)
    data = load_stage_data(cfg, int(round(cfg.crop_seconds * cfg.sampling_rate)), True, 0)
    return Pretraining(cfg, core, data, TextInputs(TextTower(cfg.text), data.texts))


def time_steps(run: Pretraining, num_workers: int, steps: int, warmup: int) -> StepTimes:
    """Loader wait and step time of ``warmup + steps`` stage-1 steps; the warm-up steps are left out."""
    run.data.train.set_epoch(0)
    blocks = [run.order.batch(i) for i in range(warmup + steps)]
    it = iter(batch_loader(run.data.train, blocks, num_workers))
    acc, cfg = run.core.accelerator, run.cfg
    times = StepTimes([], [])
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        batch = next(it)
        t1 = time.perf_counter()
        optimizer_step(acc, run.model, run.optimizer, run.scheduler, run.objective, [batch], cfg.grad_clip)
        t2 = time.perf_counter()
        if i >= warmup:
            times.wait.append(t1 - t0)
            times.step.append(t2 - t1)
    return times


def step_flops(run: Pretraining) -> int:
    """FLOPs of one stage-1 step (forward + backward of the objective), counted by FlopCounterMode."""
    batch = run.data.train.batch(run.order.batch(0))
    with FlopCounterMode(display=False) as counter:
        loss, _ = run.objective(run.model, batch)
        loss.backward()
    run.optimizer.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def matmul_flops_per_s(flops: float, repeats: int = 5) -> tuple[int, float]:
    """(n, FLOP/s) of a float32 n x n matmul with about ``flops`` FLOPs (2 n^3; n at most 4096), best of repeats."""
    n = max(64, min(4096, round((flops / 2) ** (1 / 3))))
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(repeats))
    return n, 2 * n**3 / best


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def report_model(root: Path, tmp: Path, model: str, args: argparse.Namespace) -> list[str]:
    """Loader-wait and FLOP/s rows of one model size."""
    run = stage1_run(root, tmp, model, args)
    rows = []
    median_step = None
    for workers in (0, args.workers):
        t = time_steps(run, workers, args.steps, args.warmup)
        median_step = statistics.median(t.step)
        verdict = ""
        if workers == 2:
            verdict = f" ({'PASS' if t.share <= LOADER_TARGET else 'FAIL'} <= {LOADER_TARGET:.0%})"
        rows.append(
            f"| {model} | {workers} | {statistics.median(t.wait) * 1e3:.1f} | {median_step * 1e3:.0f} "
            f"| {t.share:.1%}{verdict} |"
        )
    flops = step_flops(run)
    n, ceiling = matmul_flops_per_s(flops)
    achieved = flops / median_step
    print(
        f"{model}: {flops / 1e9:.2f} GFLOP per step (batch {args.batch_size}), achieved {achieved / 1e9:.2f} GFLOP/s; "
        f"matmul {n}x{n} float32: {ceiling / 1e9:.2f} GFLOP/s; ratio {achieved / ceiling:.1%}"
    )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=256, help="500 Hz records to generate")
    ap.add_argument("--crop-seconds", type=float, default=2.5)
    ap.add_argument("--batch-size", type=int, default=32, help="stage-1 global batch")
    ap.add_argument("--epoch-batch-size", type=int, default=64, help="batch of the cache-epoch comparison")
    ap.add_argument("--models", default="smoke,paper", help=f"comma-separated of {', '.join(MODELS)}")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--steps", type=int, default=6, help="measured steps per loader setting")
    ap.add_argument("--warmup", type=int, default=2, help="steps left out (worker start, first allocations)")
    ap.add_argument("--repeats", type=int, default=5, help="repeats of the epoch comparison")
    args = ap.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="bench_input_path_") as tmp:
        tmp = Path(tmp)
        root = write_tiny_ptbxl(tmp / "ptbxl", num_records=args.records, seed=0, rates=(500,))
        ds = PtbXl(root, task="all", sampling_rate=500, drop_unlabeled=False)
        cache = build_cache(ds, tmp / "epoch-cache", progress=False)
        crop = int(round(args.crop_seconds * 500))
        print(f"## 1. cache epoch vs wfdb.rdsamp ({len(ds)} records, 500 Hz, {cache.meta['dtype']})")
        ratio = print_epoch_table(
            epoch_timings(ds, cache, len(ds), crop, args.epoch_batch_size, args.repeats), len(ds), crop
        )
        print(
            f"speed-up (CPU time): {ratio:.0f}x  (target >= {TARGET:.0f}x: {'PASS' if ratio >= TARGET else 'FAIL'})"
        )
        print(
            f"\n## 2-3. stage-1 step (batch {args.batch_size}, {crop}-sample crops, torch threads {torch.get_num_threads()})"
        )
        rows = [
            "| model | workers | median wait ms | median step ms | wait share of a step |",
            "|---|---:|---:|---:|---:|",
        ]
        for model in [m for m in args.models.split(",") if m]:
            rows += report_model(root, tmp, model, args)
        print("\n".join(rows))
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
