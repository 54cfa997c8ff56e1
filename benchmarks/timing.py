"""Timing helper shared by the benchmark scripts (each script's folder is on sys.path when run as a script)."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_of(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time of ``repeats`` calls of ``fn`` after one warm-up call (seconds)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def best_wall_and_cpu(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Best wall time and best CPU time of this process (``time.process_time``) of ``repeats`` calls of ``fn``
    after one warm-up call (seconds). On a shared machine the CPU time of single-threaded code is what its wall
    time would be on an idle one."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return min(wall), min(cpu)
