"""Sim-to-real benchmark: a stage-1 run's aux head on real labelled PTB-XL ECGs beside its synthetic test fold.

    nice .venv/bin/python benchmarks/sim_to_real.py --run runs/quickstart/stage1 \
        --real ../shared/data/ptbxl-real/ptbxl_real_183_500hz.npz --table ../shared/data/ptbxl/ptbxl_database.csv \
        --out_dir runs/sim_to_real

Options are the fields of ``encoder.sim_to_real.SimToRealConfig`` (``--help``). Writes sim_to_real.json,
sim_to_real.md (per-label and superclass AUROC with bootstrap CIs, real vs synthetic) and sim_to_real_auroc.png.
"""

from __future__ import annotations

from encoder.sim_to_real import main

if __name__ == "__main__":
    main()
