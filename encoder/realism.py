"""How real do the synthetic ECGs look? Two-sample tests against real records (``ecgllm data realism``).

Both sets go through the same preprocessing (``realism_features.preprocess``: 500 Hz, 10 s, band-pass 0.5-40 Hz
order 4 zero phase, per-lead z-score). Then:

* feature C2ST: a gradient-boosted classifier (sklearn HistGradientBoosting) on signal features tries to tell real
  from synthetic; cross-validated AUROC (0.5 = indistinguishable) beside the real-vs-real floor (two random halves),
  each at its stated n with a bootstrap CI (and optionally a permutation p-value): a two-sample test gets
  stronger with more records, so the number means little without them,
* CNN critic: a small 1-D CNN on the raw pre-processed signals (100 Hz), cross-validated AUROC, with its floor,
* Fréchet distance between the feature clouds (standardised, PCA fitted on real), synthetic vs real beside real vs
  real at equal sample sizes; and between stage-1 encoder embeddings when ``encoder`` is given,
* PNGs: histograms of the most separating features, synthetic and real 12-lead records side by side, generated
  records next to the real PTB record s0010_re,
* sim-to-real (with ``encoder``): AUROC of the aux head's SBRAD / STACH / AFIB / bundle-branch probabilities
  against labels the delineator derives from the signal itself (HR < 60, HR > 100, irregular RR, QRS >= 120 ms),
  on the real records and on synthetic test-fold records.
Results: ``realism.json`` and ``realism.md`` in ``out_dir``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from encoder.config_io import atomic_write_json, atomic_write_text, check_config, save_resolved_config
from encoder.errors import ConfigError, DatasetError
from encoder.realism_features import FS, NUM_SAMPLES, feature_matrix, feature_names, preprocess


@dataclass
class RealismConfig:
    """Settings of the realism benchmark."""

    real: str = ""
    """Real records: a .npz with ``signal`` (N, T, 12) or (N, 12, T) and ``fs``, or a directory (PTB-XL layout with
    ptbxl_database.csv, or any folder of WFDB .hea records). E.g. the 183 PTB-XL records of ptbxl_real_183_500hz.npz."""
    real_preprocessed: Literal["auto", "yes", "no"] = "auto"
    """'yes' if the real set is already band-passed and z-scored (the shared .npz is), 'no', or 'auto' (detect z-scored leads)."""
    synthetic: str = ""
    """A synthetic PTB-XL-format cohort directory; empty = generate one into <out_dir>/cohort with ``seed``."""
    out_dir: str = "runs/realism"
    """Where realism.json, realism.md and the PNGs go."""
    num_synthetic: int = 0
    """Synthetic records to compare (0 = as many as there are real records)."""
    max_real: int = 0
    """Use at most this many real records (0 = all)."""
    real_half: Literal["all", "even", "odd"] = "all"
    """'all', 'even' or 'odd': only the real records at even / odd positions. The generator's shape model is fitted
    on the even half of the shared 183 records, so 'odd' is the honest, held-out comparison."""
    seed: int = 0
    """Seed for splits, subsampling, the CNN and a generated cohort."""
    folds: int = field(default=5, metadata={"ge": 2})
    """Cross-validation folds of both classifiers."""
    cnn: bool = True
    """Also train the 1-D CNN critic (a minute or two on CPU for ~2 x 200 records)."""
    cnn_epochs: int = 8
    """Epochs per fold of the CNN critic."""
    c2st_permutations: int = field(default=0, metadata={"ge": 0})
    """Permutations of the feature C2ST's null (each refits the classifier; 0 = bootstrap CI only)."""
    cnn_floor: bool = True
    """Also train the critic real-vs-real (the floor); it depends only on the real set and ``seed``."""
    encoder: str = ""
    """Optional stage-1 encoder directory (EcgEncoder.save_pretrained): adds embedding Fréchet distance and the sim-to-real check."""

    def __post_init__(self) -> None:
        check_config(self)


# ----------------------------------------------------------------------------------------------- loading


def _looks_preprocessed(x: np.ndarray) -> bool:
    m, s = np.abs(x.mean(axis=-1)), x.std(axis=-1)
    return bool(np.median(m) < 0.05 and np.median(np.abs(s - 1.0)) < 0.05)


def load_real(path: str | Path, max_records: int = 0, preprocessed: str = "auto") -> np.ndarray:
    """Real records -> (N, 12, 5000) float32 pre-processed."""
    p = Path(path).expanduser()
    if not str(path):
        raise ConfigError("Give the real records with --real PATH (a .npz or a directory of WFDB records).")
    if not p.exists():
        raise DatasetError(f"Real records not found: {p}. Pass a .npz or a directory of WFDB records.")
    if p.suffix == ".npz":
        with np.load(p, allow_pickle=False) as z:
            if "signal" not in z.files:
                raise DatasetError(f"{p} has no 'signal' array (found {z.files}).")
            x = np.asarray(z["signal"], dtype=np.float32)
            fs = float(z["fs"]) if "fs" in z.files else float(FS)
        if x.ndim != 3 or 12 not in x.shape[1:]:
            raise DatasetError(f"{p}: 'signal' must be (N, T, 12) or (N, 12, T), got {x.shape}.")
        if x.shape[2] == 12 and x.shape[1] != 12:
            x = x.transpose(0, 2, 1)
        if max_records:
            x = x[:max_records]
        done = preprocessed == "yes" or (preprocessed == "auto" and _looks_preprocessed(x))
        if done and fs == FS and x.shape[2] == NUM_SAMPLES:
            return np.ascontiguousarray(x)
        return np.stack([preprocess(r, fs) for r in x])
    from encoder.io import read_ecg

    if (p / "ptbxl_database.csv").is_file():
        import pandas as pd

        table = pd.read_csv(p / "ptbxl_database.csv")
        files = [p / f for f in table["filename_hr"]]
    else:
        files = sorted(h.with_suffix("") for h in p.rglob("*.hea"))
    if max_records:
        files = files[:max_records]
    if not files:
        raise DatasetError(f"No WFDB records (*.hea) under {p}.")
    return np.stack([preprocess(read_ecg(f).signal, read_ecg(f).fs) for f in files])


# A generated cohort is at least this large, so its fold 10 (the held-out sim-to-real sample) is never empty.
_MIN_GENERATED = 200


def load_cohort(
    root: str | Path, num: int, seed: int, folds: tuple[int, ...] | None = None
) -> tuple[np.ndarray, list[int]]:
    """Raw 500 Hz signals (N, 12, T) in mV of ``num`` random records of a PTB-XL-format cohort, and their ecg_ids."""
    import pandas as pd
    import wfdb

    root = Path(root)
    table = pd.read_csv(root / "ptbxl_database.csv")
    if folds is not None:
        table = table[table.strat_fold.isin(folds)]
    if len(table) == 0:
        raise DatasetError(
            f"The cohort {root} has no records in folds {folds}; generate a larger cohort (--num_synthetic)."
        )
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(table), size=min(num, len(table)), replace=False))
    rows = table.iloc[pick]
    sigs = [wfdb.rdsamp(str(root / f))[0].T.astype(np.float32) for f in rows["filename_hr"]]
    return np.stack(sigs), [int(i) for i in rows["ecg_id"]]


# ----------------------------------------------------------------------------------------------- statistics


def c2st_scores(
    a: np.ndarray, b: np.ndarray, folds: int = 5, seed: int = 0, groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold probabilities of a HistGradientBoosting classifier separating feature rows ``a`` from ``b``:
    (y (N,) 0 = a / 1 = b, p (N,)), N = len(a) + len(b).

    ``groups`` (N,) keeps rows of a group in the same fold (e.g. two views of one record)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_predict

    x = np.concatenate([a, b])
    y = np.r_[np.zeros(len(a)), np.ones(len(b))]
    leaf = int(np.clip(len(x) // 20, 2, 20))  # sklearn's default (20) would forbid any split on tiny inputs
    clf = HistGradientBoostingClassifier(
        max_iter=150, learning_rate=0.08, max_leaf_nodes=15, min_samples_leaf=leaf, random_state=seed
    )
    if groups is None:
        cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    else:
        cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return y, cross_val_predict(clf, x, y, cv=cv, groups=groups, method="predict_proba")[:, 1]


def c2st_auroc(
    a: np.ndarray, b: np.ndarray, folds: int = 5, seed: int = 0, groups: np.ndarray | None = None
) -> float:
    """Cross-validated AUROC of a HistGradientBoosting classifier separating feature rows ``a`` from ``b``
    (0.5 = indistinguishable); ``groups`` as in :func:`c2st_scores`."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(*c2st_scores(a, b, folds, seed, groups)))


def c2st_with_ci(
    a: np.ndarray,
    b: np.ndarray,
    folds: int = 5,
    seed: int = 0,
    n_boot: int = 1000,
    n_permutations: int = 0,
    alpha: float = 0.05,
) -> dict:
    """Feature C2ST AUROC of ``a`` vs ``b`` at the stated sizes, with a percentile bootstrap CI over the
    out-of-fold predictions and, when ``n_permutations`` > 0, a permutation p-value (set labels shuffled, the
    classifier refitted each time; p = (1 + #null >= observed) / (1 + n_permutations)).

    A two-sample test gets stronger with n, so the AUROC means little without n, its CI and the real-vs-real
    floor beside it."""
    from sklearn.metrics import roc_auc_score

    y, p = c2st_scores(a, b, folds, seed)
    auc = float(roc_auc_score(y, p))
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        if 0 < y[idx].sum() < len(idx):
            draws.append(roc_auc_score(y[idx], p[idx]))
    ci = [float(np.percentile(draws, 100 * alpha / 2)), float(np.percentile(draws, 100 * (1 - alpha / 2)))]
    out = {"auroc": auc, "ci": ci, "n": [len(a), len(b)]}
    if n_permutations > 0:
        x = np.concatenate([a, b])
        null = []
        for _ in range(n_permutations):
            perm = rng.permutation(len(x))
            null.append(c2st_auroc(x[perm[: len(a)]], x[perm[len(a) :]], folds, seed))
        out["permutation_p"] = float((1 + np.sum(np.asarray(null) >= auc)) / (1 + n_permutations))
        out["null_mean"] = float(np.mean(null))
    return out


def _critic(num_leads: int = 12):
    import torch.nn as nn

    def block(i: int, o: int) -> list:
        return [nn.Conv1d(i, o, 7, stride=2, padding=3), nn.BatchNorm1d(o), nn.ReLU()]

    return nn.Sequential(
        *block(num_leads, 32), *block(32, 48), *block(48, 64), *block(64, 96),
        nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(96, 1),
    )  # fmt: skip


def cnn_c2st_auroc(a: np.ndarray, b: np.ndarray, folds: int = 5, epochs: int = 12, seed: int = 0) -> float:
    """Cross-validated AUROC of a small 1-D CNN separating signals ``a`` (N, 12, T) from ``b`` (500 Hz -> 100 Hz)."""
    import torch
    from scipy.signal import resample_poly
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    torch.set_num_threads(min(2, torch.get_num_threads()))  # small model: more threads only oversubscribe
    x = resample_poly(np.concatenate([a, b]), 1, 5, axis=-1).astype(np.float32)  # (N, 12, T/5)
    y = np.r_[np.zeros(len(a)), np.ones(len(b))].astype(np.float32)
    scores = np.zeros(len(y))
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    crop = x.shape[-1] - 100  # random 9 s crops in training, centre crop at test
    for train, test in StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(x, y):
        model = _critic()
        opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-3)
        xt, yt = torch.from_numpy(x[train]), torch.from_numpy(y[train])
        for _ in range(epochs):
            model.train()
            order = torch.randperm(len(train), generator=gen)
            for i in range(0, len(order), 32):
                idx = order[i : i + 32]
                off = int(torch.randint(0, 101, (1,), generator=gen))
                logit = model(xt[idx, :, off : off + crop]).squeeze(1)  # (B,)
                loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, yt[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        model.eval()
        with torch.no_grad():
            scores[test] = model(torch.from_numpy(x[test, :, 50 : 50 + crop])).squeeze(1).numpy()
    return float(roc_auc_score(y, scores))


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to rows of ``a`` and ``b`` (N, D)."""
    from scipy.linalg import sqrtm

    mu1, mu2 = a.mean(0), b.mean(0)
    c1, c2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = sqrtm(c1 @ c2)
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(c1 + c2 - 2.0 * covmean))


def frechet_vs_floor(
    real: np.ndarray, synth: np.ndarray, seed: int = 0, repeats: int = 5, dims: int = 16
) -> dict:
    """Fréchet distance synthetic-vs-real next to real-vs-real (random halves), at equal sizes, on standardised
    features reduced by a PCA fitted on the real half used as reference. Mean over ``repeats`` splits."""
    med = np.nanmedian(real, axis=0)
    med = np.where(np.isfinite(med), med, 0.0)
    real = np.where(np.isfinite(real), real, med)
    synth = np.where(np.isfinite(synth), synth, med)
    rng = np.random.default_rng(seed)
    fd, floor = [], []
    for _ in range(repeats):
        perm = rng.permutation(len(real))
        ra, rb = real[perm[: len(real) // 2]], real[perm[len(real) // 2 :]]
        sb = synth[rng.choice(len(synth), size=len(rb), replace=len(synth) < len(rb))]
        mu, sd = ra.mean(0), ra.std(0) + 1e-6
        za = (ra - mu) / sd
        k = min(dims, len(ra) // 4, za.shape[1])
        _, _, vt = np.linalg.svd(za - za.mean(0), full_matrices=False)
        proj = vt[:k].T
        pa, pb, ps = (((m - mu) / sd) @ proj for m in (ra, rb, sb))
        fd.append(frechet_distance(pa, ps))
        floor.append(frechet_distance(pa, pb))
    fd_m, floor_m = float(np.mean(fd)), float(np.mean(floor))
    return {
        "synthetic_vs_real": fd_m,
        "real_vs_real": floor_m,
        "ratio": fd_m / max(floor_m, 1e-12),
        "dims": int(k),
    }


def univariate_separation(real: np.ndarray, synth: np.ndarray, names: list[str]) -> list[tuple[str, float]]:
    """Features sorted by how well each alone separates the sets (|AUROC - 0.5|, NaN-robust)."""
    from sklearn.metrics import roc_auc_score

    out = []
    for j, name in enumerate(names):
        a, b = real[:, j], synth[:, j]
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        if len(a) < 5 or len(b) < 5:
            continue
        auc = roc_auc_score(np.r_[np.zeros(len(a)), np.ones(len(b))], np.r_[a, b])
        out.append((name, float(auc)))
    return sorted(out, key=lambda t: -abs(t[1] - 0.5))


# ----------------------------------------------------------------------------------------------- plots


def plot_separating_features(
    real: np.ndarray, synth: np.ndarray, names: list[str], top: list[tuple[str, float]], path: Path
) -> None:
    """Histograms of the most separating features (real vs synthetic)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = min(12, len(top))
    fig, axes = plt.subplots(3, 4, figsize=(16, 10))
    for ax, (name, auc) in zip(axes.ravel(), top[:k], strict=False):
        j = names.index(name)
        a, b = real[:, j], synth[:, j]
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        lo, hi = np.percentile(np.r_[a, b], [1, 99])
        bins = np.linspace(lo, hi if hi > lo else lo + 1, 30)
        ax.hist(a, bins=bins, alpha=0.55, density=True, label="real")
        ax.hist(b, bins=bins, alpha=0.55, density=True, label="synthetic")
        ax.set_title(f"{name}\nAUROC {auc:.2f}", fontsize=9)
    axes.ravel()[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_side_by_side(
    left: np.ndarray,
    right: np.ndarray,
    path: Path,
    fs: float = FS,
    titles=("synthetic", "real"),
    seconds: float = 4.0,
) -> None:
    """Columns of 12-lead records (each (12, T), already on a comparable scale): ``left`` records, then ``right``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from encoder.leads import CANONICAL_LEADS

    cols = [(titles[0], r) for r in left] + [(titles[1], r) for r in right]
    fig, axes = plt.subplots(1, len(cols), figsize=(4.2 * len(cols), 11), squeeze=False)
    n = int(seconds * fs)
    t = np.arange(n) / fs
    for ax, (title, rec) in zip(axes[0], cols, strict=True):
        for i in range(12):
            ax.plot(t, rec[i, :n] - 4.0 * i, lw=0.6, color="k")
            ax.text(-0.05, -4.0 * i, CANONICAL_LEADS[i], ha="right", va="center", fontsize=8)
        ax.set_title(title)
        ax.set_yticks([])
        ax.set_xlabel("s")
        ax.set_ylim(-4.0 * 11 - 3, 4)
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)


def plot_vs_reference(
    synthetic: np.ndarray, path: Path, reference: str | Path | None = None, fs: float = FS
) -> None:
    """Generated records (N, 12, T) in mV next to the real PTB record s0010_re (shipped), all z-scored per lead."""
    from importlib import resources

    from encoder.io import read_ecg

    ref = (
        Path(reference)
        if reference
        else Path(str(resources.files("encoder") / "resources" / "wfdb" / "s0010_re"))
    )
    ecg = read_ecg(ref)
    real = preprocess(ecg.signal[:, : int(ecg.fs * 10)], ecg.fs)
    synth = [preprocess(r, fs) for r in synthetic]
    plot_side_by_side(np.stack(synth), real[None], path, titles=("synthetic", "real PTB s0010_re"))


# ----------------------------------------------------------------------------------------------- encoder checks


def _encoder_inputs(model, records: np.ndarray) -> np.ndarray:
    from encoder.preprocess import model_input
    from encoder.record import Ecg

    n = int(round(model.config.sampling_rate * model.config.input_seconds))
    ones = np.ones(12, dtype=bool)
    return np.stack(
        [
            model_input(
                Ecg(r.astype(np.float32), float(FS), ones),
                model.config.sampling_rate,
                n,
                normalization=model.config.input_normalization,
            )
            for r in records
        ]
    )


def _encode(model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Embeddings (N, D) and calibrated head probabilities (N, L) (None without a head) of signals (N, 12, T)."""
    from encoder.engine.inference import encode_dataset

    out = encode_dataset(model, x, outputs=("embedding", "probs"), batch_size=32)
    probs = out.output("probs")
    return out.output("embedding").numpy(), (probs.numpy() if probs.shape[1] else None)


SIGNAL_LABELS = {
    "SBRAD": ("heart rate < 60 /min", ("SBRAD",)),
    "STACH": ("heart rate > 100 /min", ("STACH",)),
    "AFIB": ("irregular RR (CV > 0.12)", ("AFIB",)),
    "BBB": ("QRS >= 120 ms", ("CLBBB", "CRBBB", "IVCD")),
}


def signal_labels(features: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    """Delineator-derived binary labels (NaN where not measurable) from a feature matrix."""
    rr = features[:, names.index("rr_mean_ms")]
    hr = 60000.0 / rr
    cv = features[:, names.index("rr_cv")]
    qrs = features[:, names.index("qrs_dur_ms")]
    lab = {"SBRAD": hr < 60, "STACH": hr > 100, "AFIB": cv > 0.12, "BBB": qrs >= 120}
    valid = {
        "SBRAD": np.isfinite(hr),
        "STACH": np.isfinite(hr),
        "AFIB": np.isfinite(cv),
        "BBB": np.isfinite(qrs),
    }
    return {k: np.where(valid[k], v.astype(float), np.nan) for k, v in lab.items()}


def sim_to_real(prob: np.ndarray, label_names: list[str], labels: dict[str, np.ndarray]) -> dict[str, dict]:
    """AUROC of the head's probability (max over the mapped codes) against each signal-derived label."""
    from sklearn.metrics import roc_auc_score

    out = {}
    for key, (desc, codes) in SIGNAL_LABELS.items():
        cols = [label_names.index(c) for c in codes if c in label_names]
        y = labels[key]
        ok = np.isfinite(y)
        entry = {
            "signal_label": desc,
            "codes": [c for c in codes if c in label_names],
            "positives": int(np.nansum(y)),
        }
        if not cols:
            entry["auroc"] = None
            entry["note"] = "encoder has no such label"
        elif len(np.unique(y[ok])) < 2:
            entry["auroc"] = None
            entry["note"] = "only one class present"
        else:
            entry["auroc"] = float(roc_auc_score(y[ok], prob[ok][:, cols].max(axis=1)))
        out[key] = entry
    return out


# ----------------------------------------------------------------------------------------------- main


def _cached_features(records: np.ndarray, path: Path) -> np.ndarray:
    """Features of ``records``, reused from ``path`` when it holds features of exactly these records."""
    import hashlib

    key = hashlib.sha256(records.tobytes()).hexdigest()[:16] + f"-{len(feature_names())}"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) == key:
                return z["features"]
    feats = feature_matrix(records)
    np.savez_compressed(path, features=feats, key=np.array(key), names=np.array(feature_names()))
    return feats


REAL_HALVES = ("all", "even", "odd")


def select_real_half(real: np.ndarray, half: str) -> np.ndarray:
    """The real records at even (0, 2, ...) or odd (1, 3, ...) positions, or all; the shape model of the
    synthetic generator was fitted on the even half, so 'odd' is the held-out comparison."""
    if half not in REAL_HALVES:
        raise ConfigError(f"real_half must be 'all', 'even' or 'odd', got {half!r}.")
    return real if half == "all" else real[(0 if half == "even" else 1) :: 2]


def run_realism(cfg: RealismConfig) -> dict:
    """Run the benchmark; write realism.json / realism.md / PNGs into ``cfg.out_dir`` and return the results."""
    check_config(cfg)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_resolved_config(cfg, out)
    real = select_real_half(load_real(cfg.real, cfg.max_real, cfg.real_preprocessed), cfg.real_half)
    n_syn = cfg.num_synthetic or len(real)
    cohort = Path(cfg.synthetic) if cfg.synthetic else None
    if cohort is None:
        from encoder.datasets.synthetic import SyntheticConfig, generate_cohort

        cohort = generate_cohort(
            SyntheticConfig(
                out_dir=str(out / "cohort"), num_records=max(n_syn, _MIN_GENERATED), seed=cfg.seed
            )
        )
    raw_syn, syn_ids = load_cohort(cohort, n_syn, cfg.seed)
    synth = np.stack([preprocess(r, FS) for r in raw_syn])
    names = feature_names()
    f_real, f_syn = _cached_features(real, out / "features_real.npz"), feature_matrix(synth)
    np.savez_compressed(
        out / "features_synthetic.npz", features=f_syn, ecg_id=np.array(syn_ids), names=np.array(names)
    )
    rng = np.random.default_rng(cfg.seed)
    half = rng.permutation(len(real))
    ra, rb = half[: len(real) // 2], half[len(real) // 2 :]
    res: dict = {
        "num_real": len(real),
        "num_synthetic": len(synth),
        "cohort": str(cohort),
        "real": str(cfg.real),
    }
    syn = c2st_with_ci(f_real, f_syn, cfg.folds, cfg.seed, n_permutations=cfg.c2st_permutations)
    floor = c2st_with_ci(f_real[ra], f_real[rb], cfg.folds, cfg.seed)
    res["feature_c2st"] = {
        "synthetic_vs_real": syn["auroc"],
        "real_vs_real": floor["auroc"],
        "num_features": len(names),
        "synthetic_vs_real_detail": syn,
        "real_vs_real_detail": floor,
    }
    if cfg.cnn:
        res["cnn_c2st"] = {
            "synthetic_vs_real": cnn_c2st_auroc(real, synth, cfg.folds, cfg.cnn_epochs, cfg.seed),
            "real_vs_real": cnn_c2st_auroc(real[ra], real[rb], cfg.folds, cfg.cnn_epochs, cfg.seed)
            if cfg.cnn_floor
            else None,
        }
    res["feature_frechet"] = frechet_vs_floor(f_real, f_syn, cfg.seed)
    top = univariate_separation(f_real, f_syn, names)
    res["most_separating_features"] = [{"feature": n, "auroc": a} for n, a in top[:15]]
    plot_separating_features(f_real, f_syn, names, top, out / "separating_features.png")
    plot_side_by_side(synth[:3], real[:3], out / "records_side_by_side.png")
    plot_vs_reference(raw_syn[:3], out / "synthetic_vs_s0010_re.png")
    if cfg.encoder:
        res["encoder"] = _encoder_checks(cfg, real, f_real, cohort, names)
    atomic_write_json(out / "realism.json", res)
    atomic_write_text(out / "realism.md", report_markdown(res))
    return res


def _encoder_checks(
    cfg: RealismConfig, real: np.ndarray, f_real: np.ndarray, cohort: Path, names: list[str]
) -> dict:
    from encoder.errors import CheckpointError
    from encoder.modeling import EcgEncoder

    try:
        model = EcgEncoder.from_pretrained(cfg.encoder).eval()
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"Cannot load the encoder from {cfg.encoder}: {exc}") from exc
    raw_test, _ = load_cohort(cohort, len(real), cfg.seed + 1, folds=(10,))
    e_real, p_real = _encode(model, _encoder_inputs(model, real))
    e_syn, p_syn = _encode(model, _encoder_inputs(model, raw_test))
    out: dict = {"dir": cfg.encoder, "embedding_frechet": frechet_vs_floor(e_real, e_syn, cfg.seed)}
    if p_real is not None and p_syn is not None:  # both or neither: the same head
        f_test = feature_matrix(np.stack([preprocess(r, FS) for r in raw_test]))
        labels = list(model.config.label_names)
        out["sim_to_real"] = {
            "real": sim_to_real(p_real, labels, signal_labels(f_real, names)),
            "synthetic_test": sim_to_real(p_syn, labels, signal_labels(f_test, names)),
        }
    return out


def _c2st_cell(c: dict, key: str) -> str:
    """``0.812 [0.77, 0.85], n 183 vs 183`` (CI and n when the results carry them)."""
    d = c.get(f"{key}_detail")
    if d is None:
        return f"{c[key]:.3f}"
    cell = f"{d['auroc']:.3f} [{d['ci'][0]:.3f}, {d['ci'][1]:.3f}], n {d['n'][0]} vs {d['n'][1]}"
    return cell + (f", permutation p {d['permutation_p']:.3f}" if "permutation_p" in d else "")


def report_markdown(res: dict) -> str:
    """Human-readable summary of ``run_realism``'s results."""
    lines = ["# Realism benchmark: synthetic vs real ECGs", ""]
    lines.append(
        f"Real records: {res['num_real']} ({res['real']}); synthetic: {res['num_synthetic']} ({res['cohort']})."
    )
    lines += ["", "| test | synthetic vs real | real vs real (floor) |", "|---|---|---|"]
    c = res["feature_c2st"]
    lines.append(
        f"| feature C2ST AUROC (HistGradientBoosting, {c['num_features']} features) | {_c2st_cell(c, 'synthetic_vs_real')} | {_c2st_cell(c, 'real_vs_real')} |"
    )
    if "cnn_c2st" in res:
        c = res["cnn_c2st"]
        floor = "not run" if c["real_vs_real"] is None else f"{c['real_vs_real']:.3f}"
        lines.append(f"| 1-D CNN critic AUROC | {c['synthetic_vs_real']:.3f} | {floor} |")
    f = res["feature_frechet"]
    lines.append(
        f"| feature Fréchet distance ({f['dims']} PCA dims) | {f['synthetic_vs_real']:.2f} ({f['ratio']:.2f}x floor) | {f['real_vs_real']:.2f} |"
    )
    if "encoder" in res:
        f = res["encoder"]["embedding_frechet"]
        lines.append(
            f"| encoder-embedding Fréchet distance | {f['synthetic_vs_real']:.2f} ({f['ratio']:.2f}x floor) | {f['real_vs_real']:.2f} |"
        )
    lines += [
        "",
        "AUROC 0.5 = the classifier cannot tell the sets apart. Most separating single features:",
        "",
    ]
    lines += [f"- `{d['feature']}`: AUROC {d['auroc']:.2f}" for d in res["most_separating_features"][:10]]
    s2r = res.get("encoder", {}).get("sim_to_real")
    if s2r:
        lines += ["", "## Sim-to-real: aux-head probability vs signal-derived label (AUROC)", ""]
        lines += ["| label | signal rule | real | synthetic test |", "|---|---|---|---|"]
        for key, entry in s2r["real"].items():
            syn = s2r["synthetic_test"][key]
            fmt = lambda e: "n/a" if e["auroc"] is None else f"{e['auroc']:.3f} ({e['positives']} pos)"  # noqa: E731
            lines.append(
                f"| {key} ({', '.join(entry['codes']) or '-'}) | {entry['signal_label']} | {fmt(entry)} | {fmt(syn)} |"
            )
    lines += [
        "",
        "Figures: `separating_features.png`, `records_side_by_side.png`, `synthetic_vs_s0010_re.png`.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    """Entry point of ``benchmarks/realism.py`` (jsonargparse over ``RealismConfig``)."""
    from jsonargparse import ArgumentParser, set_parsing_settings

    set_parsing_settings(docstring_parse_attribute_docstrings=True)
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_class_arguments(RealismConfig, nested_key=None, as_group=False)
    ns = parser.parse_args(argv)
    res = run_realism(RealismConfig(**vars(ns)))
    print(
        json.dumps({k: res[k] for k in ("feature_c2st", "cnn_c2st", "feature_frechet") if k in res}, indent=2)
    )
    return res
