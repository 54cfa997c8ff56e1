"""Noise probe: the stage-1 noise head on paired synthetic records (with / without each noise type).

    nice .venv/bin/python benchmarks/noise_probe.py --encoder runs/quickstart/stage1 --out_dir runs/noise_probe

Options are the fields of ``encoder.noise_probe.NoiseProbeConfig`` (``--help``). Writes noise_probe.json and
noise_probe.md (per noise type: record AUROC with a bootstrap CI, and the share of noisy and of clean records the
tuned thresholds flag).
"""

from __future__ import annotations

from encoder.noise_probe import main

if __name__ == "__main__":
    raise SystemExit(main())
