"""Dataset statistics for ``ecgllm data stats``: folds, label prevalence, co-occurrence, age/sex, ECG-QA splits."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from encoder.config_io import atomic_write_json, save_resolved_config
from encoder.datasets.ecgqa import SPLITS, VARIANTS, load_ecgqa, source_dir
from encoder.datasets.ptbxl import SPLIT_FOLDS, PtbXl
from encoder.errors import ConfigError, DatasetError

PTBXL_OLD_AGE = 300
"""PTB-XL writes ages above 89 as 300 (de-identification); they are reported separately."""


def ptbxl_stats(ds: PtbXl, top_pairs: int = 10) -> dict[str, Any]:
    """Records per fold/split, label counts and prevalence, top co-occurring pairs, age and sex."""
    t = ds.table
    y = ds.multi_hot().astype(np.int64)  # (N, L)
    n = len(t)
    out: dict[str, Any] = {
        "root": str(ds.root),
        "task": ds.task,
        "sampling_rate": ds.sampling_rate,
        "records_in_database": len(ds.database),
        "records": n,
        "records_per_fold": {int(k): int(v) for k, v in sorted(Counter(t["strat_fold"]).items())},
        "records_per_split": {s: int(t["strat_fold"].isin(f).sum()) for s, f in SPLIT_FOLDS.items()},
        "labels_per_record": float(y.sum(1).mean()) if n else 0.0,
    }
    counts = y.sum(0)
    out["labels"] = {
        name: {
            "count": int(counts[j]),
            "prevalence": float(counts[j] / n) if n else 0.0,
            **{f"{s}_count": int(y[ds.split_indices(s), j].sum()) for s in SPLIT_FOLDS},
        }
        for j, name in enumerate(ds.label_names)
    }
    co = y.T @ y  # (L, L)
    iu = np.triu_indices(len(ds.label_names), k=1)
    order = np.argsort(-co[iu], kind="stable")[:top_pairs]
    out["top_pairs"] = [
        {"pair": [ds.label_names[iu[0][k]], ds.label_names[iu[1][k]]], "count": int(co[iu][k])}
        for k in order
        if co[iu][k] > 0
    ]
    if "age" in t.columns:
        age = pd.to_numeric(t["age"], errors="coerce")
        old = age == PTBXL_OLD_AGE
        valid = age[~old].dropna()
        out["age"] = {
            "mean": float(valid.mean()) if len(valid) else None,
            "std": float(valid.std()) if len(valid) > 1 else None,
            "median": float(valid.median()) if len(valid) else None,
            "min": float(valid.min()) if len(valid) else None,
            "max": float(valid.max()) if len(valid) else None,
            "over_89": int(old.sum()),
            "missing": int(age.isna().sum()),
        }
    if "sex" in t.columns:
        names = {0: "male", 1: "female"}  # PTB-XL coding
        sex = pd.to_numeric(t["sex"], errors="coerce")
        out["sex"] = {names.get(int(k), str(k)): int(v) for k, v in Counter(sex.dropna().astype(int)).items()}
        out["sex"]["missing"] = int(sex.isna().sum())
    return out


def ecgqa_stats(root: str | Path, source: str = "ptbxl", ptbxl: PtbXl | None = None) -> dict[str, Any]:
    """Samples, question types and attribute types per variant/split present under ``root``."""
    base = source_dir(root, source)
    out: dict[str, Any] = {"root": str(root), "source": source, "splits": {}}
    known = set(ptbxl.database["ecg_id"].astype(int)) if ptbxl is not None else None
    for variant in VARIANTS:
        for split in SPLITS:
            if not (base / variant / split).is_dir():
                continue
            qa = load_ecgqa(root, source=source, variant=variant, split=split)
            ids = {i for pair in qa["ecg_id"] for i in pair}
            entry = {
                "samples": len(qa),
                "question_types": dict(sorted(Counter(qa["question_type"]).items())),
                "attribute_types": dict(sorted(Counter(qa["attribute_type"]).items())),
                "ecgs": len(ids),
            }
            if known is not None:
                entry["ecgs_missing_from_ptbxl"] = len(ids - known)
            out["splits"][f"{variant}/{split}"] = entry
    return out


def format_stats(stats: dict[str, Any]) -> str:
    """Human-readable report of ``run_stats`` output."""
    p = stats["ptbxl"]
    lines = [
        f"PTB-XL at {p['root']} ({p['sampling_rate']} Hz), task {p['task']}",
        f"  records: {p['records']} with a label (of {p['records_in_database']} in the database), "
        f"{p['labels_per_record']:.2f} labels/record",
        "  per fold: " + ", ".join(f"{k}: {v}" for k, v in p["records_per_fold"].items()),
        "  per split: " + ", ".join(f"{k} {v}" for k, v in p["records_per_split"].items()),
        f"  labels ({len(p['labels'])}):  count  prevalence  train/val/test",
    ]
    for name, v in sorted(p["labels"].items(), key=lambda kv: -kv[1]["count"]):
        lines.append(
            f"    {name:<10} {v['count']:>6}  {100 * v['prevalence']:6.1f} %   "
            f"{v['train_count']}/{v['val_count']}/{v['test_count']}"
        )
    if p["top_pairs"]:
        lines.append("  top co-occurring pairs: " + ", ".join(f"{a}+{b} {c}" for (a, b), c in _pairs(p)))
    if "age" in p and p["age"]["mean"] is not None:
        a = p["age"]
        lines.append(
            f"  age: mean {a['mean']:.1f} (sd {a['std'] or 0:.1f}), median {a['median']:.0f}, "
            f"range {a['min']:.0f}-{a['max']:.0f}, over 89: {a['over_89']}, missing: {a['missing']}"
        )
    if "sex" in p:
        lines.append("  sex: " + ", ".join(f"{k} {v}" for k, v in p["sex"].items()))
    q = stats.get("ecgqa")
    if q:
        lines.append(f"ECG-QA ({q['source']}) at {q['root']}")
        for split, v in q["splits"].items():
            miss = v.get("ecgs_missing_from_ptbxl")
            lines.append(
                f"  {split}: {v['samples']} samples over {v['ecgs']} ECGs"
                + (f" ({miss} not in the PTB-XL database)" if miss is not None else "")
            )
            lines.append("    " + ", ".join(f"{k} {c}" for k, c in v["question_types"].items()))
    return "\n".join(lines)


def _pairs(p: dict[str, Any]):
    return [(tuple(x["pair"]), x["count"]) for x in p["top_pairs"]]


@dataclass
class DataStatsConfig:
    """Print statistics of a PTB-XL-format dataset (and its ECG-QA questions, if present)."""

    ptbxl: str = ""
    """Root of a PTB-XL-format dataset (ptbxl_database.csv, records100/, records500/)."""
    task: str = "superdiagnostic"
    """Label task: all, diagnostic, subdiagnostic, superdiagnostic, form or rhythm."""
    sampling_rate: int = 100
    """100 or 500 (which record files the dataset points at)."""
    min_label_count: int = 1
    """Keep labels with at least this many records (0 = the task's full vocabulary)."""
    ecgqa: str = ""
    """ECG-QA root (holding ptbxl/...); empty = <ptbxl>/ecgqa when that folder exists."""
    ecgqa_source: str = "ptbxl"
    """ECG-QA source: ptbxl or mimic-iv-ecg."""
    top_pairs: int = 10
    """How many most frequent co-occurring label pairs to list."""
    out_dir: str = ""
    """Optional folder (outside the dataset) for stats.json and the resolved config.yaml."""


def run_stats(cfg: DataStatsConfig) -> dict[str, Any]:
    """CLI runner of ``ecgllm data stats``: prints the statistics and returns them as a dict."""
    if not cfg.ptbxl:
        raise ConfigError("Pass --ptbxl PATH (a PTB-XL-format dataset, e.g. from `ecgllm data synth`).")
    ds = PtbXl.from_config(cfg.ptbxl, cfg)
    stats: dict[str, Any] = {"ptbxl": ptbxl_stats(ds, cfg.top_pairs)}
    qa_root = Path(cfg.ecgqa) if cfg.ecgqa else ds.root / "ecgqa"
    if cfg.ecgqa or qa_root.is_dir():
        stats["ecgqa"] = ecgqa_stats(qa_root, cfg.ecgqa_source, ds if cfg.ecgqa_source == "ptbxl" else None)
    print(format_stats(stats))
    if cfg.out_dir:
        out = Path(cfg.out_dir).expanduser().resolve()
        if out == ds.root or out.is_relative_to(ds.root):
            raise DatasetError(
                f"Refusing to write statistics into the dataset directory {ds.root}; pick another out_dir."
            )
        atomic_write_json(out / "stats.json", stats)
        save_resolved_config(cfg, out)
    return stats
