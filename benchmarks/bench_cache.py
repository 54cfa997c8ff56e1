"""Benchmark: one training epoch from the memmapped cache vs. a ``wfdb.rdsamp`` loop over the same records.

    .venv/bin/python benchmarks/bench_cache.py                      # writes 300 tiny PTB-XL-format records
    .venv/bin/python benchmarks/bench_cache.py --ptbxl /data/ptb-xl --sampling-rate 500

Both sides run warm (files in the OS page cache, one untimed warm-up pass); the best of ``--repeats`` runs is
reported, as wall time and as CPU time of this process (all sides are single-threaded: torch threads are set to
1, as in a DataLoader worker). On a shared machine the wall ratio follows the scheduler; the CPU-time ratio is
the wall ratio of an idle machine. The cache epoch is what training does: a shuffled ``batch_loader`` over
``CachedEcgDataset`` with random crops, per-lead z-scoring and float32 tensors (a plain per-item ``DataLoader``
and the memmap crop reads alone are timed too). The cache build time (a one-off) is printed separately.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
import wfdb
from timing import best_wall_and_cpu

from encoder.datasets.cache import CachedEcgDataset, EcgCache, batch_loader, build_cache
from encoder.datasets.ptbxl import PtbXl
from encoder.datasets.testing import write_tiny_ptbxl

TARGET = 50.0
"""Goal of the cache epoch's speed-up over the rdsamp loop (issue 23)."""


def epoch_timings(
    ds: PtbXl, cache: EcgCache, n: int, crop: int, batch_size: int, repeats: int
) -> dict[str, tuple[float, float]]:
    """(wall, cpu) seconds of one epoch over the first ``n`` records: rdsamp loop, cache epoch (batch_loader),
    plain per-item DataLoader, memmap crop reads alone."""
    paths = [str(ds.record_path(i)) for i in range(n)]
    train = CachedEcgDataset(cache, indices=list(range(n)), crop_samples=crop, random_crop=True, seed=0)
    loader = batch_loader(train, batch_size=batch_size, shuffle=True, seed=0)
    plain = torch.utils.data.DataLoader(train, batch_size=batch_size, shuffle=True, num_workers=0)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0)).numpy()

    def rdsamp_epoch() -> None:
        for p in paths:
            wfdb.rdsamp(p)

    def cache_epoch() -> None:
        for batch in loader:
            assert batch["ecg"].shape[1:] == (12, crop)

    def plain_epoch() -> None:
        for batch in plain:
            assert batch["ecg"].shape[1:] == (12, crop)

    def reads_epoch() -> None:  # memmap reads only: the crops as float32, no normalisation, no tensors
        for i in range(0, n, batch_size):
            ks = order[i : i + batch_size]
            train._windows[train.indices[ks], :, train._starts[ks]].astype("float32")

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {
            "rdsamp": best_wall_and_cpu(rdsamp_epoch, repeats),
            "cache": best_wall_and_cpu(cache_epoch, repeats),
            "plain": best_wall_and_cpu(plain_epoch, repeats),
            "reads": best_wall_and_cpu(reads_epoch, repeats),
        }
    finally:
        torch.set_num_threads(threads)


def print_epoch_table(t: dict[str, tuple[float, float]], n: int, crop: int) -> float:
    """Prints the epoch table; returns the cache epoch's CPU-time speed-up over the rdsamp loop."""
    raw_w, raw_c = t["rdsamp"]
    print("| epoch | wall s | CPU s | speed-up (wall) | speed-up (CPU) |\n|---|---:|---:|---:|---:|")
    names = {
        "rdsamp": "wfdb.rdsamp loop",
        "cache": f"cache epoch (batch_loader, {crop}-sample random crops, z-scored)",
        "plain": "plain DataLoader, per-item collate",
        "reads": "memmap crop reads alone (no z-score)",
    }
    for key, name in names.items():
        w, c = t[key]
        print(f"| {name} | {w:.4f} | {c:.4f} | {raw_w / w:.0f}x | {raw_c / max(c, 1e-9):.0f}x |")
    ratio = raw_c / max(t["cache"][1], 1e-9)
    print(f"records/s (cache epoch, CPU): {n / max(t['cache'][1], 1e-9):,.0f}")
    return ratio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ptbxl", type=Path, default=None, help="PTB-XL-format root (default: generate records)")
    ap.add_argument("--records", type=int, default=300, help="records to generate when --ptbxl is not given")
    ap.add_argument("--sampling-rate", type=int, default=100, choices=(100, 500))
    ap.add_argument("--crop-seconds", type=float, default=2.5, help="random crop length of the cache epoch")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--limit", type=int, default=0, help="use only the first N records (0 = all)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_cache_") as tmp:
        tmp = Path(tmp)
        root = args.ptbxl
        if root is None:
            t0 = time.perf_counter()
            root = write_tiny_ptbxl(
                tmp / "ptbxl", num_records=args.records, seed=0, rates=(args.sampling_rate,)
            )
            print(f"generated {args.records} PTB-XL-format records in {time.perf_counter() - t0:.1f} s")
        ds = PtbXl(root, task="all", sampling_rate=args.sampling_rate, drop_unlabeled=False)
        n = min(len(ds), args.limit) if args.limit else len(ds)
        t0 = time.perf_counter()
        cache = build_cache(ds, tmp / "cache", progress=False)
        build_s = time.perf_counter() - t0
        crop = int(round(args.crop_seconds * args.sampling_rate))
        timings = epoch_timings(ds, cache, n, crop, args.batch_size, args.repeats)
        print(
            f"records: {n} at {args.sampling_rate} Hz ({cache.meta['dtype']}, lossless={cache.meta['lossless']})"
        )
        print(f"cache build (one-off): {build_s:.2f} s  ({n / build_s:.0f} records/s)")
        ratio = print_epoch_table(timings, n, crop)
        print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(
            f"speed-up (CPU time): {ratio:.0f}x  (target >= {TARGET:.0f}x: {'PASS' if ratio >= TARGET else 'FAIL'})"
        )


if __name__ == "__main__":
    main()
