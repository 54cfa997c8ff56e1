"""The benchmark suite: every benchmark script, one after another, in one run; each measures its ratio side by side.

    .venv/bin/python benchmarks/run_all.py [--quick] [--only loss,cache] [--out benchmarks/results.json]

Prints each script's own table, then a summary (wall time and peak memory of each), and writes everything to a
JSON file. Run it on an otherwise idle machine: every number is a ratio or rate measured on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# name -> (script, arguments, arguments with --quick)
BENCHMARKS: dict[str, tuple[str, list[str], list[str]]] = {
    "loss": ("bench_loss.py", [], ["--repeats", "10"]),
    "cache_100hz": (
        "bench_cache.py",
        ["--sampling-rate", "100"],
        ["--sampling-rate", "100", "--records", "100"],
    ),
    "cache_500hz": (
        "bench_cache.py",
        ["--sampling-rate", "500"],
        ["--sampling-rate", "500", "--records", "100"],
    ),
    "input_path": (
        "bench_input_path.py",
        [],
        ["--records", "128", "--models", "smoke", "--steps", "3", "--repeats", "3"],
    ),
    "text_cache": ("bench_text_cache.py", [], ["--steps", "3", "--records", "300"]),
    "io": ("bench_io.py", [], ["--repeats", "5"]),
    "synthetic": ("bench_synthetic.py", [], ["--num-records", "100"]),
    "encoder": ("bench_encoder.py", [], ["--repeats", "1", "--batch", "16"]),
    "stage2_smollm2": (
        "bench_stage2.py",
        ["--llm", "packaged:smollm2-135m-instruct"],
        ["--llm", "packaged:smollm2-135m-instruct", "--steps", "2"],
    ),
    "vqa": ("bench_vqa.py", [], ["--repeats", "1"]),
}


def run_one(name: str, script: str, args: list[str]) -> dict:
    """Run one benchmark in its own process; returns its output, wall time and peak resident memory."""
    print(f"\n=== {name}: {script} {' '.join(args)}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(HERE / script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=HERE.parent,
    )
    lines = []
    for line in proc.stdout:  # stream the script's own table as it comes
        print(line, end="", flush=True)
        lines.append(line)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "name": name,
        "command": f"python benchmarks/{script} {' '.join(args)}".strip(),
        "returncode": proc.returncode,
        "seconds": round(time.perf_counter() - t0, 1),
        "peak_rss_mib": round(usage.ru_maxrss / 1024),
        "output": "".join(lines),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a few minutes in all)")
    parser.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}")
    results = [run_one(n, BENCHMARKS[n][0], BENCHMARKS[n][2 if args.quick else 1]) for n in names]
    machine = {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_end": os.getloadavg()[0],
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    args.out.write_text(json.dumps({"machine": machine, "quick": args.quick, "results": results}, indent=2))
    print(
        f"\n=== summary ({machine['cpus']} CPUs, {machine['machine']}, load {machine['load_average_end']:.1f})"
    )
    print("| benchmark | exit | seconds | peak RSS (MiB) |\n|---|---:|---:|---:|")
    for r in results:
        print(f"| {r['name']} | {r['returncode']} | {r['seconds']} | {r['peak_rss_mib']} |")
    print(f"results: {args.out}")
    return max((r["returncode"] != 0 for r in results), default=0)


if __name__ == "__main__":
    sys.exit(main())
