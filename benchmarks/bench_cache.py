"""Benchmark: one training epoch from the memmapped cache vs. a ``wfdb.rdsamp`` loop over the same records.

    .venv/bin/python benchmarks/bench_cache.py                      # writes 300 tiny PTB-XL-format records
    .venv/bin/python benchmarks/bench_cache.py --ptbxl /data/ptb-xl --sampling-rate 500

Both sides run warm (files in the OS page cache, one untimed warm-up pass); the best of ``--repeats`` runs is
reported. The cache epoch is what training does: a shuffled ``batch_loader`` over ``CachedEcgDataset`` with
random crops, per-lead z-scoring and float32 tensors (a plain per-item ``DataLoader`` is timed too). The cache build time (a one-off) is printed separately.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
import wfdb
from timing import best_of

from encoder.datasets.cache import CachedEcgDataset, batch_loader, build_cache
from encoder.datasets.ptbxl import PtbXl
from encoder.datasets.testing import write_tiny_ptbxl


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ptbxl", type=Path, default=None, help="PTB-XL-format root (default: generate records)")
    ap.add_argument("--records", type=int, default=300, help="records to generate when --ptbxl is not given")
    ap.add_argument("--sampling-rate", type=int, default=100, choices=(100, 500))
    ap.add_argument("--crop-seconds", type=float, default=2.5, help="random crop length of the cache epoch")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--limit", type=int, default=0, help="use only the first N records (0 = all)")
    ap.add_argument("--repeats", type=int, default=3)
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
        paths = [str(ds.record_path(i)) for i in range(n)]

        t0 = time.perf_counter()
        cache = build_cache(ds, tmp / "cache", progress=False)
        build_s = time.perf_counter() - t0

        crop = int(round(args.crop_seconds * args.sampling_rate))
        train = CachedEcgDataset(cache, indices=list(range(n)), crop_samples=crop, random_crop=True, seed=0)
        loader = batch_loader(train, batch_size=args.batch_size, shuffle=True, seed=0)
        plain = torch.utils.data.DataLoader(train, batch_size=args.batch_size, shuffle=True, num_workers=0)

        def rdsamp_epoch() -> None:
            for p in paths:
                wfdb.rdsamp(p)

        def cache_epoch() -> None:
            for batch in loader:
                assert batch["ecg"].shape[1:] == (12, crop)

        order = torch.randperm(n, generator=torch.Generator().manual_seed(0)).numpy()

        def gather_epoch() -> None:  # memmap reads only: the crops, no normalisation, no tensors
            for i in range(0, n, args.batch_size):
                ks = order[i : i + args.batch_size]
                train._windows[train.indices[ks], :, train._starts[ks]].astype("float32")

        def plain_epoch() -> None:
            for batch in plain:
                assert batch["ecg"].shape[1:] == (12, crop)

        t_raw = best_of(rdsamp_epoch, args.repeats)
        t_cache = best_of(cache_epoch, args.repeats)
        t_plain = best_of(plain_epoch, args.repeats)
        t_gather = best_of(gather_epoch, args.repeats)
        ratio = t_raw / t_cache
        print(
            f"records: {n} at {args.sampling_rate} Hz ({cache.meta['dtype']}, lossless={cache.meta['lossless']}), "
            f"torch threads: {torch.get_num_threads()}"
        )
        print(f"cache build (one-off): {build_s:.2f} s  ({n / build_s:.0f} records/s)")
        print(f"wfdb.rdsamp loop : {t_raw:.3f} s/epoch  ({n / t_raw:,.0f} records/s)")
        print(
            f"cache epoch      : {t_cache:.4f} s/epoch  ({n / t_cache:,.0f} records/s, {crop}-sample random crops)"
        )
        print(f"  (plain DataLoader with per-item collate: {t_plain:.4f} s/epoch, {t_raw / t_plain:.0f}x)")
        print(
            f"  (memmap crop reads alone, without z-scoring: {t_gather:.4f} s/epoch, {t_raw / t_gather:.0f}x)"
        )
        print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"speed-up: {ratio:.0f}x  (target >= 50x: {'PASS' if ratio >= 50 else 'FAIL'})")


if __name__ == "__main__":
    main()
