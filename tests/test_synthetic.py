"""Synthetic cohort: PTB-XL / ECG-QA format, determinism, physiology (Einthoven) and label effects."""

from __future__ import annotations

import ast
import filecmp
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb

from encoder.datasets.synthetic import PTBXL_LEAD_NAMES, SyntheticConfig, _write_wfdb, generate_cohort
from encoder.errors import ConfigError, DatasetError
from encoder.realism_features import FS, delineate, measure_intervals, preprocess
from encoder.synth.labels_effects import MODELLED_CODES
from encoder.synth.labels_prior import sample_scp_codes
from encoder.synth.questions import ATTRIBUTE_NAMES, DIAGNOSTIC, FORM, RHYTHM
from encoder.synth.record import synthesize_record


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("syn") / "cohort"
    return generate_cohort(
        SyntheticConfig(out_dir=str(out), num_records=40, seed=3, num_workers=1, questions_per_record=6)
    )


def test_ptbxl_layout_and_wfdb_readback(cohort: Path) -> None:
    table = pd.read_csv(cohort / "ptbxl_database.csv")
    assert len(table) == 40 and table.ecg_id.tolist() == list(range(1, 41))
    for col in (
        "patient_id",
        "age",
        "sex",
        "report",
        "scp_codes",
        "strat_fold",
        "filename_lr",
        "filename_hr",
    ):
        assert col in table.columns
    assert set(table.strat_fold) <= set(range(1, 11))
    codes = [ast.literal_eval(s) for s in table.scp_codes]
    assert all(isinstance(c, dict) and c for c in codes)
    assert (cohort / "scp_statements.csv").read_bytes() == (
        Path(__file__).parents[1] / "encoder/resources/ptbxl/scp_statements.csv"
    ).read_bytes()
    assert (
        table.filename_lr[0] == "records100/00000/00001_lr"
        and table.filename_hr[0] == "records500/00000/00001_hr"
    )
    hr = wfdb.rdrecord(str(cohort / table.filename_hr[0]))
    lr = wfdb.rdrecord(str(cohort / table.filename_lr[0]))
    assert hr.fs == 500 and hr.sig_len == 5000 and lr.fs == 100 and lr.sig_len == 1000
    assert hr.sig_name == PTBXL_LEAD_NAMES and hr.units == ["mV"] * 12 and hr.adc_gain == [1000.0] * 12
    assert hr.fmt == ["16"] * 12
    assert np.isfinite(hr.p_signal).all() and 0.05 < np.abs(hr.p_signal).max() < 10


def test_limb_leads_obey_einthoven_and_goldberger(cohort: Path) -> None:
    rec = wfdb.rdrecord(str(cohort / "records500/00000/00007_hr"), physical=False)
    d = rec.d_signal.T.astype(np.int64)  # (12, T) counts, 1 count = 1 uV
    i, ii, iii, avr, avl, avf = d[:6]
    assert np.array_equal(iii, ii - i)
    assert np.abs(2 * avr + (i + ii)).max() <= 1
    assert np.abs(2 * avl - (2 * i - ii)).max() <= 1
    assert np.abs(2 * avf - (2 * ii - i)).max() <= 1


def test_writer_is_byte_identical_to_wfdb_wrsamp(tmp_path: Path) -> None:
    d = np.random.default_rng(0).integers(-3000, 3000, (12, 700)).astype(np.int16)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _write_wfdb(tmp_path / "a" / "00001_hr", 500, d)
    wfdb.wrsamp("00001_hr", fs=500, units=["mV"] * 12, sig_name=PTBXL_LEAD_NAMES, d_signal=d.T.copy(), fmt=["16"] * 12,
                adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(tmp_path / "b"))  # fmt: skip
    for ext in (".hea", ".dat"):
        assert filecmp.cmp(
            tmp_path / "a" / f"00001_hr{ext}", tmp_path / "b" / f"00001_hr{ext}", shallow=False
        )


def test_deterministic_by_seed_and_independent_of_workers(tmp_path: Path) -> None:
    a = generate_cohort(SyntheticConfig(out_dir=str(tmp_path / "a"), num_records=60, seed=5, num_workers=1))
    b = generate_cohort(SyntheticConfig(out_dir=str(tmp_path / "b"), num_records=60, seed=5, num_workers=2))
    c = generate_cohort(SyntheticConfig(out_dir=str(tmp_path / "c"), num_records=60, seed=6, num_workers=1))
    for rel in ("ptbxl_database.csv", "records500/00000/00042_hr.dat", "records100/00000/00042_lr.dat"):
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    assert (a / "records500/00000/00042_hr.dat").read_bytes() != (
        c / "records500/00000/00042_hr.dat"
    ).read_bytes()
    qa = sorted((a / "ecgqa/ptbxl/template/train").glob("*.json"))
    qb = sorted((b / "ecgqa/ptbxl/template/train").glob("*.json"))
    assert [p.read_bytes() for p in qa] == [p.read_bytes() for p in qb]


def test_refuses_foreign_or_different_directories(tmp_path: Path, cohort: Path) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep")
    with pytest.raises(DatasetError, match="not a synthetic cohort"):
        generate_cohort(SyntheticConfig(out_dir=str(foreign), num_records=5, num_workers=1))
    assert (foreign / "precious.txt").read_text() == "keep"
    with pytest.raises(DatasetError, match="different settings"):
        generate_cohort(
            SyntheticConfig(
                out_dir=str(cohort), num_records=41, seed=3, num_workers=1, questions_per_record=6
            )
        )
    same = SyntheticConfig(out_dir=str(cohort), num_records=40, seed=3, num_workers=4, questions_per_record=6)
    assert generate_cohort(same) == cohort  # reused, not rewritten
    with pytest.raises(ConfigError):
        generate_cohort(SyntheticConfig(out_dir=str(tmp_path / "x"), num_records=0))
    assert not list(tmp_path.glob(".*.tmp"))


def _options(cohort: Path) -> dict[int, set[str]]:
    t = pd.read_csv(cohort / "ecgqa/ptbxl/answers_for_each_template.csv")
    return {int(r.template_id): set(ast.literal_eval(r.classes)) for r in t.itertuples()}


def test_questions_are_true_for_the_labels(cohort: Path) -> None:
    table = pd.read_csv(cohort / "ptbxl_database.csv")
    codes = {int(r.ecg_id): set(ast.literal_eval(r.scp_codes)) for r in table.itertuples()}
    folds = dict(zip(table.ecg_id, table.strat_fold, strict=True))
    attrs = {i: {ATTRIBUTE_NAMES[c] for c in cs if c in ATTRIBUTE_NAMES} for i, cs in codes.items()}
    options = _options(cohort)
    split_folds = {"train": set(range(1, 9)), "valid": {9}, "test": {10}}
    n_yes = n_no = 0
    for split, allowed in split_folds.items():
        files = list((cohort / "ecgqa/ptbxl/template" / split).glob("*.json"))
        samples = [s for f in files for s in json.loads(f.read_text())]
        for s in samples:
            assert set(s) == {"template_id", "question_id", "sample_id", "question_type", "attribute_type",
                              "question", "answer", "ecg_id", "attribute"}  # fmt: skip
            assert all(folds[e] in allowed for e in s["ecg_id"])
            assert set(s["answer"]) <= options[s["template_id"]], s
            ids = s["ecg_id"]
            if s["template_id"] in (1, 2, 43, 45, 57, 59) and s["answer"] != [
                "not sure"
            ]:  # verify one finding
                first, second = attrs[ids[0]], attrs[ids[-1]]
                name = s["attribute"][0]
                truth = {
                    1: name in first,
                    2: name in first,
                    43: name in second - first,
                    45: name in first & second,
                }[s["template_id"] if s["template_id"] < 57 else s["template_id"] - 14]
                assert s["answer"] == ["yes" if truth else "no"], s
                n_yes += truth
                n_no += not truth
            elif s["question_type"] == "single-query" and s["template_id"] in (8, 10, 11):
                pool = {8: DIAGNOSTIC, 10: RHYTHM, 11: FORM}[s["template_id"]]
                want = {ATTRIBUTE_NAMES[c] for c in pool if c in codes[ids[0]]} or {"none"}
                assert set(s["answer"]) == want, s
            elif (
                s["question_type"] == "single-choose"
                and s["attribute_type"] == "scp_code"
                and s["template_id"] != 3
            ):
                want = {a for a in s["attribute"] if a in attrs[ids[0]]} or {"none"}
                assert set(s["answer"]) == want, s
            elif s["template_id"] in (47, 61):
                new = (attrs[ids[1]] - attrs[ids[0]]) & options[s["template_id"]]
                assert set(s["answer"]) == (new or {"none"}), s
    assert n_yes > 5 and n_no > 5 and 0.15 < n_yes / (n_yes + n_no) < 0.85


def test_loaders_of_the_library_read_the_cohort(cohort: Path) -> None:
    ptbxl = pytest.importorskip("encoder.datasets.ptbxl")
    ecgqa = pytest.importorskip("encoder.datasets.ecgqa")
    ds = ptbxl.PtbXl(cohort, task="superdiagnostic", sampling_rate=100, drop_unlabeled=False)
    assert len(ds.table) == 40 and ds.read(0).signal.shape == (12, 1000)
    qa = ecgqa.load_ecgqa(cohort / "ecgqa", split="train")
    assert len(qa) > 0 and isinstance(qa[0]["ecg_id"], list)


def test_label_prevalence_is_ptbxl_like() -> None:
    rng = np.random.default_rng(0)
    sets = [sample_scp_codes(rng) for _ in range(4000)]
    freq = {c: np.mean([c in s for s in sets]) for c in MODELLED_CODES}
    assert 0.36 < freq["NORM"] < 0.48 and freq["SR"] > 0.6
    rare = {c: f for c, f in freq.items() if c not in ("NORM", "SR") and f < 0.018}
    assert not rare, rare
    assert len(MODELLED_CODES) >= 20
    assert not any({"CLBBB", "CRBBB"} <= set(s) for s in sets)
    assert not any("AFIB" in s and "1AVB" in s for s in sets)


# ----------------------------------------------------------------------------------- label effects (delineator)


def _records(codes: set[str], n: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    return [synthesize_record(frozenset(codes), rng, noise_scale=0.5) for _ in range(n)]


def _rhythm(
    codes: set[str], n: int = 6, seed: int = 0, leads: tuple[int, ...] = (1, 6, 10, 11)
) -> list[dict]:
    """Delineator measurements (neurokit2, median over leads II, V1, V5, V6) of ``n`` generated records."""
    return [measure_intervals(preprocess(r.signal, FS), leads)[0] for r in _records(codes, n, seed)]


@pytest.mark.slow
def test_afib_has_more_rr_variability_than_sinus_rhythm() -> None:
    sr = np.median([d["rr_cv"] for d in _rhythm({"NORM", "SR"})])
    af = np.median([d["rr_cv"] for d in _rhythm({"AFIB"})])
    assert af > 2.5 * sr and af > 0.1


@pytest.mark.slow
def test_rate_codes_by_delineator() -> None:
    # Median over records: neurokit's R-peak detector counts a tall T wave as a beat in ~10 % of slow records
    # (same rate for the previous generator), which says nothing about the generated rate.
    assert np.median([60000 / d["rr_mean_ms"] for d in _rhythm({"SBRAD"}, 5)]) < 60
    assert np.median([60000 / d["rr_mean_ms"] for d in _rhythm({"STACH"}, 5)]) > 100


@pytest.mark.slow
def test_clbbb_has_wide_qrs_by_delineator() -> None:
    # nanmedian: a record where the delineator found no QRS onset / offset pair has no measurement.
    lbbb = np.nanmedian([d["qrs_dur"] for d in _rhythm({"CLBBB", "SR"}, 6, 1)])
    norm = np.nanmedian([d["qrs_dur"] for d in _rhythm({"NORM", "SR"}, 6, 1)])
    assert lbbb >= 120 and lbbb > norm + 20


def _p_onset_to(codes: set[str], n: int, seed: int, qrs_onset: bool = False) -> float:
    """Median P onset -> R peak (or -> QRS onset) in ms by the delineator over leads II, V1, V5, V6 and ``n`` records.

    P onset -> R peak rather than the delineator's PR for a long PR: its QRS-onset finder often stops on the P
    wave's down-slope when the QRS has no initial q wave (real PTB-XL records too), which hides a long PR."""
    vals = []
    for r in _records(codes, n, seed):
        x = preprocess(r.signal, FS)
        per_lead = []
        for lead in (1, 6, 10, 11):
            peaks, waves = delineate(x[lead])
            p_on = waves.get("ECG_P_Onsets")
            end = np.asarray(waves.get("ECG_R_Onsets", []), dtype=float) if qrs_onset else peaks
            if p_on is not None and len(p_on) == len(peaks) == len(end):
                per_lead.append(np.nanmedian((end - p_on) / FS * 1000.0))
        vals.append(np.nanmedian(per_lead) if per_lead else np.nan)
    return float(np.nanmedian(vals))


@pytest.mark.slow
def test_first_degree_av_block_prolongs_pr() -> None:
    avb, norm = _p_onset_to({"1AVB", "SR"}, 6, 2), _p_onset_to({"NORM", "SR"}, 6, 2)
    assert avb > 240 and avb > norm + 60


@pytest.mark.slow
def test_wpw_has_short_pr() -> None:
    # Ground truth PR 85-110 ms; the delineator puts the QRS onset a little late on the slurred delta wave.
    wpw = _p_onset_to({"WPW", "SR"}, 6, 3, qrs_onset=True)
    norm = _p_onset_to({"NORM", "SR"}, 6, 3, qrs_onset=True)
    assert wpw < 135 and wpw < norm - 10


def _qrs_window(r, lo_ms: float, hi_ms: float) -> np.ndarray:
    """(12, beats, samples) of a record around each QRS onset."""
    fs = r.fs
    on = r.beat_onsets[(r.beat_onsets > 0.3) & (r.beat_onsets < 9.5)]
    idx = (on[:, None] * fs + np.arange(int(lo_ms * fs / 1000), int(hi_ms * fs / 1000))[None, :]).astype(int)
    return r.signal[:, idx]


def test_lvh_has_higher_and_lvolt_lower_qrs_voltage() -> None:
    def volt(codes: set[str]) -> float:
        # Sokolow-Lyon: S in V1 + R in V5/V6 (mV), QRS window 0-120 ms after onset.
        vals = []
        for r in _records(codes, 8, 4):
            w = _qrs_window(r, 0, 120)
            vals.append(-w[6].min(axis=-1).mean() + max(w[10].max(axis=-1).mean(), w[11].max(axis=-1).mean()))
        return float(np.median(vals))

    lvh, norm, low = volt({"LVH", "SR"}), volt({"NORM", "SR"}), volt({"LVOLT", "SR"})
    assert lvh > 1.5 * norm and lvh > 3.5
    assert low < 0.6 * norm


def test_inferior_mi_has_q_waves_in_inferior_leads() -> None:
    def q_depth(codes: set[str]) -> float:
        return float(
            np.median([-_qrs_window(r, 0, 40)[5].min(axis=-1).mean() for r in _records(codes, 8, 5)])
        )

    assert q_depth({"IMI", "SR"}) > q_depth({"NORM", "SR"}) + 0.15


def test_pvc_records_contain_premature_beats() -> None:
    for r in _records({"PVC", "SR"}, 4, 6):
        assert (r.beat_kinds == 3).sum() >= 1


def test_pac_beats_have_an_ectopic_p_wave() -> None:
    # Low atrial focus: the P axis turns superior, so the P wave in aVF is lower in the premature beat than in the
    # sinus beats of the same record (the previous T wave, which a premature P wave overlaps, is mostly positive).
    diffs = []
    rng = np.random.default_rng(8)
    for _ in range(8):
        r = synthesize_record(frozenset({"PAC", "SR"}), rng, noise_scale=0.0)
        pr = r.features["pr interval"] / 1000.0
        offsets = np.arange(int((pr - 0.015) * r.fs))

        def p_avf(onset: float, r=r, pr=pr, offsets=offsets) -> float:
            return float(r.signal[5, int(round((onset - pr) * r.fs)) + offsets].mean())

        pac = np.flatnonzero(r.beat_kinds == 2)
        sinus = np.flatnonzero((r.beat_kinds == 0) & (r.beat_onsets > 0.5))
        if len(pac):
            diffs.append(p_avf(r.beat_onsets[pac[0]]) - np.mean([p_avf(r.beat_onsets[i]) for i in sinus]))
    assert len(diffs) >= 5 and np.median(diffs) < -0.01
