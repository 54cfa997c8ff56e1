"""Ablation grid: {SigLIP, Jaccard-SigLIP, CLIP} x {embedding dims} x {crop on/off} x {knowledge text, codes} x seeds.

Each cell is one ``run_pretrain`` + ``run_evaluate`` (finished cells are skipped, so an interrupted grid resumes).
Writes into ``out_dir``: ``runs.csv`` (every run x method x metric with its bootstrap CI), ``summary.csv`` /
``summary.md`` (mean over seeds with a t-based 95 % CI), ``paired.md`` (per-seed paired difference of each loss
against plain SigLIP) and ``ablation.png``.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from encoder.config_io import atomic_write_text, save_resolved_config
from encoder.errors import ConfigError
from encoder.evaluate import EvaluateConfig, run_evaluate
from encoder.loss import CONTRASTIVE_LOSSES
from encoder.train import PretrainConfig, run_pretrain

log = logging.getLogger(__name__)

KEY_COLS = ["loss", "embed_dim", "random_crop", "text_style"]


@dataclass
class AblationConfig:
    """Grid of stage-1 runs compared in one table."""

    base: PretrainConfig = field(default_factory=PretrainConfig)
    """Settings shared by every run (data, widths, epochs, ...); the grid overrides the fields below."""
    out_dir: str = "runs/ablation"
    """Folder of the grid: one sub-folder per run + the comparison tables and plot."""
    losses: list[str] = field(default_factory=lambda: ["siglip", "jaccard_siglip", "clip"])
    """Contrastive objectives to compare."""
    embed_dims: list[int] = field(default_factory=lambda: [128, 256])
    """Shared embedding widths."""
    random_crops: list[bool] = field(default_factory=lambda: [True, False])
    """Random-crop augmentation on / off."""
    text_styles: list[str] = field(default_factory=lambda: ["knowledge", "codes"])
    """Record text: expanded SCP descriptions and/or bare codes."""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    """Seeds per cell."""
    n_boot: int = 200
    """Bootstrap resamples per run for the test-fold CIs."""
    methods: list[str] = field(default_factory=lambda: ["aux_head", "zero_shot", "linear_probe"])
    """Which evaluations to tabulate (aux_head | zero_shot | linear_probe)."""
    plot_metrics: list[str] = field(default_factory=lambda: ["macro_auroc", "micro_f1", "sample_jaccard"])
    """Metrics drawn in ablation.png."""


def _run_name(loss: str, dim: int, crop: bool, style: str, seed: int) -> str:
    return f"{loss}-d{dim}-{'crop' if crop else 'nocrop'}-{style}-s{seed}"


def _t95(n: int) -> float:
    """Two-sided 95 % Student-t quantile for n - 1 degrees of freedom (small table, normal beyond)."""
    table = {2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776, 6: 2.571, 7: 2.447, 8: 2.365, 9: 2.306, 10: 2.262}
    return table.get(n, 1.96)


def _mean_ci(values: np.ndarray) -> tuple[float, float, float]:
    v = values[~np.isnan(values)]
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    m = float(v.mean())
    if len(v) < 2:
        return m, float("nan"), float("nan")
    h = _t95(len(v)) * float(v.std(ddof=1)) / math.sqrt(len(v))
    return m, m - h, m + h


def run_ablation(cfg: AblationConfig) -> Path:
    """Run (or reuse) every cell of the grid and write the comparison; returns ``out_dir``."""
    for loss in cfg.losses:
        if loss not in CONTRASTIVE_LOSSES:
            raise ConfigError(
                f"Unknown loss {loss!r} in the ablation; choose from {sorted(CONTRASTIVE_LOSSES)}."
            )
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_resolved_config(cfg, out)
    rows = []
    grid = list(itertools.product(cfg.losses, cfg.embed_dims, cfg.random_crops, cfg.text_styles, cfg.seeds))
    for i, (loss, dim, crop, style, seed) in enumerate(grid):
        name = _run_name(loss, dim, crop, style, seed)
        run_dir = out / "runs" / name
        results = run_dir / "eval" / "results.json"
        if not results.is_file():
            log.info("[%d/%d] %s", i + 1, len(grid), name)
            pcfg = copy.deepcopy(cfg.base)
            pcfg.loss, pcfg.embed_dim, pcfg.random_crop, pcfg.text_style, pcfg.seed = (
                loss,
                dim,
                crop,
                style,
                seed,
            )
            pcfg.out_dir = str(run_dir)
            pcfg.resume = True
            run_pretrain(pcfg)
            run_evaluate(
                EvaluateConfig(
                    run_dir=str(run_dir),
                    n_boot=cfg.n_boot,
                    random_baseline=False,
                    seed=seed,
                    cpu=cfg.base.cpu,
                )
            )
        for r in json.loads(results.read_text()):
            if r["method"] not in cfg.methods:
                continue
            for metric, value in r["values"].items():
                lo, hi = r["ci"].get(metric, (float("nan"), float("nan")))
                rows.append(
                    {"loss": loss, "embed_dim": dim, "random_crop": crop, "text_style": style, "seed": seed,
                     "method": r["method"], "metric": metric, "value": value, "ci_low": lo, "ci_high": hi}
                )  # fmt: skip
    runs = pd.DataFrame(rows)
    atomic_write_text(out / "runs.csv", runs.to_csv(index=False))
    summary = summarize(runs)
    atomic_write_text(out / "summary.csv", summary.to_csv(index=False))
    atomic_write_text(out / "summary.md", summary_markdown(summary))
    atomic_write_text(out / "paired.md", paired_markdown(runs))
    plot_ablation(summary, cfg.plot_metrics, out / "ablation.png")
    log.info("ablation written to %s\n%s", out, (out / "summary.md").read_text())
    return out


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds with a t-based 95 % CI, one row per (cell, method, metric)."""
    out = []
    for key, g in runs.groupby([*KEY_COLS, "method", "metric"], sort=False):
        m, lo, hi = _mean_ci(g["value"].to_numpy(dtype=float))
        out.append(
            {
                **dict(zip([*KEY_COLS, "method", "metric"], key, strict=True)),
                "mean": m,
                "ci_low": lo,
                "ci_high": hi,
                "seeds": len(g),
            }
        )
    return pd.DataFrame(out)


def summary_markdown(summary: pd.DataFrame) -> str:
    metrics = list(dict.fromkeys(summary["metric"]))
    lines = [
        "| loss | dim | crop | text | method | " + " | ".join(metrics) + " |",
        "|---|---|---|---|---|" + "---|" * len(metrics),
    ]
    for key, g in summary.groupby([*KEY_COLS, "method"], sort=False):
        by = g.set_index("metric")
        cells = []
        for m in metrics:
            r = by.loc[m]
            ci = "" if math.isnan(r["ci_low"]) else f" [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
            cells.append(f"{r['mean']:.3f}{ci}")
        loss, dim, crop, style, method = key
        lines.append(
            f"| {loss} | {dim} | {'on' if crop else 'off'} | {style} | {method} | " + " | ".join(cells) + " |"
        )
    n = int(summary["seeds"].max()) if len(summary) else 0
    return (
        "\n".join(lines)
        + f"\n\nMean over {n} seed(s) of the test-fold metric; 95 % t-interval over seeds in brackets.\n"
    )


def paired_markdown(runs: pd.DataFrame) -> str:
    """Per-seed paired difference (loss - siglip) for each cell/method/metric, mean with a t-based 95 % CI."""
    if "siglip" not in set(runs["loss"]):
        return "No plain-SigLIP runs in this grid; nothing to pair against.\n"
    idx = ["embed_dim", "random_crop", "text_style", "seed", "method", "metric"]
    base = runs[runs["loss"] == "siglip"].set_index(idx)["value"]
    lines = [
        "| loss - siglip | dim | crop | text | method | metric | mean diff [95 % CI] | wins |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for loss in [x for x in dict.fromkeys(runs["loss"]) if x != "siglip"]:
        other = runs[runs["loss"] == loss].set_index(idx)["value"]
        diff = (other - base).dropna().reset_index()
        for key, g in diff.groupby(
            ["embed_dim", "random_crop", "text_style", "method", "metric"], sort=False
        ):
            m, lo, hi = _mean_ci(g["value"].to_numpy(dtype=float))
            wins = int((g["value"] > 0).sum())
            dim, crop, style, method, metric = key
            ci = "" if math.isnan(lo) else f" [{lo:+.3f}, {hi:+.3f}]"
            lines.append(
                f"| {loss} | {dim} | {'on' if crop else 'off'} | {style} | {method} | {metric} | {m:+.3f}{ci} | {wins}/{len(g)} |"
            )
    return "\n".join(lines) + "\n"


def plot_ablation(summary: pd.DataFrame, metrics: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(summary["method"]))
    fig, axes = plt.subplots(
        len(methods), len(metrics), figsize=(4 * len(metrics), 3 * len(methods)), squeeze=False
    )
    for i, method in enumerate(methods):
        for j, metric in enumerate(metrics):
            ax = axes[i][j]
            g = summary[(summary["method"] == method) & (summary["metric"] == metric)]
            labels = [
                f"{r.loss}\nd{r.embed_dim} {'crop' if r.random_crop else 'nocrop'} {r.text_style[:4]}"
                for r in g.itertuples()
            ]
            err = np.vstack([g["mean"] - g["ci_low"], g["ci_high"] - g["mean"]]).clip(min=0)
            err = np.nan_to_num(err)
            ax.bar(
                range(len(g)),
                g["mean"],
                yerr=err,
                capsize=3,
                color=[f"C{list(dict.fromkeys(summary['loss'])).index(x)}" for x in g["loss"]],
            )
            ax.set_xticks(range(len(g)), labels, rotation=90, fontsize=6)
            ax.set_title(f"{method}: {metric}", fontsize=9)
            lo = float(np.nanmin(g["ci_low"].fillna(g["mean"]))) if len(g) else 0.0
            ax.set_ylim(max(0.0, lo - 0.05), 1.0)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
