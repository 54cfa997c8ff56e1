"""Fit the data-driven beat shape model of the synthetic generator from real pre-processed 12-lead records.

    taskset -c 1 .venv/bin/python benchmarks/fit_shape_model.py \\
        --real /path/to/ptbxl_real_183_500hz.npz --half even --out encoder/resources/synth/shape_model.npz

``--half even`` fits on records 0, 2, 4, ... only, so the odd half stays held out for an honest realism benchmark
(``benchmarks/realism.py --real_half odd``). The shipped model was fitted this way (see encoder/resources/synth/README.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from encoder.realism import load_real
from encoder.synth.shape_fit import fit_shape_model

# Typical std (mV) of leads I, II, V1..V6 after the 0.5-40 Hz band-pass, measured on noise-free NORM records of the
# parametric VCG model (vcg-6); the real set is z-scored, so the mV scale of each lead comes from physiology.
LEAD_SCALE_MV = (0.083, 0.111, 0.116, 0.143, 0.173, 0.192, 0.175, 0.136)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--real", required=True, help="real records (.npz or directory, as for benchmarks/realism.py)"
    )
    parser.add_argument(
        "--half", choices=("even", "odd", "all"), default="even", help="which records to fit on"
    )
    parser.add_argument("--components", type=int, default=50)
    parser.add_argument("--out", default="encoder/resources/synth/shape_model.npz")
    args = parser.parse_args()
    real = load_real(args.real)
    idx = np.arange(len(real))
    if args.half != "all":
        idx = idx[idx % 2 == (0 if args.half == "even" else 1)]
    arrays = fit_shape_model(real[idx], np.array(LEAD_SCALE_MV), args.components)
    arrays["fitted_indices"] = idx[arrays.pop("kept")].astype(np.int16)  # the records actually fitted
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    print(
        f"fitted {arrays['coeffs'].shape[0]} of {len(idx)} records -> {out} ({out.stat().st_size / 1024:.0f} KiB)"
    )


if __name__ == "__main__":
    main()
