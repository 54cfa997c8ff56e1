"""The paper's four stage-1 ablations from one command, on the synthetic cohort and (optionally) real records.

    nice python benchmarks/ablations.py [--config configs/ablation_paper.yaml] [--seeds 0 1 2] \\
        [--num-records 2000 | --data-dir COHORT] [--epochs 8] [--n-boot 200] [--out-dir runs/ablations-paper] \\
        [--real-dir ../shared/data/ptbxl-real --ptbxl-table ../shared/data/ptbxl/ptbxl_database.csv]

Jaccard-SigLIP vs SigLIP and CLIP, knowledge-enriched vs bare-code text, 256-d vs smaller embedding, random crop
vs none: the reference cell plus one cell per change, each trained with every seed (``encoder.ablation``,
``design: one_factor``). Thresholds are tuned on the cohort's validation fold (``split=valid``, the selection
numbers), every run is scored on its test fold (``split=test``) and, given the real paths, on the real labelled
records with everything fitted on the cohort (``split=real``). Writes ``ablations.json`` (settings, per-run
rows, the summary over seeds and the claims) and ``ablations.md`` (the claims table and the summary) into the
output folder. The real paths are read only when given; nothing else depends on them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from encoder.ablation import AblationConfig, claims_markdown, claims_overview_markdown, run_ablation
from encoder.config_io import atomic_write_text, load_config, to_plain
from encoder.errors import ConfigError

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "ablation_paper.yaml"
REAL_NPZ = "ptbxl_real_183_500hz.npz"


def _args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(CONFIG), help="ablation YAML (encoder.ablation.AblationConfig)")
    ap.add_argument("--out-dir", help="output folder (default: the config's out_dir)")
    ap.add_argument("--seeds", type=int, nargs="+", help="seeds per cell (default: the config's, 3)")
    ap.add_argument("--data-dir", help="an existing synthetic cohort (PTB-XL format)")
    ap.add_argument("--num-records", type=int, help="generate a cohort of this many records into OUT/cohort")
    ap.add_argument("--epochs", type=int, help="stage-1 epochs per run (default: the config's)")
    ap.add_argument(
        "--n-boot", type=int, help="bootstrap resamples per run and split (default: the config's)"
    )
    ap.add_argument("--real-dir", help=f"folder holding {REAL_NPZ} (or the .npz itself)")
    ap.add_argument("--ptbxl-table", help="ptbxl_database.csv with the real records' scp_codes")
    return ap.parse_args(argv)


def build_config(args: argparse.Namespace) -> AblationConfig:
    """The ablation config of the YAML with the command line's overrides; generates a cohort if asked."""
    cfg = load_config(AblationConfig, args.config)
    if args.out_dir:
        cfg.out_dir = args.out_dir
    if args.seeds:
        cfg.seeds = args.seeds
    if args.epochs:
        cfg.base.epochs = args.epochs
    if args.n_boot is not None:
        cfg.n_boot = args.n_boot
    if bool(args.real_dir) != bool(args.ptbxl_table):
        raise ConfigError("Give --real-dir and --ptbxl-table together (the real signals and their labels).")
    if args.real_dir:
        real = Path(args.real_dir)
        cfg.real_records, cfg.real_table = str(real / REAL_NPZ if real.is_dir() else real), args.ptbxl_table
    if args.data_dir and args.num_records:
        raise ConfigError("Give --data-dir (an existing cohort) or --num-records (generate one), not both.")
    if args.data_dir:
        cfg.base.data_dir = args.data_dir
    if args.num_records:
        from encoder.datasets.synthetic import SyntheticConfig, generate_cohort

        cohort = Path(cfg.out_dir) / f"cohort-{args.num_records}"
        if not (cohort / "ptbxl_database.csv").is_file():
            generate_cohort(SyntheticConfig(out_dir=str(cohort), num_records=args.num_records, seed=0))
        cfg.base.data_dir = str(cohort)
    cfg.base.cache_dir = cfg.base.cache_dir or str(Path(cfg.out_dir) / "cache")
    return cfg


def main(argv: list[str] | None = None) -> Path:
    cfg = build_config(_args(argv))
    out = run_ablation(cfg)
    found = json.loads((out / "claims.json").read_text())
    summary = pd.read_csv(out / "summary.csv")
    report = {
        "settings": to_plain(cfg),
        "protocol": "thresholds tuned on valid; valid = selection numbers, test = held-out fold of the cohort, "
        "real = real records scored with head, thresholds and probe fitted on the cohort",
        "runs": pd.read_csv(out / "runs.csv").to_dict(orient="records"),
        "summary": summary.to_dict(orient="records"),
        "claims": found,
    }
    atomic_write_text(out / "ablations.json", json.dumps(report, indent=1, default=float))
    atomic_write_text(
        out / "ablations.md",
        "# Stage-1 ablations\n\n## Which claims hold where\n\n"
        + claims_overview_markdown(found)
        + "\n## Claims (reference minus variant)\n\n"
        + claims_markdown(found)
        + "\n## Every cell (mean over seeds)\n\n"
        + (out / "summary.md").read_text(),
    )
    print((out / "ablations.md").read_text())
    return out


if __name__ == "__main__":
    main()
