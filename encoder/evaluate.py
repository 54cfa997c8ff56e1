"""Stage-1 evaluation on the held-out fold (10): aux head, zero-shot, linear probe, each beside a random-init encoder.

Thresholds are tuned on the validation fold (9); the probe is fit on the training folds (1-8). Outputs in
``out_dir``: ``results.csv`` / ``results.md`` / ``results.json`` (metric, value, bootstrap 95 % CI per
method x encoder), ``per_label_auroc.csv`` / ``.md`` and ``per_label_auroc.png``, ``config.yaml``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

from encoder.clip_model import LOGIT_SCALE_MAX, EcgClipModel
from encoder.config_io import atomic_write_json, atomic_write_text, save_resolved_config
from encoder.engine.inference import encode_dataset
from encoder.errors import CheckpointError
from encoder.metrics import all_metrics, bootstrap_ci, per_label_auroc, tune_thresholds
from encoder.modeling import EcgEncoder

log = logging.getLogger(__name__)


@dataclass
class EvaluateConfig:
    """Evaluate a stage-1 run on the test fold."""

    run_dir: str = "runs/pretrain"
    """Output folder of ``ecgllm pretrain`` (holds clip_model/ and config.yaml)."""
    out_dir: str | None = None
    """Where to write the reports (default ``<run_dir>/eval``)."""
    data_dir: str | None = None
    """PTB-XL-format folder (default: the one the run was trained on)."""
    cache_dir: str | None = None
    """Signal cache root (default: the run's)."""
    zero_shot: bool = True
    """Score labels by similarity with each label's text embedding."""
    linear_probe: bool = True
    """Fit sklearn LogisticRegression per label on frozen embeddings (train folds)."""
    random_baseline: bool = True
    """Evaluate a randomly initialised encoder of the same architecture with the same probe."""
    probe_c: float = 1.0
    """Inverse L2 strength of the probe's logistic regression."""
    n_boot: int = 200
    """Bootstrap resamples of the test fold for the 95 % CIs (0 = no CIs)."""
    seed: int = 0
    """Seed of the random-init baseline and the bootstrap."""
    cpu: bool = False
    """Force CPU."""
    progress: bool = False
    """Show progress bars while caching."""


def _run_pretrain_config(run_dir: Path, ecfg: EvaluateConfig) -> Any:
    from encoder.train import PretrainConfig

    path = run_dir / "config.yaml"
    if not path.is_file():
        raise CheckpointError(
            f"{run_dir} has no config.yaml; point run_dir at the output folder of `ecgllm pretrain`."
        )
    raw = yaml.safe_load(path.read_text()) or {}
    names = {f.name for f in fields(PretrainConfig)}
    # nested settings (text, augment) come back as mappings; PretrainConfig turns them into dataclasses
    kwargs = {k: v for k, v in raw.items() if k in names}
    cfg = PretrainConfig(**kwargs)
    if ecfg.data_dir:
        cfg.data_dir = ecfg.data_dir
    if ecfg.cache_dir:
        cfg.cache_dir = ecfg.cache_dir
    cfg.progress = ecfg.progress
    return cfg


def _embed(encoder: EcgEncoder, dataset: Any, device: torch.device) -> dict[str, np.ndarray]:
    """Pooled embeddings (N, D) (unnormalised), head logits (N, L) or (N, 0), labels (N, L)."""
    out = encode_dataset(encoder, dataset, outputs=("embedding", "logits", "labels"), device=device)
    return {
        "emb": out.output("embedding").numpy(),
        "logits": out.output("logits").numpy(),
        "labels": out.output("labels").numpy().astype(int),
    }


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def fit_probe(train_x: np.ndarray, train_y: np.ndarray, c: float, seed: int) -> Any:
    """Standardise + one LogisticRegression per label -> callable (N, D) -> probabilities (N, L)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train_x)
    xs = scaler.transform(train_x)
    models = []
    for j in range(train_y.shape[1]):
        y = train_y[:, j]
        if y.min() == y.max():  # one class only: constant prediction
            models.append(float(y[0]))
            continue
        models.append(LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(xs, y))

    def predict(x: np.ndarray) -> np.ndarray:
        z = scaler.transform(x)
        cols = [np.full(len(x), m) if isinstance(m, float) else m.predict_proba(z)[:, 1] for m in models]
        return np.stack(cols, axis=1)  # (N, L)

    return predict


def _score(name: str, encoder_kind: str, val: tuple, test: tuple, n_boot: int, seed: int) -> dict[str, Any]:
    """Tune thresholds on val probabilities, report test metrics + bootstrap CIs."""
    (yv, pv), (yt, pt) = val, test
    thr = tune_thresholds(yv, pv)
    values = all_metrics(yt, pt, thr)
    cis = (
        bootstrap_ci(yt, pt, lambda y, p: all_metrics(y, p, thr), n_boot=n_boot, seed=seed) if n_boot else {}
    )
    return {
        "method": name,
        "encoder": encoder_kind,
        "values": values,
        "ci": cis,
        "test_probs": pt,
        "thresholds": thr,
    }


def _evaluate_encoder(
    kind: str,
    encoder: EcgEncoder,
    clip: EcgClipModel | None,
    data: Any,
    ecfg: EvaluateConfig,
    device: torch.device,
    use_head: bool,
) -> list[dict[str, Any]]:
    results = []
    tr, va, te = (_embed(encoder, d, device) for d in (data.train, data.val, data.test))
    temps = encoder.config.label_temperature
    if use_head and te["logits"].size:
        t = np.asarray(temps)[None, :] if temps else 1.0
        results.append(
            _score(
                "aux_head",
                kind,
                (va["labels"], _sigmoid(va["logits"] / t)),
                (te["labels"], _sigmoid(te["logits"] / t)),
                ecfg.n_boot,
                ecfg.seed,
            )
        )
    if ecfg.zero_shot and clip is not None and clip.label_text_features.shape[0]:
        label_emb = clip.encode_text_features(clip.label_text_features.to(device)).detach().cpu()  # (L, D)

        def zs(split: dict) -> np.ndarray:
            e = torch.nn.functional.normalize(torch.from_numpy(split["emb"]), dim=-1)
            logits = (
                e @ label_emb.t() * clip.logit_scale.detach().clamp(max=LOGIT_SCALE_MAX).exp().cpu()
                + clip.logit_bias.detach().cpu()
            )
            return _sigmoid(logits.numpy().astype(np.float64))

        results.append(
            _score("zero_shot", kind, (va["labels"], zs(va)), (te["labels"], zs(te)), ecfg.n_boot, ecfg.seed)
        )
    if ecfg.linear_probe:
        probe = fit_probe(tr["emb"], tr["labels"], ecfg.probe_c, ecfg.seed)
        results.append(
            _score(
                "linear_probe",
                kind,
                (va["labels"], probe(va["emb"])),
                (te["labels"], probe(te["emb"])),
                ecfg.n_boot,
                ecfg.seed,
            )
        )
    return results


def _fmt(v: float, ci: tuple[float, float] | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def write_reports(
    results: list[dict[str, Any]], label_names: list[str], y_test: np.ndarray, out: Path
) -> pd.DataFrame:
    rows = []
    for r in results:
        for metric, v in r["values"].items():
            lo, hi = r["ci"].get(metric, (float("nan"), float("nan")))
            rows.append(
                {
                    "method": r["method"],
                    "encoder": r["encoder"],
                    "metric": metric,
                    "value": v,
                    "ci_low": lo,
                    "ci_high": hi,
                }
            )
    df = pd.DataFrame(rows)
    atomic_write_text(out / "results.csv", df.to_csv(index=False))
    metrics = list(dict.fromkeys(df["metric"]))
    lines = ["| method | encoder | " + " | ".join(metrics) + " |", "|---|---|" + "---|" * len(metrics)]
    for r in results:
        cells = [_fmt(r["values"][m], r["ci"].get(m)) for m in metrics]
        lines.append(f"| {r['method']} | {r['encoder']} | " + " | ".join(cells) + " |")
    atomic_write_text(
        out / "results.md",
        "\n".join(lines)
        + "\n\nTest fold; 95 % bootstrap CIs in brackets; thresholds tuned on the validation fold.\n",
    )
    atomic_write_json(
        out / "results.json", [{k: r[k] for k in ("method", "encoder", "values", "ci")} for r in results]
    )

    per_label = pd.DataFrame({"label": label_names, "positives": y_test.sum(0).astype(int)})
    for r in results:
        per_label[f"{r['method']}:{r['encoder']}"] = per_label_auroc(y_test, r["test_probs"])
    atomic_write_text(out / "per_label_auroc.csv", per_label.to_csv(index=False))
    cols = list(per_label.columns)
    md = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in per_label.iterrows():
        md.append(
            "| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.tolist()) + " |"
        )
    atomic_write_text(out / "per_label_auroc.md", "\n".join(md) + "\n")
    _plot_per_label(per_label, out / "per_label_auroc.png")
    return df


def _plot_per_label(per_label: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = [c for c in per_label.columns if ":" in c]
    n, k = len(per_label), max(len(series), 1)
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * n * k / 2 + 2), 4))
    width = 0.8 / k
    x = np.arange(n)
    for i, c in enumerate(series):
        ax.bar(x + i * width - 0.4 + width / 2, per_label[c].fillna(0).to_numpy(), width, label=c)
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_xticks(x, per_label["label"], rotation=90 if n > 12 else 0)
    ax.set_ylim(0, 1)
    ax.set_ylabel("test AUROC")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


def run_evaluate(cfg: EvaluateConfig) -> Path:
    """Evaluate ``cfg.run_dir`` on the test fold; returns the report folder."""
    from encoder.train import load_stage_data

    run_dir = Path(cfg.run_dir)
    clip_dir = run_dir / "clip_model"
    if not clip_dir.is_dir():
        raise CheckpointError(
            f"{clip_dir} does not exist; run `ecgllm pretrain` first (or point run_dir at its output)."
        )
    out = Path(cfg.out_dir) if cfg.out_dir else run_dir / "eval"
    out.mkdir(parents=True, exist_ok=True)
    save_resolved_config(cfg, out)
    pcfg = _run_pretrain_config(run_dir, cfg)
    device = torch.device("cuda" if torch.cuda.is_available() and not cfg.cpu else "cpu")
    clip = EcgClipModel.from_pretrained(clip_dir).to(device)
    encoder = clip.encoder
    data = load_stage_data(pcfg, encoder.config.input_samples, False, pcfg.seed)
    if list(data.label_names) != list(encoder.config.label_names):
        raise CheckpointError(
            f"The encoder's labels {encoder.config.label_names} differ from the data's {data.label_names}; "
            "evaluate with the same task / min_label_count the run was trained with."
        )
    results = _evaluate_encoder("pretrained", encoder, clip, data, cfg, device, use_head=True)
    if cfg.random_baseline:
        torch.manual_seed(cfg.seed)
        # transformers wraps PreTrainedModel.to in functools.wraps, whose typeshed stub loses the bound ``self``
        rand_enc = EcgEncoder(encoder.config).to(device)  # type: ignore[arg-type]
        rand_clip = EcgClipModel(rand_enc, clip.text_dim, clip.text_cfg).to(device)
        rand_clip.text_projection.load_state_dict(clip.text_projection.state_dict())
        rand_clip.set_label_texts(clip.label_texts, clip.label_text_features)
        with torch.no_grad():
            rand_clip.logit_scale.copy_(clip.logit_scale)
            rand_clip.logit_bias.copy_(clip.logit_bias)
        results += _evaluate_encoder("random_init", rand_enc, rand_clip, data, cfg, device, use_head=False)
    y_test = data.cache.labels[data.test.indices].astype(int)
    write_reports(results, list(data.label_names), y_test, out)
    log.info("evaluation written to %s\n%s", out, (out / "results.md").read_text())
    return out
