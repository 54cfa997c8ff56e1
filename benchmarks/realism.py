"""Realism benchmark: synthetic cohort vs real 12-lead ECGs (same as ``ecgllm data realism``).

    nice .venv/bin/python benchmarks/realism.py --real /path/to/ptbxl_real_183_500hz.npz --out_dir runs/realism

Options are the fields of ``encoder.realism.RealismConfig`` (``--help``). Without ``--synthetic DIR`` a cohort of
as many records as there are real ones is generated into ``<out_dir>/cohort``.
"""

from __future__ import annotations

from encoder.realism import main

if __name__ == "__main__":
    main()
