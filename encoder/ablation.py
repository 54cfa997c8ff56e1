"""Ablation grid: {SigLIP, Jaccard-SigLIP, CLIP} x {embedding dims} x {crop on/off} x {knowledge text, codes} x seeds.

``design: grid`` runs every combination; ``design: one_factor`` runs the reference cell (the first entry of each
list) plus one cell per other entry, changing that one factor only (the paper's ablations).
Each cell is one ``run_pretrain`` + ``run_evaluate`` (finished cells are skipped, so an interrupted grid resumes).
Every run is scored on the test fold (``split=test``), on the validation fold the thresholds were tuned on
(``split=valid``, the selection numbers) and, given ``real_records`` + ``real_table``, on real labelled records
(``split=real``; thresholds, probe and head fitted on the cohort only).
Writes into ``out_dir``: ``runs.csv`` (every run x split x method x metric with its bootstrap CI), ``summary.csv`` /
``summary.md`` (mean over seeds with a t-based 95 % CI), ``paired.md`` (per-seed paired difference of each loss
against plain SigLIP) and ``ablation.png``.
"""

from __future__ import annotations

import copy
import functools
import itertools
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from encoder.config_io import atomic_write_text, save_resolved_config
from encoder.errors import ConfigError
from encoder.evaluate import EvaluateConfig, _evaluate_encoder, _run_pretrain_config, run_evaluate
from encoder.loss import CONTRASTIVE_LOSSES
from encoder.train import LossName, PretrainConfig, TextStyle, run_pretrain

log = logging.getLogger(__name__)

KEY_COLS = ["loss", "embed_dim", "random_crop", "text_style"]
SPLITS = ("valid", "test", "real", "real_odd")
"""valid: the fold the thresholds were tuned on (selection numbers, optimistic); test: held-out fold; real: real
records scored with everything fitted on the cohort; real_odd: those at odd positions only (the synthetic
generator's shape model was fitted on the even half)."""


@dataclass
class AblationConfig:
    """Grid of stage-1 runs compared in one table."""

    base: PretrainConfig = field(default_factory=PretrainConfig)
    """Settings shared by every run (data, widths, epochs, ...); the grid overrides the fields below."""
    out_dir: str = "runs/ablation"
    """Folder of the grid: one sub-folder per run + the comparison tables and plot."""
    losses: list[LossName] = field(default_factory=lambda: ["siglip", "jaccard_siglip", "clip"])
    """Contrastive objectives to compare."""
    embed_dims: list[int] = field(default_factory=lambda: [128, 256])
    """Shared embedding widths."""
    random_crops: list[bool] = field(default_factory=lambda: [True, False])
    """Random-crop augmentation on / off."""
    text_styles: list[TextStyle] = field(default_factory=lambda: ["knowledge", "codes"])
    """Record text: expanded SCP descriptions and/or bare codes."""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    """Seeds per cell."""
    n_boot: int = 200
    """Bootstrap resamples per run for the test-fold CIs."""
    methods: list[str] = field(default_factory=lambda: ["aux_head", "zero_shot", "linear_probe"])
    """Which evaluations to tabulate (aux_head | zero_shot | linear_probe)."""
    plot_metrics: list[str] = field(default_factory=lambda: ["macro_auroc", "micro_f1", "sample_jaccard"])
    """Metrics drawn in ablation.png."""
    design: Literal["grid", "one_factor"] = "grid"
    """grid: every combination; one_factor: the reference (first entry of each list) + one change at a time."""
    real_records: str = ""
    """Optional .npz of real 12-lead records (``signal``, ``fs``, ``ecg_id``), e.g. the shared 183 PTB-XL ones."""
    real_table: str = ""
    """PTB-XL ``ptbxl_database.csv`` giving the real records' ``scp_codes`` (join on ecg_id); needs real_records."""


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


Cell = tuple[LossName, int, bool, TextStyle]
"""(loss, embed_dim, random_crop, text_style) of one run."""


def cells(cfg: AblationConfig) -> list[Cell]:
    """(loss, embed_dim, random_crop, text_style) of every cell, in run order."""
    if cfg.design == "grid":
        return list(itertools.product(cfg.losses, cfg.embed_dims, cfg.random_crops, cfg.text_styles))
    ref: Cell = (cfg.losses[0], cfg.embed_dims[0], cfg.random_crops[0], cfg.text_styles[0])
    out = [ref]  # then one factor changed at a time, axis by axis
    out += [(v, ref[1], ref[2], ref[3]) for v in cfg.losses[1:]]
    out += [(ref[0], v, ref[2], ref[3]) for v in cfg.embed_dims[1:]]
    out += [(ref[0], ref[1], v, ref[3]) for v in cfg.random_crops[1:]]
    out += [(ref[0], ref[1], ref[2], v) for v in cfg.text_styles[1:]]
    return list(dict.fromkeys(out))


def _check(cfg: AblationConfig) -> None:
    for loss in cfg.losses:
        if loss not in CONTRASTIVE_LOSSES:
            raise ConfigError(
                f"Unknown loss {loss!r} in the ablation; choose from {sorted(CONTRASTIVE_LOSSES)}."
            )
    if bool(cfg.real_records) != bool(cfg.real_table):
        raise ConfigError(
            "Give both real_records (the .npz of real signals) and real_table (ptbxl_database.csv with their "
            "scp_codes), or neither."
        )
    for path in (cfg.real_records, cfg.real_table):
        if path and not Path(path).is_file():
            raise ConfigError(f"{path} does not exist; pass the real records' .npz and ptbxl_database.csv.")


def _train_and_evaluate(cfg: AblationConfig, cell: Cell, seed: int, run_dir: Path) -> None:
    pcfg = copy.deepcopy(cfg.base)
    pcfg.loss, pcfg.embed_dim, pcfg.random_crop, pcfg.text_style = cell
    pcfg.seed, pcfg.out_dir, pcfg.resume = seed, str(run_dir), True
    run_pretrain(pcfg)
    run_evaluate(
        EvaluateConfig(
            run_dir=str(run_dir), n_boot=cfg.n_boot, random_baseline=False, seed=seed, cpu=cfg.base.cpu
        )
    )


def run_ablation(cfg: AblationConfig) -> Path:
    """Run (or reuse) every cell and write the comparison; returns ``out_dir``."""
    _check(cfg)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_resolved_config(cfg, out)
    rows = []
    grid = [(cell, seed) for cell in cells(cfg) for seed in cfg.seeds]
    for i, (cell, seed) in enumerate(grid):
        name = _run_name(*cell, seed)
        run_dir = out / "runs" / name
        if not (run_dir / "eval" / "results.json").is_file():
            log.info("[%d/%d] %s", i + 1, len(grid), name)
            _train_and_evaluate(cfg, cell, seed, run_dir)
        for split, results in _split_results(cfg, run_dir, seed).items():
            for r in results:
                if r["method"] not in cfg.methods:
                    continue
                for metric, value in r["values"].items():
                    lo, hi = r["ci"].get(metric, (float("nan"), float("nan")))
                    rows.append(
                        {**dict(zip(KEY_COLS, cell, strict=True)), "seed": seed, "run": name, "split": split,
                         "method": r["method"], "metric": metric, "value": value, "ci_low": lo, "ci_high": hi}
                    )  # fmt: skip
    runs = pd.DataFrame(rows)
    atomic_write_text(out / "runs.csv", runs.to_csv(index=False))
    summary = summarize(runs)
    atomic_write_text(out / "summary.csv", summary.to_csv(index=False))
    atomic_write_text(out / "summary.md", summary_markdown(summary))
    atomic_write_text(out / "paired.md", paired_markdown(runs))
    if cfg.design == "one_factor":
        found = claims(runs, cfg)
        atomic_write_text(out / "claims.json", json.dumps(found, indent=1, default=float))
        atomic_write_text(out / "claims.md", claims_markdown(found))
    plot_ablation(summary[summary["split"] == "test"], cfg.plot_metrics, out / "ablation.png")
    log.info("ablation written to %s\n%s", out, (out / "summary.md").read_text())
    return out


def _split_results(cfg: AblationConfig, run_dir: Path, seed: int) -> dict[str, list[dict[str, Any]]]:
    """{split: evaluate's result entries} of one run; the valid / real scores are cached in eval/splits.json."""
    test = json.loads((run_dir / "eval" / "results.json").read_text())
    path = run_dir / "eval" / "splits.json"
    source = {"real_records": cfg.real_records, "real_table": cfg.real_table, "n_boot": cfg.n_boot, "v": 2}
    cached = json.loads(path.read_text()) if path.is_file() else {}
    if cached.get("source") != source:
        cached = {"source": source, "results": score_other_splits(cfg, run_dir, seed)}
        atomic_write_text(path, json.dumps(cached, default=float))
    return {"test": test, **cached["results"]}


class _LabelledSignals(torch.utils.data.Dataset):
    """Model-ready signals (N, 12, T) with multi-hot labels (N, L), as ``{"ecg", "labels"}`` items."""

    def __init__(self, signals: np.ndarray, labels: np.ndarray) -> None:
        self.signals, self.labels = torch.from_numpy(signals).float(), torch.from_numpy(labels).float()

    def __len__(self) -> int:
        return len(self.signals)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"ecg": self.signals[i], "labels": self.labels[i]}


def load_labelled_real(
    records: str | Path, table: str | Path, label_names: list[str], task: str, encoder: Any
) -> _LabelledSignals:
    """Real records of ``records`` (.npz with ``ecg_id``) as model inputs of ``encoder``, labelled with ``task``'s
    labels from ``table``'s ``scp_codes`` (labels the encoder does not know are dropped)."""
    from encoder.datasets.ptbxl import parse_scp_codes
    from encoder.errors import DatasetError
    from encoder.labels import ScpStatements, labels_for_record
    from encoder.realism import _encoder_inputs, load_real

    with np.load(records, allow_pickle=False) as z:
        if "ecg_id" not in z.files:
            raise DatasetError(f"{records} has no 'ecg_id' array; the real labels are joined on it.")
        ids = [int(i) for i in z["ecg_id"]]
    db = pd.read_csv(table, index_col="ecg_id")
    missing = sorted(set(ids) - set(db.index))
    if missing:
        raise DatasetError(f"{len(missing)} real ecg_ids (e.g. {missing[:3]}) are not in {table}.")
    statements = ScpStatements.load()
    y = np.zeros((len(ids), len(label_names)), dtype=np.float32)  # (N, L)
    for row, i in enumerate(ids):
        for name in labels_for_record(parse_scp_codes(db.at[i, "scp_codes"], i), task, statements):
            if name in label_names:
                y[row, label_names.index(name)] = 1.0
    return _LabelledSignals(_encoder_inputs(encoder, load_real(records)), y)


def score_other_splits(cfg: AblationConfig, run_dir: Path, seed: int) -> dict[str, list[dict[str, Any]]]:
    """Score one run on its validation fold (thresholds tuned there: selection numbers) and, when configured, on
    the real records (head, thresholds and probe fitted on the cohort); evaluate's scoring, other scored sets."""
    from encoder.clip_model import EcgClipModel
    from encoder.train import load_stage_data

    ecfg = EvaluateConfig(run_dir=str(run_dir), random_baseline=False, seed=seed, cpu=cfg.base.cpu, n_boot=0)
    device = torch.device("cuda" if torch.cuda.is_available() and not cfg.base.cpu else "cpu")
    clip = EcgClipModel.from_pretrained(run_dir / "clip_model").to(device)
    pcfg = _run_pretrain_config(run_dir, ecfg)
    data = load_stage_data(pcfg, clip.encoder.config.input_samples, False, pcfg.seed)
    sets = {"valid": data.val}
    if cfg.real_records:
        names = list(clip.encoder.config.label_names)
        sets["real"] = load_labelled_real(cfg.real_records, cfg.real_table, names, pcfg.task, clip.encoder)
    out = {}
    for split, scored in sets.items():
        ecfg.n_boot = 0 if split == "valid" else cfg.n_boot
        view = SimpleNamespace(train=data.train, val=data.val, test=scored)
        results = _evaluate_encoder("pretrained", clip.encoder, clip, view, ecfg, device, use_head=True)
        out[split] = [{k: r[k] for k in ("method", "encoder", "values", "ci")} for r in results]
        if split == "real":
            out["real_odd"] = _held_out_half(
                results, sets["real"].labels.numpy().astype(int), cfg.n_boot, seed
            )
    return out


def _held_out_half(
    results: list[dict[str, Any]], y: np.ndarray, n_boot: int, seed: int
) -> list[dict[str, Any]]:
    """The real-record scores restricted to the records at odd positions (1, 3, ...): the synthetic generator's
    shape model was fitted on the even half, so only the odd half is unseen by the cohort."""
    from encoder.metrics import all_metrics, bootstrap_ci

    out = []
    for r in results:
        yo, po, thr = y[1::2], r["test_probs"][1::2], r["thresholds"]  # (N/2, L)
        ci = (
            bootstrap_ci(yo, po, functools.partial(all_metrics, thresholds=thr), n_boot=n_boot, seed=seed)
            if n_boot
            else {}
        )
        out.append(
            {"method": r["method"], "encoder": r["encoder"], "values": all_metrics(yo, po, thr), "ci": ci}
        )
    return out


CLAIM_METRICS = ("micro_f1", "sample_jaccard", "macro_auroc")
"""Metrics a claim is judged on."""
CLAIM_WORDING = {
    "loss": lambda a, b: f"{a} beats {b}",
    "embed_dim": lambda a, b: f"{a}-d embedding beats {b}-d",
    "random_crop": lambda a, b: f"random crop {'on' if a else 'off'} beats {'on' if b else 'off'}",
    "text_style": lambda a, b: f"{a} text beats {b} text",
}
"""How a claim "reference value beats variant value" of each factor reads."""
MIN_SEEDS = 3
"""Fewer seeds than this: the verdict is marked as resting on too few seeds."""


def claims(runs: pd.DataFrame, cfg: AblationConfig) -> list[dict[str, Any]]:
    """One-factor claims "reference beats variant": per split x method x metric, the per-seed paired difference
    (reference run minus variant run, same seed) with a t-based 95 % interval and a verdict: ``holds`` (interval
    above 0), ``reversed`` (below 0) or ``unresolved``."""
    ref = cells(cfg)[0]
    out = []
    for variant in cells(cfg)[1:]:
        axis = next(i for i in range(len(KEY_COLS)) if variant[i] != ref[i])
        a = runs[(runs[KEY_COLS] == pd.Series(ref, index=KEY_COLS)).all(axis=1)]
        b = runs[(runs[KEY_COLS] == pd.Series(variant, index=KEY_COLS)).all(axis=1)]
        idx = ["seed", "split", "method", "metric"]
        diff = (a.set_index(idx)["value"] - b.set_index(idx)["value"]).dropna().reset_index()
        for (split, method, metric), g in diff.groupby(["split", "method", "metric"], sort=False):
            if metric not in CLAIM_METRICS:
                continue
            m, lo, hi = _mean_ci(g["value"].to_numpy(dtype=float))
            verdict = "holds" if lo > 0 else "reversed" if hi < 0 else "unresolved"
            if len(g) < MIN_SEEDS:
                verdict += f" ({len(g)} seeds)"
            out.append(
                {"claim": CLAIM_WORDING[KEY_COLS[axis]](ref[axis], variant[axis]), "factor": KEY_COLS[axis],
                 "reference_run": _run_name(*ref, 0)[:-3], "variant_run": _run_name(*variant, 0)[:-3],
                 "split": split, "method": method, "metric": metric, "mean_diff": m, "ci_low": lo,
                 "ci_high": hi, "wins": int((g["value"] > 0).sum()), "seeds": len(g), "verdict": verdict}
            )  # fmt: skip
    return out


def _markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    """A markdown table (no trailing newline): the header, the separator and one line per row of cells."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(map(str, r)) + " |" for r in rows])


def claims_overview_markdown(rows: list[dict[str, Any]]) -> str:
    """Which claims hold where: per claim x split, how many of its method x metric cells hold / are reversed."""
    if not rows:
        return ""
    df = pd.DataFrame(rows)
    splits = [s for s in SPLITS if s in set(df["split"])]
    table = []
    for claim, g in df.groupby("claim", sort=False):
        cells_ = [claim]
        for split in splits:
            v = g[g["split"] == split]["verdict"].str.split(" ").str[0]
            cells_.append(f"{(v == 'holds').sum()} hold, {(v == 'reversed').sum()} reversed / {len(v)}")
        table.append(cells_)
    return (
        _markdown_table(["claim", *splits], table)
        + "\n\nCells: of the method x metric comparisons (zero-shot, aux head, linear probe x "
        "micro-F1, sample Jaccard, macro AUROC), how many hold (95 % interval over seeds above 0) and how many are "
        "reversed (below 0); the rest are unresolved.\n"
    )


def claims_markdown(rows: list[dict[str, Any]]) -> str:
    """The claims as one table: per claim x split x method, each metric's paired difference and verdict."""
    if not rows:
        return "No one-factor claims (design: grid, or a single cell).\n"
    df = pd.DataFrame(rows)
    metrics = [m for m in CLAIM_METRICS if m in set(df["metric"])]
    header = ["claim", "split", "method", *(f"{m} diff [95 % CI] (wins)" for m in metrics)]
    table = []
    for (claim, split, method), g in df.groupby(["claim", "split", "method"], sort=False):
        by = g.set_index("metric")
        cells_ = [claim, split, method]
        for m in metrics:
            r = by.loc[m]
            ci = "" if math.isnan(r["ci_low"]) else f" [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]"
            cells_.append(f"{r['mean_diff']:+.3f}{ci} ({r['wins']}/{r['seeds']}) **{r['verdict']}**")
        table.append(cells_)
    return (
        _markdown_table(header, table)
        + "\n\nReference minus variant, paired by seed; 95 % t-interval over seeds; holds = interval above 0, "
        "reversed = below 0, unresolved = contains 0. valid: the fold the thresholds were tuned on (selection), "
        "test: held-out fold, real: real records (everything fitted on the cohort), real_odd: the real records "
        "at odd positions (unseen by the generator's shape model).\n"
    )


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds with a t-based 95 % CI, one row per (cell, method, metric)."""
    out = []
    cols = [*KEY_COLS, "method", "split", "metric"]
    for key, g in runs.groupby(cols, sort=False):
        m, lo, hi = _mean_ci(g["value"].to_numpy(dtype=float))
        out.append(
            {
                **dict(zip(cols, key, strict=True)),
                "mean": m,
                "ci_low": lo,
                "ci_high": hi,
                "seeds": len(g),
            }
        )
    return pd.DataFrame(out)


def summary_markdown(summary: pd.DataFrame) -> str:
    metrics = list(dict.fromkeys(summary["metric"]))
    table = []
    for key, g in summary.groupby([*KEY_COLS, "method", "split"], sort=False):
        by = g.set_index("metric")
        loss, dim, crop, style, method, split = key
        cells = [loss, dim, "on" if crop else "off", style, method, split]
        for m in metrics:
            r = by.loc[m]
            ci = "" if math.isnan(r["ci_low"]) else f" [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
            cells.append(f"{r['mean']:.3f}{ci}")
        table.append(cells)
    n = int(summary["seeds"].max()) if len(summary) else 0
    return (
        _markdown_table(["loss", "dim", "crop", "text", "method", "split", *metrics], table)
        + f"\n\nMean over {n} seed(s); 95 % t-interval over seeds in brackets. split: valid = the fold the "
        "thresholds were tuned on (selection numbers), test = held-out fold, real = real records.\n"
    )


def paired_markdown(runs: pd.DataFrame) -> str:
    """Per-seed paired difference (loss - siglip) for each cell/method/metric, mean with a t-based 95 % CI."""
    if "siglip" not in set(runs["loss"]):
        return "No plain-SigLIP runs in this grid; nothing to pair against.\n"
    idx = ["embed_dim", "random_crop", "text_style", "seed", "split", "method", "metric"]
    base = runs[runs["loss"] == "siglip"].set_index(idx)["value"]
    header = [
        "loss - siglip",
        "dim",
        "crop",
        "text",
        "split",
        "method",
        "metric",
        "mean diff [95 % CI]",
        "wins",
    ]
    table = []
    for loss in [x for x in dict.fromkeys(runs["loss"]) if x != "siglip"]:
        other = runs[runs["loss"] == loss].set_index(idx)["value"]
        diff = (other - base).dropna().reset_index()
        for key, g in diff.groupby(
            ["embed_dim", "random_crop", "text_style", "split", "method", "metric"], sort=False
        ):
            m, lo, hi = _mean_ci(g["value"].to_numpy(dtype=float))
            wins = int((g["value"] > 0).sum())
            dim, crop, style, split, method, metric = key
            ci = "" if math.isnan(lo) else f" [{lo:+.3f}, {hi:+.3f}]"
            table.append(
                [
                    loss,
                    dim,
                    "on" if crop else "off",
                    style,
                    split,
                    method,
                    metric,
                    f"{m:+.3f}{ci}",
                    f"{wins}/{len(g)}",
                ]
            )
    return _markdown_table(header, table) + "\n"


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
