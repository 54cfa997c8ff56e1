"""Synthetic cohort generation speed: records/s at 500 Hz (+ the 100 Hz copy), written to disk.

    .venv/bin/python benchmarks/bench_synthetic.py --num-records 400 --num-workers 2

Prints the in-memory signal rate (one process) and the end-to-end ``generate_cohort`` rate (WFDB files at 500 and
100 Hz, tables, ECG-QA questions). Target: >= 50 records/s on 2 cores.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from encoder.datasets.synthetic import SyntheticConfig, generate_cohort
from encoder.synth.labels_prior import sample_scp_codes
from encoder.synth.record import synthesize_record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--num-records", type=int, default=400)
    parser.add_argument("--num-workers", type=int, default=2)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    n_mem = min(200, args.num_records)
    t0 = time.perf_counter()
    for _ in range(n_mem):
        synthesize_record(frozenset(sample_scp_codes(rng)), rng, fs=500.0, seconds=10.0)
    mem_rate = n_mem / (time.perf_counter() - t0)

    tmp = Path(tempfile.mkdtemp())
    try:
        cfg = SyntheticConfig(
            out_dir=str(tmp / "cohort"), num_records=args.num_records, num_workers=args.num_workers
        )
        t0 = time.perf_counter()
        generate_cohort(cfg)
        disk_rate = args.num_records / (time.perf_counter() - t0)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"signal synthesis, 1 process, 500 Hz x 10 s x 12 leads: {mem_rate:7.1f} records/s")
    print(
        f"generate_cohort end-to-end, {args.num_workers} workers (500 + 100 Hz WFDB, csv, QA): {disk_rate:7.1f} records/s"
    )
    print(f"target >= 50 records/s: {'met' if disk_rate >= 50 else 'NOT met'}")


if __name__ == "__main__":
    main()
