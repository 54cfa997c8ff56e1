"""Sim-to-real: a stage-1 encoder's head on real labelled ECGs beside the same labels on its synthetic test fold.

Labels follow the PTB-XL benchmark's rule: an SCP code counts as present at any likelihood, a diagnostic superclass
when any of its diagnostic codes is listed (``encoder.labels.labels_for_record`` with ``all+superdiagnostic``).
Scored: the encoder's labels with at least ``min_positives`` real positives, voltage criteria excluded (they cannot
be judged on z-scored records). Both sets reach the encoder prepared like the shared real records
(``realism_features.preprocess``: 500 Hz, 10 s, band-pass 0.5-40 Hz order 4 zero phase, per-lead z-score), then
``preprocess.model_input`` (the encoder's rate, window and normalisation), so the gap is the model's.

``run_sim_to_real(SimToRealConfig(...))`` writes ``sim_to_real.json``, ``sim_to_real.md`` and
``sim_to_real_auroc.png`` into ``out_dir`` and returns the results dict.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from encoder.config_io import atomic_write_json, atomic_write_text, check_config, save_resolved_config
from encoder.errors import CheckpointError, ConfigError, DatasetError
from encoder.labels import SUPERCLASS_DESCRIPTIONS, ScpStatements, labels_for_record
from encoder.metrics import bootstrap_ci, per_label_auroc

VOLTAGE_CRITERIA = ("LVOLT", "VCLVH", "HVOLT")
"""Voltage-criteria codes, left out of the real score: z-scored records carry no mV scale."""
SUPERCLASSES = tuple(SUPERCLASS_DESCRIPTIONS)
"""The five diagnostic superclasses (NORM, MI, STTC, CD, HYP)."""
SYNTHETIC_TEST_FOLD = 10


# ----------------------------------------------------------------------------------------------- labels


def record_label_sets(
    table: pd.DataFrame, ecg_ids: np.ndarray | list[int], statements: ScpStatements | None = None
) -> list[set[str]]:
    """Each record's SCP codes (any likelihood) plus the superclasses of its diagnostic codes, in ``ecg_ids`` order.

    ``table`` is a PTB-XL table (``ecg_id``, ``scp_codes``); an ecg_id missing from it raises ``DatasetError``."""
    from encoder.datasets.ptbxl import parse_scp_codes

    statements = statements or ScpStatements.load()
    for col in ("ecg_id", "scp_codes"):
        if col not in table.columns:
            raise DatasetError(
                f"The PTB-XL table has no '{col}' column (found {list(table.columns)[:8]}...)."
            )
    cells = dict(zip(table["ecg_id"].astype(int), table["scp_codes"], strict=True))
    missing = [int(e) for e in ecg_ids if int(e) not in cells]
    if missing:
        raise DatasetError(
            f"{len(missing)} ecg_ids are not in the PTB-XL table (first: {missing[:5]}); pass the table of these records."
        )
    return [
        set(labels_for_record(parse_scp_codes(cells[int(e)], e), "all+superdiagnostic", statements))
        for e in ecg_ids
    ]


def label_matrix(label_sets: list[set[str]], names: list[str]) -> np.ndarray:
    """(N, L) 0/1 int matrix: record n has label ``names[l]``."""
    return np.array([[int(n in s) for n in names] for s in label_sets], dtype=int).reshape(
        len(label_sets), len(names)
    )


def scored_labels(
    y: np.ndarray, names: list[str], min_positives: int = 5, exclude: tuple[str, ...] = VOLTAGE_CRITERIA
) -> list[str]:
    """The labels of ``names`` with at least ``min_positives`` positives and one negative in ``y`` (N, L), minus
    ``exclude``."""
    pos = y.sum(axis=0)
    return [
        n for j, n in enumerate(names) if pos[j] >= min_positives and pos[j] < len(y) and n not in exclude
    ]


# ----------------------------------------------------------------------------------------------- statistics


def bootstrap_auroc(
    y: np.ndarray, scores: np.ndarray, names: list[str], n_boot: int = 500, seed: int = 0, alpha: float = 0.05
) -> dict[str, Any]:
    """Per-label AUROC (sklearn) and their macro mean, each with a percentile bootstrap CI over records.

    ``y`` (N, L) 0/1 and ``scores`` (N, L). A label with one class only has AUROC None; in a resample where a label
    has one class only, the macro mean is over the other labels. Returns ``{"labels": {name: {auroc, ci,
    positives}}, "macro": {auroc, ci, num_labels}}``."""
    if y.shape != scores.shape or y.shape[1] != len(names):
        raise ConfigError(
            f"bootstrap_auroc: y {y.shape}, scores {scores.shape} and {len(names)} names disagree."
        )

    def metric(yy: np.ndarray, ss: np.ndarray) -> dict[str, float]:
        per = per_label_auroc(yy, ss)
        return {"__macro__": float(np.nanmean(per)) if np.isfinite(per).any() else float("nan")} | {
            n: float(v) for n, v in zip(names, per, strict=True)
        }

    point = metric(y, scores)
    with warnings.catch_warnings():  # a label with one class in every resample has an all-NaN draw list
        warnings.simplefilter("ignore", RuntimeWarning)
        ci = bootstrap_ci(y, scores, metric, n_boot=n_boot, seed=seed, alpha=alpha) if len(y) else {}

    def entry(key: str) -> dict[str, Any]:
        v = point[key]
        low, high = ci.get(key, (float("nan"), float("nan")))
        ok = np.isfinite(v)
        return {"auroc": float(v) if ok else None, "ci": [float(low), float(high)] if ok else None}

    labels = {n: entry(n) | {"positives": int(y[:, j].sum())} for j, n in enumerate(names)}
    return {
        "labels": labels,
        "macro": entry("__macro__")
        | {"num_labels": int(sum(e["auroc"] is not None for e in labels.values()))},
    }


def paired_difference(
    y: np.ndarray, a: np.ndarray, b: np.ndarray, n_boot: int = 500, seed: int = 0, alpha: float = 0.05
) -> dict[str, Any]:
    """Macro AUROC of scores ``a`` minus that of ``b`` on the same records (y, a, b all (N, L)), with a paired
    percentile bootstrap CI (both heads scored on each resample)."""
    width = a.shape[1]

    def metric(yy: np.ndarray, ss: np.ndarray) -> dict[str, float]:
        pa, pb = per_label_auroc(yy, ss[:, :width]), per_label_auroc(yy, ss[:, width:])
        return {"difference": float(np.nanmean(pa) - np.nanmean(pb))}

    both = np.concatenate([a, b], axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ci = bootstrap_ci(y, both, metric, n_boot, seed, alpha)
    return {"difference": metric(y, both)["difference"], "ci": list(ci["difference"])}


def score_head(
    probs: np.ndarray, label_sets: list[set[str]], encoder_labels: list[str], names: list[str], **boot: Any
) -> dict[str, Any]:
    """AUROC of the head's ``probs`` (N, len(encoder_labels)) on ``names``: all of them, and the superclasses among
    them, each with bootstrap CIs (``boot``: ``n_boot``, ``seed``)."""
    cols = [encoder_labels.index(n) for n in names]
    y = label_matrix(label_sets, names)
    out = {"num_records": len(label_sets), "all": bootstrap_auroc(y, probs[:, cols], names, **boot)}
    sup = [j for j, n in enumerate(names) if n in SUPERCLASSES]
    names_sup = [names[j] for j in sup]
    out["superclasses"] = bootstrap_auroc(y[:, sup], probs[:, cols][:, sup], names_sup, **boot)
    return out


# ----------------------------------------------------------------------------------------------- inputs


def encoder_inputs(model: Any, records: np.ndarray) -> np.ndarray:
    """Records (N, 12, 5000) already prepared like the shared real set (500 Hz) -> (N, 12, T) model inputs."""
    from encoder.preprocess import model_input
    from encoder.realism_features import FS
    from encoder.record import Ecg

    n = int(round(model.config.sampling_rate * model.config.input_seconds))
    ones = np.ones(12, dtype=bool)
    rate, norm = model.config.sampling_rate, model.config.input_normalization
    return np.stack(
        [
            model_input(Ecg(r.astype(np.float32), float(FS), ones), rate, n, normalization=norm)
            for r in records
        ]
    )


def head_probabilities(model: Any, records: np.ndarray) -> np.ndarray:
    """Calibrated head probabilities (N, L) of records (N, 12, 5000) prepared like the shared real set."""
    from encoder.engine.inference import encode_dataset

    if model.classifier is None or not model.config.label_names:
        raise CheckpointError(
            "This encoder has no classifier head; sim-to-real scores the head's probabilities."
        )
    return (
        encode_dataset(model, encoder_inputs(model, records), outputs=("probs",), batch_size=32)
        .output("probs")
        .numpy()
    )


def load_real_records(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A real .npz (``signal``, ``ecg_id``, ``fs``) -> records (N, 12, 5000) prepared like the shared set, ecg_ids."""
    from encoder.realism import load_real

    x = load_real(path)
    with np.load(Path(path).expanduser(), allow_pickle=False) as z:
        if "ecg_id" not in z.files:
            raise DatasetError(f"{path} has no 'ecg_id' array: the real labels are joined on it.")
        ids = np.asarray(z["ecg_id"]).astype(int)
    if len(ids) != len(x):
        raise DatasetError(f"{path}: {len(ids)} ecg_ids for {len(x)} signals.")
    return x, ids


def load_synthetic_test(
    cohort: str | Path, num: int, seed: int
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Up to ``num`` records of a cohort's test fold, prepared like the shared real set, their ecg_ids, the table."""
    from encoder.realism import load_cohort
    from encoder.realism_features import FS, preprocess

    root = Path(cohort)
    if not (root / "ptbxl_database.csv").is_file():
        raise DatasetError(
            f"No ptbxl_database.csv in {root}: pass the stage-1 run's synthetic cohort with --cohort."
        )
    table = pd.read_csv(root / "ptbxl_database.csv")
    n = int((table["strat_fold"] == SYNTHETIC_TEST_FOLD).sum()) if num <= 0 else num
    raw, ids = load_cohort(root, n, seed, folds=(SYNTHETIC_TEST_FOLD,))
    return np.stack([preprocess(r, FS) for r in raw]), np.asarray(ids), table


# ----------------------------------------------------------------------------------------------- benchmark


@dataclass
class SimToRealConfig:
    """Settings of the sim-to-real benchmark."""

    run: str = ""
    """Stage-1 run folder (holding ``encoder/`` and ``config.yaml``) or an encoder folder (save_pretrained)."""
    real: str = ""
    """Real records .npz (``signal``, ``ecg_id``, ``fs``), e.g. ptbxl_real_183_500hz.npz."""
    table: str = ""
    """The real PTB-XL table (ptbxl_database.csv) holding those ecg_ids' ``scp_codes``."""
    cohort: str = ""
    """Synthetic cohort of the synthetic-test-fold column; empty = the run's ``data_dir`` (from its config.yaml)."""
    out_dir: str = "runs/sim_to_real"
    """Where sim_to_real.json, sim_to_real.md and sim_to_real_auroc.png go."""
    num_synthetic: int = 0
    """Synthetic test-fold records to score (0 = the whole fold)."""
    min_positives: int = field(default=5, metadata={"ge": 1})
    """Score the labels with at least this many real positives."""
    n_boot: int = field(default=500, metadata={"ge": 10})
    """Bootstrap resamples of every CI."""
    seed: int = 0
    """Seed of the bootstrap, of the synthetic subsample and of the questions written from the real labels."""
    compare_run: str = ""
    """Optional second stage-1 run (e.g. the same settings without augmentation): its head on the same real records
    and the paired bootstrap difference of macro AUROC (this run minus that one) on the same labels."""
    stage2: str = ""
    """Optional stage-2 model folder: also run ``eval-vqa`` on ECG-QA questions over the real records (see
    ``write_real_vqa``), beside the majority answer and the aux-head answerer."""
    questions: str = ""
    """Real ECG-QA questions over the real records (e.g. real183/questions.json); its noise templates 26-28 join
    the questions written from the real labels."""
    questions_per_record: float = field(default=4.0, metadata={"gt": 0.0})
    """Questions written per real record from its real labels (with ``stage2``)."""

    def __post_init__(self) -> None:
        check_config(self)


def encoder_dir_of(run: str) -> tuple[Path, Path | None]:
    """(encoder folder, run folder or None)."""
    p = Path(run).expanduser()
    if not str(run):
        raise ConfigError("Give the stage-1 run folder with --run DIR.")
    if (p / "encoder" / "config.json").is_file():
        return p / "encoder", p
    if (p / "config.json").is_file():
        return p, p.parent if (p.parent / "config.yaml").is_file() else None
    raise CheckpointError(
        f"No encoder in {p}: expected {p}/encoder/config.json (a stage-1 run) or {p}/config.json."
    )


def _cohort_of(cfg: SimToRealConfig, run_dir: Path | None) -> Path:
    if cfg.cohort:
        return Path(cfg.cohort)
    if run_dir is None or not (run_dir / "config.yaml").is_file():
        raise ConfigError("The run has no config.yaml naming its cohort; pass --cohort DIR.")
    import yaml

    return Path(yaml.safe_load((run_dir / "config.yaml").read_text())["data_dir"])


def run_sim_to_real(cfg: SimToRealConfig) -> dict[str, Any]:
    """Score the run's head on the real records and on its synthetic test fold; write the JSON, markdown, plot."""
    from encoder.modeling import EcgEncoder

    check_config(cfg)
    enc_dir, run_dir = encoder_dir_of(cfg.run)
    if not cfg.real or not cfg.table:
        raise ConfigError(
            "Give the real records with --real FILE.npz and their table with --table ptbxl_database.csv."
        )
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_resolved_config(cfg, out)
    model = EcgEncoder.from_pretrained(enc_dir).eval()
    enc_labels = list(model.config.label_names)
    statements = ScpStatements.load()
    real_x, real_ids = load_real_records(cfg.real)
    real_sets = record_label_sets(pd.read_csv(cfg.table), real_ids, statements)
    names = scored_labels(label_matrix(real_sets, enc_labels), enc_labels, cfg.min_positives)
    if not names:
        raise DatasetError(
            f"No label of the encoder has >= {cfg.min_positives} positives among the real records."
        )
    syn_x, syn_ids, syn_table = load_synthetic_test(_cohort_of(cfg, run_dir), cfg.num_synthetic, cfg.seed)
    syn_sets = record_label_sets(syn_table, syn_ids, statements)
    boot = {"n_boot": cfg.n_boot, "seed": cfg.seed}
    p_real = head_probabilities(model, real_x)  # (N_real, L)
    res: dict[str, Any] = {
        "encoder": str(enc_dir),
        "real": str(cfg.real),
        "labels_rule": "code at any likelihood; superclass when any of its diagnostic codes is listed; "
        f">= {cfg.min_positives} real positives; voltage criteria {list(VOLTAGE_CRITERIA)} excluded",
        "preprocessing": "500 Hz, 10 s, band-pass 0.5-40 Hz (Butterworth order 4, zero phase), per-lead z-score; "
        "then the encoder's model_input",
        "real_scores": score_head(p_real, real_sets, enc_labels, names, **boot),
        "synthetic_test": score_head(head_probabilities(model, syn_x), syn_sets, enc_labels, names, **boot),
    }
    if cfg.compare_run:
        res["compare"] = compare_runs(cfg, real_x, real_sets, names, p_real, enc_labels)
    if cfg.stage2:
        res["vqa"] = run_real_vqa(cfg, out)
    atomic_write_json(out / "sim_to_real.json", res)
    atomic_write_text(out / "sim_to_real.md", report_markdown(res))
    plot_sim_to_real(res, out / "sim_to_real_auroc.png")
    return res


# ----------------------------------------------------------------------------------------------- stage 2

REAL_NOISE_TEMPLATES = (26, 27, 28)
"""ECG-QA templates asking about noise in a lead (the real ECG-QA questions over the shared records)."""


def _write_records(root: Path, x: np.ndarray, ids: np.ndarray) -> tuple[list[str], list[str]]:
    """WFDB records (16 bit, 1000 units per z unit) at 100 and 500 Hz of prepared records (N, 12, 5000)."""
    import wfdb

    from encoder.datasets.synthetic import PTBXL_LEAD_NAMES
    from encoder.preprocess import resample

    lr: list[str] = []
    hr: list[str] = []
    for rec, e in zip(x, ids, strict=True):
        folder = f"{int(e) // 1000 * 1000:05d}"
        for fs, sub, suffix, names in ((100, "records100", "lr", lr), (500, "records500", "hr", hr)):
            sig = rec if fs == 500 else resample(rec, 500, fs)  # (12, T)
            (root / sub / folder).mkdir(parents=True, exist_ok=True)
            wfdb.wrsamp(
                f"{int(e):05d}_{suffix}", fs=fs, units=["mV"] * 12, sig_name=PTBXL_LEAD_NAMES,
                p_signal=sig.T.astype(np.float64), fmt=["16"] * 12, adc_gain=[1000.0] * 12, baseline=[0] * 12,
                write_dir=str(root / sub / folder),
            )  # fmt: skip
            names.append(f"{sub}/{folder}/{int(e):05d}_{suffix}")
    return lr, hr


def write_real_vqa(
    real: str | Path,
    table: str | Path,
    out: str | Path,
    questions: str | Path | None = None,
    questions_per_record: float = 4.0,
    seed: int = 0,
) -> Path:
    """An ECG-QA-format folder over the real records for ``ecgllm eval-vqa`` (``--ecgqa_root out/ecgqa
    --signals_root out``): PTB-XL layout (the real table's rows, WFDB records of the prepared signals) and, in the
    ``test`` split, questions written from the real labels with the cohort's own question writer
    (``encoder.synth.questions.make_questions``) plus the real ECG-QA noise questions of ``questions`` (templates
    26-28). Returns ``out``."""
    import json
    import shutil
    from importlib import resources

    from encoder.datasets.ptbxl import parse_scp_codes
    from encoder.datasets.ptbxl_attributes import table_attributes
    from encoder.synth.questions import QaRecord, make_questions

    out = Path(out)
    x, ids = load_real_records(real)
    full = pd.read_csv(table)
    rows = full.set_index("ecg_id").loc[[int(e) for e in ids]].reset_index()
    rows["filename_lr"], rows["filename_hr"] = _write_records(out, x, ids)
    rows.to_csv(out / "ptbxl_database.csv", index=False)
    res = resources.files("encoder") / "resources"
    shutil.copyfile(str(res / "ptbxl" / "scp_statements.csv"), out / "scp_statements.csv")
    records = [
        QaRecord(int(r.ecg_id), int(r.patient_id), 10, frozenset(c), attributes=a, likelihoods=c)
        for r, a, c in zip(
            rows.itertuples(),
            table_attributes(rows),
            (parse_scp_codes(v) for v in rows["scp_codes"]),
            strict=True,
        )
    ]  # fold 10: every question lands in the test split
    samples = make_questions(records, questions_per_record, seed)["test"]
    if questions:
        keep = set(int(e) for e in ids)
        real_q = [
            q for q in json.loads(Path(questions).read_text())
            if q["template_id"] in REAL_NOISE_TEMPLATES and set(q["ecg_id"]) <= keep
        ]  # fmt: skip
        first = max((s["sample_id"] for s in samples), default=0) + 1
        samples += [q | {"sample_id": first + i, "source": "ecgqa-real"} for i, q in enumerate(real_q)]
    qa = out / "ecgqa" / "ptbxl"
    (qa / "template" / "test").mkdir(parents=True, exist_ok=True)
    for name in ("answers.csv", "answers_for_each_template.csv"):
        shutil.copyfile(str(res / "ecgqa" / "ptbxl" / name), qa / name)
    atomic_write_json(qa / "template" / "test" / "0.json", samples)
    return out


def compare_runs(
    cfg: SimToRealConfig,
    real_x: np.ndarray,
    real_sets: list[set[str]],
    names: list[str],
    probs: np.ndarray,
    enc_labels: list[str],
) -> dict[str, Any]:
    """``cfg.compare_run``'s head on the same real records and labels, and the paired macro-AUROC differences."""
    from encoder.modeling import EcgEncoder

    other = EcgEncoder.from_pretrained(encoder_dir_of(cfg.compare_run)[0]).eval()
    other_labels = list(other.config.label_names)
    missing = [n for n in names if n not in other_labels]
    if missing:
        raise ConfigError(
            f"compare_run {cfg.compare_run} has no head output for {missing}; compare runs with the same labels."
        )
    p_other = head_probabilities(other, real_x)
    boot = {"n_boot": cfg.n_boot, "seed": cfg.seed}
    y = label_matrix(real_sets, names)
    out: dict[str, Any] = {"run": cfg.compare_run}
    out["real_scores"] = score_head(p_other, real_sets, other_labels, names, **boot)
    for key, subset in (("all", names), ("superclasses", [n for n in names if n in SUPERCLASSES])):
        cols = [names.index(n) for n in subset]
        a = probs[:, [enc_labels.index(n) for n in subset]]
        b = p_other[:, [other_labels.index(n) for n in subset]]
        out[f"difference_{key}"] = paired_difference(y[:, cols], a, b, **boot)
    return out


def run_real_vqa(cfg: SimToRealConfig, out: Path) -> dict[str, Any]:
    """``eval-vqa`` of the stage-2 model ``cfg.stage2`` on :func:`write_real_vqa`'s folder (``out/real_vqa``);
    the report goes to ``out/vqa``."""
    import shutil

    from llm_finetune.vqa.evaluate import EvalVqaConfig, run_eval_vqa

    folder = out / "real_vqa"
    shutil.rmtree(folder, ignore_errors=True)
    write_real_vqa(cfg.real, cfg.table, folder, cfg.questions or None, cfg.questions_per_record, cfg.seed)
    report = run_eval_vqa(
        EvalVqaConfig(
            model_dir=Path(cfg.stage2), ecgqa_root=folder / "ecgqa", signals_root=folder, out_dir=out / "vqa",
            split="test", baselines=["majority", "aux_head"], majority_fit_split="test", seed=cfg.seed,
            allow_leakage=True,  # synthetic and real ecg_ids share numbers but name different recordings
        )
    )  # fmt: skip
    return {"questions_folder": str(folder), "report_dir": str(report)}


# ----------------------------------------------------------------------------------------------- report


def plot_sim_to_real(res: dict[str, Any], path: Path) -> None:
    """AUROC per scored label with its CI bar, real beside the synthetic test fold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(res["real_scores"]["all"]["labels"])
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(names) + 2), 4.5))
    x = np.arange(len(names))
    for shift, key, label in (
        (-0.15, "real_scores", "real"),
        (0.15, "synthetic_test", "synthetic test fold"),
    ):
        entries = [res[key]["all"]["labels"][n] for n in names]
        ok = [i for i, e in enumerate(entries) if e["auroc"] is not None]
        val = np.array([entries[i]["auroc"] for i in ok])
        err = np.array(
            [[val[k] - entries[i]["ci"][0], entries[i]["ci"][1] - val[k]] for k, i in enumerate(ok)]
        )
        ax.errorbar(
            x[ok] + shift, val, yerr=err.T.clip(0) if len(ok) else None, fmt="o", capsize=3, label=label
        )
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
    ax.set_ylim(0.0, 1.02)
    ax.set_ylabel("AUROC (95 % bootstrap CI)")
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _fmt(e: dict[str, Any]) -> str:
    if e["auroc"] is None:
        return "n/a"
    return f"{e['auroc']:.3f} [{e['ci'][0]:.3f}, {e['ci'][1]:.3f}]"


def report_markdown(res: dict[str, Any]) -> str:
    """The markdown table of :func:`run_sim_to_real`'s results (also the quickstart report's section)."""
    r, s = res["real_scores"], res["synthetic_test"]
    lines = [
        "## Sim-to-real: the aux head on real labelled ECGs",
        "",
        f"Real: {r['num_records']} records ({res['real']}); synthetic test fold: {s['num_records']} records. "
        f"Labels: {res['labels_rule']}. Inputs: {res['preprocessing']}. AUROC [95 % bootstrap CI].",
        "",
        "| | real | synthetic test fold |",
        "|---|---|---|",
        f"| macro AUROC, {r['all']['macro']['num_labels']} labels | {_fmt(r['all']['macro'])} | {_fmt(s['all']['macro'])} |",
        f"| superclass macro AUROC ({r['superclasses']['macro']['num_labels']}) | {_fmt(r['superclasses']['macro'])} "
        f"| {_fmt(s['superclasses']['macro'])} |",
        "",
        "| label | real positives | real | synthetic positives | synthetic test fold |",
        "|---|---|---|---|---|",
    ]
    for name, e in r["all"]["labels"].items():
        se = s["all"]["labels"][name]
        lines.append(f"| {name} | {e['positives']} | {_fmt(e)} | {se['positives']} | {_fmt(se)} |")
    if "compare" in res:
        c = res["compare"]
        for key, title in (("all", "macro AUROC"), ("superclasses", "superclass macro AUROC")):
            d = c[f"difference_{key}"]
            lines.append(
                f"\nReal {title} of `{c['run']}`: {_fmt(c['real_scores'][key]['macro'])}; this run minus it: "
                f"{d['difference']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}] (paired bootstrap)."
            )
    if "vqa" in res:
        lines += ["", f"Stage 2 on ECG-QA questions over the real records: `{res['vqa']['report_dir']}`."]
    return "\n".join(lines + ["", "Figure: `sim_to_real_auroc.png`.", ""])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Entry point of ``benchmarks/sim_to_real.py`` (jsonargparse over ``SimToRealConfig``)."""
    from jsonargparse import ArgumentParser, set_parsing_settings

    set_parsing_settings(docstring_parse_attribute_docstrings=True)
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_class_arguments(SimToRealConfig, nested_key=None, as_group=False)
    res = run_sim_to_real(SimToRealConfig(**vars(parser.parse_args(argv))))
    print(report_markdown(res))
    return res
