"""Offline synthetic cohort in PTB-XL's layout, with ECG-QA-format questions over it.

``generate_cohort(SyntheticConfig(out_dir=...))`` writes::

    <out>/ptbxl_database.csv          ecg_id, patient_id, ..., report, scp_codes, heart_axis, infarction_stadium1/2,
                                      baseline_drift, static_noise, burst_noise, electrodes_problems, extra_beats,
                                      pacemaker, strat_fold, filename_lr/hr (real PTB-XL formats), ecgqa_attributes
    <out>/scp_statements.csv          the real PTB-XL statements (copied from encoder/resources/ptbxl)
    <out>/records100/00000/00001_lr.{hea,dat}   WFDB, 16 bit, 1000 units/mV, leads I ... V6 (PTB-XL names)
    <out>/records500/00000/00001_hr.{hea,dat}
    <out>/ecgqa/ptbxl/template/{train,valid,test}/<first sample id>.json + answers.csv + answers_for_each_template.csv
    <out>/synthetic_cohort.json       what made it (config + version); lets a second call reuse the directory

Signals come from the heart-vector model in ``encoder.synth`` (see its package docstring). Each record takes a
real PTB-XL row's labels (``encoder.synth.real_labels``) and carries them in its signal: noise on the listed leads,
premature beats, infarction stage, heart axis, pacing spikes; the columns are written in the real formats so
``encoder.datasets.ptbxl_attributes`` parses them as it parses the real table, and ``ecgqa_attributes`` holds the
ground truth (with the intervals and axis). See ``docs/synthetic_cohort.md``. Everything is
deterministic by ``seed``: record ``i`` uses its own random stream, so the worker count does not change the output.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import shutil
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from scipy.signal import resample_poly
from tqdm import tqdm

from encoder.config_io import atomic_directory, atomic_write_json, save_resolved_config
from encoder.datasets.ptbxl_attributes import GROUND_TRUTH_COLUMN, parse_infarction_stage, parse_lead_list
from encoder.ecg_measurements import axis_class
from encoder.ecgqa.attributes import LEADS, NOISE_COLUMNS, EcgAttributes
from encoder.errors import ConfigError, DatasetError
from encoder.synth import real_labels
from encoder.synth.labels_prior import sample_scp_codes
from encoder.synth.questions import QaRecord, make_questions
from encoder.synth.record import RecordExtras, synthesize_record
from encoder.synth.report import write_report
from encoder.synth.rhythm import PAC, PVC

GENERATOR_VERSION = "ssm-3"
MARKER = "synthetic_cohort.json"
# PTB-XL's lead names in its WFDB headers.
PTBXL_LEAD_NAMES = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]


@dataclass
class SyntheticConfig:
    """Settings of the synthetic PTB-XL-format cohort."""

    out_dir: str = "data/synthetic-ptbxl"
    """Output directory. It must not exist, or must be a cohort generated earlier with the same settings (reused)."""
    num_records: int = 2000
    """Number of ECG records (about 1 in 8 patients gets two records, for consecutive-comparison questions)."""
    seed: int = 0
    """Random seed; the same seed and settings give byte-identical files."""
    seconds: float = 10.0
    """Record length in seconds (PTB-XL: 10)."""
    normal_fraction: float = 0.42
    """Fraction of records labelled NORM (PTB-XL: about 0.44)."""
    noise_scale: float = 1.0
    """Multiplies every noise source (baseline wander, EMG, powerline, electrode motion); 0 gives clean signals."""
    questions_per_record: float = 4.0
    """ECG-QA samples per record of each split (train questions use folds 1-8, valid fold 9, test fold 10)."""
    num_workers: int = 2
    """Worker processes for signal generation (1 = in-process)."""
    repeat_fraction: float = 0.125
    """Fraction of patients with a second, later record (PTB-XL: about 0.13); it evolves from the first."""
    label_source: Literal["real_table", "parametric"] = "real_table"
    """Where label sets come from: "real_table" draws a real PTB-XL row per record (codes, noise, axis, stage,
    extra beats, pacemaker; ``encoder/resources/synth/ptbxl_label_sample.csv.gz``), "parametric" the older prior
    (``labels_prior``; no annotated noise, axis or stage). ``normal_fraction`` applies to "parametric" only."""
    train_electrode_problems: float = field(default=0.0, metadata={"ge": 0.0, "le": 1.0})
    """Fraction of training-fold records (folds 1-8) given electrode problems on the leads of a real row that has
    them, besides their own labels ("real_table" only). The real table flags 0.14 % of ECGs, too few for a noise
    head to learn; folds 9 and 10 always keep the real frequencies. Drawn from a stream of its own, so the other
    records are unchanged."""


def digital_counts(signal: np.ndarray) -> np.ndarray:
    """mV (12, T) -> int16 counts at 1000/mV, limb leads re-derived from the digital I and II so Einthoven is exact."""
    d = np.clip(np.round(signal * 1000.0), -32767, 32767).astype(np.int32)
    lead_i, lead_ii = d[0], d[1]
    d[2] = lead_ii - lead_i
    d[3] = np.round(-(lead_i + lead_ii) / 2.0)
    d[4] = np.round(lead_i - lead_ii / 2.0)
    d[5] = np.round(lead_ii - lead_i / 2.0)
    return np.clip(d, -32767, 32767).astype(np.int16)


def _write_wfdb(path: Path, fs: int, d_signal: np.ndarray) -> None:
    """Write a WFDB record (format 16, gain 1000/mV, PTB-XL lead names) from int16 counts (12, T).

    Produces the same bytes as ``wfdb.wrsamp`` (checked by the tests) but ~50x faster: wrsamp spends ~60 ms per
    record validating its header fields through pandas, which would dominate the generation time.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    n_sig, n_samp = d_signal.shape
    lines = [f"{path.name} {n_sig} {fs} {n_samp}"]
    for ch, name in enumerate(PTBXL_LEAD_NAMES):
        checksum = int(d_signal[ch].astype(np.int64).sum()) % 65536
        lines.append(f"{path.name}.dat 16 1000.0(0)/mV 16 0 {int(d_signal[ch, 0])} {checksum} 0 {name}")
    path.with_suffix(".hea").write_text("\n".join(lines) + "\n")
    d_signal.T.astype("<i2").tofile(path.with_suffix(".dat"))


def _record_paths(ecg_id: int) -> tuple[str, str]:
    folder = f"{(ecg_id // 1000) * 1000:05d}"
    return f"records100/{folder}/{ecg_id:05d}_lr", f"records500/{folder}/{ecg_id:05d}_hr"


def _generate_one(job: tuple) -> dict:
    """Worker: synthesise one record, write it at 500 Hz and 100 Hz, return its ground truth."""
    root, ecg_id, codes, age, seed, seconds, noise_scale, extras, shape_seed = job
    rng = np.random.default_rng([seed, ecg_id])
    rec = synthesize_record(
        frozenset(codes), rng, age=age, fs=500.0, seconds=seconds, noise_scale=noise_scale, extras=extras,
        shape_seed=shape_seed,
    )  # fmt: skip
    lr, hr = _record_paths(ecg_id)
    _write_wfdb(Path(root) / hr, 500, digital_counts(rec.signal))
    _write_wfdb(Path(root) / lr, 100, digital_counts(resample_poly(rec.signal, 1, 5, axis=1)))
    return {
        "ecg_id": ecg_id, "features": rec.features, "has_p": rec.physiology.rhythm == "sinus",
        "numeric_ms": rec.numeric_ms, "axis_deg": rec.axis_deg, "form_leads": rec.form_leads,
        "n_pvc": int((rec.beat_kinds == PVC).sum()), "n_pac": int((rec.beat_kinds == PAC).sum()),
    }  # fmt: skip


def _noise_masks(row: pd.Series) -> dict[str, tuple[bool, ...]]:
    """Noise type -> the leads the drawn real cells name (ECG-QA's parser), for all four types."""
    return {t: parse_lead_list(row[col])[0] for t, col in NOISE_COLUMNS.items()}


def _attributes(row: pd.Series, info: dict) -> EcgAttributes:
    """The record's ground truth: the rendered noise, extra beats, stage, pacing, form-statement leads, axis and
    intervals. As ECG-QA, intervals count only with a clean lead II and the axis only with clean I and aVF."""
    noise = _noise_masks(row)
    typed = "VES" in str(row.extra_beats_drawn).upper()  # the real cell stated the type
    extra = {"ventricular extrasystoles"} if info["n_pvc"] and typed else set()
    extra |= {"supraventricular extrasystoles"} if info["n_pac"] and typed else set()
    extra |= {"extrasystoles"} if (info["n_pvc"] or info["n_pac"]) and not typed else set()
    dirty = [any(m[i] for m in noise.values()) for i in range(len(LEADS))]
    available = {"noise", "extra_systole", "stage_of_infarction", "pacemaker", "form_leads"}
    numeric = info["numeric_ms"] if not dirty[LEADS.index("II")] else {}
    available |= {"numeric_feature"} if numeric else set()
    axis_clean = not (dirty[LEADS.index("I")] or dirty[LEADS.index("aVF")])
    available |= {"heart_axis"} if axis_clean else set()
    return EcgAttributes(
        noise=noise,
        extra_systoles=frozenset(extra),
        heart_axis=axis_class(info["axis_deg"]) if axis_clean else None,
        infarction_stage=parse_infarction_stage(row.infarction_stadium1, row.infarction_stadium2)[0],
        pacemaker="PACE" in row.scp_codes,
        form_leads=info["form_leads"],
        numeric_ms=numeric,
        available=frozenset(available),
    )


def _config_hash(cfg: SyntheticConfig) -> str:
    keys = {k: v for k, v in asdict(cfg).items() if k not in ("out_dir", "num_workers")}
    keys["version"] = GENERATOR_VERSION
    return hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:16]


def _label_row(cfg: SyntheticConfig, rng: np.random.Generator, earlier: real_labels.LabelRow | None):
    """One record's labels: a real row (a patient's later record evolves from ``earlier``) or the parametric prior."""
    if cfg.label_source == "parametric":
        return real_labels.LabelRow(sample_scp_codes(rng, cfg.normal_fraction), "", "", "",
                                    dict.fromkeys(NOISE_COLUMNS.values(), ""), "", "")  # fmt: skip
    fresh = real_labels.sample_label_row(rng)
    return fresh if earlier is None else real_labels.evolve(earlier, fresh, rng)


def _with_electrode_problems(
    label: real_labels.LabelRow, fold: int, cfg: SyntheticConfig, boost: np.random.Generator
) -> real_labels.LabelRow:
    """``label`` with a real row's electrode-problem leads added, for a ``train_electrode_problems`` share of
    training-fold records (``boost`` is drawn for every record, so the choice does not move other draws)."""
    u, pick = boost.random(), boost.random()
    column = NOISE_COLUMNS["electrodes problems"]
    if fold > 8 or u >= cfg.train_electrode_problems or label.noise.get(column):
        return label
    cells = real_labels.real_cells(column)
    return replace(label, noise={**label.noise, column: cells[int(pick * len(cells))]})


def _sample_table(cfg: SyntheticConfig) -> pd.DataFrame:
    """Patients, folds, demographics and label sets (cheap, done in the main process)."""
    rng = np.random.default_rng([cfg.seed, 1])
    boost = np.random.default_rng([cfg.seed, 2])
    rows = []
    patient, ecg_id = 0, 1
    start = datetime(1990, 1, 1)
    while ecg_id <= cfg.num_records:
        patient += 1
        fold = int(rng.integers(1, 11))
        age = float(np.clip(round(rng.normal(61, 17)), 18, 95))
        sex = int(rng.random() < 0.48)
        n_rec = 2 if rng.random() < cfg.repeat_fraction else 1
        when = start + timedelta(days=int(rng.integers(0, 365 * 10)), seconds=int(rng.integers(0, 86400)))
        # A patient's records share the beat shape and the axis (the same heart).
        label, shape_seed, axis = None, int(rng.integers(2**62)), None
        for k in range(n_rec):
            if ecg_id > cfg.num_records:
                break
            label = _label_row(cfg, rng, label if k else None)
            if cfg.train_electrode_problems > 0 and cfg.label_source == "real_table":
                label = _with_electrode_problems(label, fold, cfg, boost)
            if k == 0 and cfg.label_source == "real_table":
                axis = real_labels.axis_target(label.heart_axis, rng)
            lr, hr = _record_paths(ecg_id)
            rows.append(
                {
                    "ecg_id": ecg_id, "patient_id": float(patient), "age": age + k, "sex": sex,
                    "height": np.nan, "weight": np.nan, "nurse": np.nan, "site": 0.0, "device": "SYNTH-VCG",
                    "recording_date": (when + timedelta(days=200 * k)).strftime("%Y-%m-%d %H:%M:%S"),
                    "scp_codes": label.scp_codes, "strat_fold": fold, "filename_lr": lr, "filename_hr": hr,
                    **label.noise, "extra_beats_drawn": label.extra_beats, "pacemaker": label.pacemaker,
                    "infarction_stadium1": label.infarction_stadium1,
                    "infarction_stadium2": label.infarction_stadium2, "heart_axis_drawn": label.heart_axis,
                    "axis_target": axis,
                    "shape_seed": shape_seed,
                }
            )  # fmt: skip
            ecg_id += 1
    return pd.DataFrame(rows)


def _check_out_dir(out: Path, cfg: SyntheticConfig) -> bool:
    """True if ``out`` already holds this exact cohort; raise if it holds anything else."""
    if not out.exists():
        return False
    marker = out / MARKER
    if marker.is_file():
        try:
            info = json.loads(marker.read_text())
        except (OSError, json.JSONDecodeError):
            info = {}
        if info.get("config_hash") == _config_hash(cfg):
            return True
        raise DatasetError(
            f"{out} holds a synthetic cohort generated with different settings; choose another out_dir or delete it."
        )
    raise DatasetError(
        f"{out} already exists and is not a synthetic cohort; refusing to write into it. Choose a new out_dir."
    )


def generate_cohort(cfg: SyntheticConfig) -> Path:
    """Write the cohort (signals, tables, ECG-QA questions) to ``cfg.out_dir`` atomically and return its path."""
    if cfg.num_records < 1:
        raise ConfigError(f"num_records must be >= 1, got {cfg.num_records}.")
    if cfg.seconds < 1.0 or cfg.seconds > 60.0:
        raise ConfigError(f"seconds must be within 1..60, got {cfg.seconds}.")
    if cfg.noise_scale < 0:
        raise ConfigError(f"noise_scale must be >= 0, got {cfg.noise_scale}.")
    if not 0.0 <= cfg.train_electrode_problems <= 1.0:
        raise ConfigError(
            f"train_electrode_problems is a fraction of the training records (0..1), got {cfg.train_electrode_problems}."
        )
    out = Path(cfg.out_dir).expanduser().resolve()
    if _check_out_dir(out, cfg):
        return out
    with atomic_directory(out) as tmp:
        _write_cohort(tmp, cfg)
    return out


def _job(root: Path, r: pd.Series, cfg: SyntheticConfig) -> tuple:
    """A worker's arguments for one table row: the codes to render (plus premature beats the row's
    ``extra_beats`` asks for; no atrial ones without P waves), its annotated noise, axis and infarction stage."""
    extra = real_labels.extra_beat_codes(r.extra_beats_drawn)
    if r.scp_codes.keys() & {"AFIB", "AFLT"}:
        extra -= {"PAC"}
    codes = set(r.scp_codes) | extra
    extras = RecordExtras(
        noise={t: m for t, m in _noise_masks(r).items() if any(m)},
        axis_deg=None if r.axis_target is None or pd.isna(r.axis_target) else float(r.axis_target),
        infarction_stage=parse_infarction_stage(r.infarction_stadium1, r.infarction_stadium2)[0],
    )
    return (str(root), int(r.ecg_id), tuple(sorted(codes)), float(r.age), cfg.seed, cfg.seconds, cfg.noise_scale,
            extras, int(r.shape_seed))  # fmt: skip


def _write_cohort(root: Path, cfg: SyntheticConfig) -> None:
    res = resources.files("encoder") / "resources"
    statements = pd.read_csv(str(res / "ptbxl" / "scp_statements.csv"), index_col=0)
    shutil.copyfile(str(res / "ptbxl" / "scp_statements.csv"), root / "scp_statements.csv")
    table = _sample_table(cfg)
    jobs = [_job(root, r, cfg) for _, r in table.iterrows()]
    truth: dict[int, dict] = {}
    bar = dict(total=len(jobs), desc="synthetic ECGs", unit="rec")
    if cfg.num_workers > 1 and len(jobs) > 50:
        # fork (where available) avoids re-importing numpy / scipy / pandas in every worker (seconds each).
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        with mp.get_context(method).Pool(cfg.num_workers) as pool:
            for info in tqdm(pool.imap_unordered(_generate_one, jobs, chunksize=16), **bar):
                truth[info["ecg_id"]] = info
    else:
        for job in tqdm(jobs, **bar):
            info = _generate_one(job)
            truth[info["ecg_id"]] = info
    table["scp_codes"] = [
        _with_rendered_extra_beats(c, truth[int(i)])
        for c, i in zip(table.scp_codes, table.ecg_id, strict=True)
    ]
    attrs = [_attributes(r, truth[int(r.ecg_id)]) for _, r in table.iterrows()]
    _write_table(root, table, truth, attrs, statements)
    qa_records = [
        QaRecord(int(r.ecg_id), int(r.patient_id), int(r.strat_fold), frozenset(r.scp_codes),
                 truth[int(r.ecg_id)]["features"], truth[int(r.ecg_id)]["has_p"], a, dict(r.scp_codes))
        for r, a in zip(table.itertuples(), attrs, strict=True)
    ]  # fmt: skip
    _write_questions(root, qa_records, cfg)
    save_resolved_config(cfg, root)
    atomic_write_json(
        root / MARKER,
        {"generator": GENERATOR_VERSION, "config_hash": _config_hash(cfg), "config": asdict(cfg)},
    )


def _with_rendered_extra_beats(codes: dict[str, float], info: dict) -> dict[str, float]:
    """The SCP codes plus PVC / PAC where premature beats were rendered (asked for by ``extra_beats``)."""
    out = dict(codes)
    for code, n in (("PVC", info["n_pvc"]), ("PAC", info["n_pac"])):
        if n:
            out.setdefault(code, 0.0)
    return dict(sorted(out.items()))


def _extra_beats(drawn: str, info: dict) -> str:
    """The rendered premature beats in the table's format, typed ("1VES", "SVES") only where the drawn cell was."""
    n = info["n_pvc"] + info["n_pac"]
    if not n:
        return ""
    if "VES" in drawn.upper():
        return real_labels.extra_beats_text(info["n_pvc"], info["n_pac"])
    return f"{n}ES"


def _write_table(
    root: Path,
    table: pd.DataFrame,
    truth: dict[int, dict],
    attrs: list[EcgAttributes],
    statements: pd.DataFrame,
) -> None:
    """``ptbxl_database.csv`` in the real table's formats, plus the ground-truth ``ecgqa_attributes`` column."""
    csv = table.copy()
    info = [truth[int(i)] for i in csv.ecg_id]
    csv["report"] = [
        write_report(c, statements, t["form_leads"]) for c, t in zip(csv.scp_codes, info, strict=True)
    ]
    csv["scp_codes"] = [str(c) for c in csv.scp_codes]
    for noise_type, col in NOISE_COLUMNS.items():
        csv[col] = [real_labels.format_lead_list(a.noise[noise_type]) for a in attrs]
    csv["heart_axis"] = [real_labels.axis_code(t["axis_deg"]) for t in info]
    csv["extra_beats"] = [_extra_beats(d, t) for d, t in zip(csv.extra_beats_drawn, info, strict=True)]
    csv["pacemaker"] = ["ja, pacemaker" if a.pacemaker else "" for a in attrs]
    csv[GROUND_TRUTH_COLUMN] = [a.to_json() for a in attrs]
    cols = ["ecg_id", "patient_id", "age", "sex", "height", "weight", "nurse", "site", "device", "recording_date",
            "report", "scp_codes", "heart_axis", "infarction_stadium1", "infarction_stadium2", *NOISE_COLUMNS.values(),
            "extra_beats", "pacemaker", "strat_fold", "filename_lr", "filename_hr", GROUND_TRUTH_COLUMN]  # fmt: skip
    csv[cols].to_csv(root / "ptbxl_database.csv", index=False)


def _write_questions(root: Path, records: list[QaRecord], cfg: SyntheticConfig) -> None:
    qa_root = root / "ecgqa" / "ptbxl"
    res = resources.files("encoder") / "resources" / "ecgqa"
    qa_root.mkdir(parents=True, exist_ok=True)
    for name in ("answers.csv", "answers_for_each_template.csv"):
        shutil.copyfile(str(res / "ptbxl" / name), qa_root / name)
    shutil.copyfile(str(res / "LICENSE"), root / "ecgqa" / "LICENSE")
    for split, samples in make_questions(records, cfg.questions_per_record, cfg.seed).items():
        split_dir = qa_root / "template" / split
        split_dir.mkdir(parents=True, exist_ok=True)
        first = samples[0]["sample_id"] if samples else 0
        atomic_write_json(split_dir / f"{first}.json", samples)
