"""Cost of validation: ``read_ecg`` vs a bare ``wfdb.rdsamp`` on the shipped records, measured side by side.

Usage: ``python benchmarks/bench_io.py [--repeats 20]``. Prints the median time of each, their ratio
(validation + canonical mapping overhead), the time of ``model_input`` and the median time to refuse each
bad-input corpus entry.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import wfdb

from encoder.errors import EcgLlmError
from encoder.io import read_ecg
from encoder.preprocess import model_input

REPO = Path(__file__).resolve().parents[1]
RECORDS = {
    "s0010_re (PTB, 15 sig, 1000 Hz, 38.4 s)": REPO / "encoder/resources/wfdb/s0010_re",
    "100 (MIT-BIH, fmt 212, 360 Hz, 30 min)": REPO / "tests/data/wfdb/100",
}


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    print(f"{'record':42s} {'wfdb.rdsamp':>12s} {'read_ecg':>10s} {'ratio':>6s} {'model_input':>12s}")
    for name, rec in RECORDS.items():
        bare = [], []
        for i in range(args.repeats):  # alternate so machine load drift hits both alike
            for which in (0, 1) if i % 2 == 0 else (1, 0):
                t0 = time.perf_counter()
                wfdb.rdsamp(str(rec)) if which == 0 else read_ecg(rec)
                bare[which].append(time.perf_counter() - t0)
        t_wfdb, t_ours = statistics.median(bare[0]), statistics.median(bare[1])
        ecg = read_ecg(rec)
        t_model = _median_time(lambda ecg=ecg: model_input(ecg, 100, 1000), args.repeats)
        print(
            f"{name:42s} {t_wfdb * 1e3:10.1f}ms {t_ours * 1e3:8.1f}ms {t_ours / t_wfdb:5.2f}x {t_model * 1e3:10.1f}ms"
        )

    sys.path.insert(0, str(REPO / "tests"))  # the corpus lives with the tests
    from bad_inputs.corpus import iter_bad_inputs

    with tempfile.TemporaryDirectory() as tmp:
        cases = [c for c in iter_bad_inputs(tmp) if c.expect == "error"]
        times = []
        for case in cases:

            def refuse(case=case):
                try:
                    read_ecg(case.path, **case.read_kwargs)
                except EcgLlmError:
                    return
                raise AssertionError(f"{case.name} was accepted")

            times.append((_median_time(refuse, max(3, args.repeats // 4)), case.name))
        worst = max(times)
        print(
            f"refusing {len(cases)} bad inputs: median {statistics.median(t for t, _ in times) * 1e3:.2f} ms, "
            f"slowest {worst[0] * 1e3:.2f} ms ({worst[1]})"
        )


if __name__ == "__main__":
    main()
